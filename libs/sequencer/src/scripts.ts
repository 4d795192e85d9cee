import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

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
  const bound = {} as SequencerScripts;
  for (const [name, { file, keys, command }] of Object.entries(SCRIPTS)) {
    const lua = readFileSync(new URL(`./scripts/${file}`, import.meta.url), 'utf8');
    redis.defineCommand(command, { numberOfKeys: keys, lua });
    const fn = (redis as unknown as Record<string, (...keysAndArgs: (string | number)[]) => Promise<unknown>>)[command]!;
    bound[name as keyof SequencerScripts] = (keysAndArgs) => fn.apply(redis, keysAndArgs);
  }
  return bound;
}
