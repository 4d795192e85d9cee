export {
  createRedisSequencer,
  readCounter,
  fenceKeyOf,
  MAX_COUNTER,
  DEFAULT_KEY_PREFIX,
  DEFAULT_COMMAND_TIMEOUT_MS,
} from './redis-sequencer.ts';
export type { RedisSequencer, RedisSequencerOptions, SequencerObserver } from './redis-sequencer.ts';
export { toSkeinError, SCRIPT_CODES, RETRY_AFTER_SECONDS } from './errors.ts';
export type { ScriptCode, ScriptFailure } from './errors.ts';
