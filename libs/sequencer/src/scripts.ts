import { readFileSync } from 'node:fs';
import type { Redis, Result } from 'ioredis';

/** The commands defineScripts defines on a client (ioredis's typings learn them here, not through a cast). */
declare module 'ioredis' {
  interface RedisCommander<Context> {
    skeinSequencerAllocate(...keysAndArgs: (string | number)[]): Result<unknown, Context>;
    skeinSequencerCurrent(...keysAndArgs: (string | number)[]): Result<unknown, Context>;
    skeinSequencerReseed(...keysAndArgs: (string | number)[]): Result<unknown, Context>;
  }
}

/** Runs a script with its keys, then its arguments, in one array (passed on to ioredis as they are, not spread twice). */
type ScriptCall = (keysAndArgs: (string | number)[]) => Promise<unknown>;

/** The sequencer's Lua scripts, bound to one ioredis client (EVALSHA, falling back to EVAL after a Redis restart). */
export interface SequencerScripts {
  allocate: ScriptCall;
  current: ScriptCall;
  reseed: ScriptCall;
}

const SCRIPTS = {
  allocate: { file: 'allocate-4.lua', keys: 4, command: 'skeinSequencerAllocate' },
  current: { file: 'current-4.lua', keys: 4, command: 'skeinSequencerCurrent' },
  reseed: { file: 'reseed-5.lua', keys: 5, command: 'skeinSequencerReseed' },
} as const;

/** Reads the script files and defines them as commands on `redis`. */
export function defineScripts(redis: Redis): SequencerScripts {
  for (const { file, keys, command } of Object.values(SCRIPTS)) {
    redis.defineCommand(command, { numberOfKeys: keys, lua: readFileSync(new URL(`./scripts/${file}`, import.meta.url), 'utf8') });
  }
  return {
    allocate: (keysAndArgs) => redis.skeinSequencerAllocate.apply(redis, keysAndArgs),
    current: (keysAndArgs) => redis.skeinSequencerCurrent.apply(redis, keysAndArgs),
    reseed: (keysAndArgs) => redis.skeinSequencerReseed.apply(redis, keysAndArgs),
  };
}
