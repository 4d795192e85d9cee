import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { JOB_KINDS, JOB_STATES, SkeinError, isSkeinError, parseExpectedVersion, parsePosition } from '@skein/protocol';
import type { ExpectedVersion, JobKind, JobState, ProposedEvent } from '@skein/protocol';
import { createClient } from '../client.ts';
import type { SkeinClient } from '../client.ts';
import { describeError } from '../errors.ts';
import type { FetchFunction } from '../http.ts';
import type { SkeinEvent } from '../types.ts';
import { formatAppend, formatEvent, formatTree, toJson } from './format.ts';

/** What the CLI touches of its process, so that it can run inside a test. */
export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** Read when `append` gets no JSON argument. */
  stdin: AsyncIterable<string | Uint8Array> & { isTTY?: boolean };
  env: Record<string, string | undefined>;
  /** Aborted on Ctrl-C: `tail` ends cleanly. */
  signal?: AbortSignal;
  fetch?: FetchFunction;
  /** Printed by `--version`: the version of the @skein/client package that runs. */
  version?: string;
}

/** Exit codes: 0 success, 1 the API or the network failed, 2 the command line is wrong, 130 interrupted. */
export const EXIT = Object.freeze({ ok: 0, failed: 1, usage: 2, interrupted: 130 });

export const USAGE = `usage: skein [--url URL] [--api-key KEY] [--json] <command> [args]

commands:
  tenant create <tenant> [--partitions N] [--quota EVENTS_PER_SEC]
                                          create a tenant (admin key); prints its API key
  tenant get <tenant>                       show a tenant (admin key)
  tenant update <tenant> [--max-age SECONDS|none] [--quota EVENTS_PER_SEC|none]
                                          change retention or quota (admin key)
  maintenance run <retention|compact>       run maintenance now on the owning shards
         [--tenant T] [--partition P]       (admin key; default every partition)
  jobs [id] [--state S] [--kind K]          recent jobs (moves too) and failures, or one job (admin key)
       [--limit N]
  backup create                             back up every shard (admin key)
  backup list                               backups and their position per shard (admin key)
  backup restore --backup-dir DIR           restore a shard's backup into an empty data
         --data-dir DIR [--id ID]           directory (offline, on the shard's host; newest by default)
  append <tenant> <stream> [json]           append events: {type,data}, an array of them, or raw
         [--type T] [--expected-version V]  data with --type; JSON from the argument or stdin
         [--idempotency-key K]
  read <tenant> <stream> [--from N]         print a stream's events
         [--backward] [--limit N]
  log <tenant> [--from-position P]          print the tenant's log in global order, up to now
         [--category C] [--types A,B] [--limit N]
  tail <tenant> [stream] [--from N|end]     follow a stream or the tenant's log until Ctrl-C
         [--category C] [--types A,B]       (--from defaults to end: new events only)
  status                                    cluster status (admin key)
  cluster status                            the same
  cluster add <id> <url>                    an empty shard joins (admin key)
  cluster drain <id>                        move every partition off a shard (admin key)
  cluster remove <id>                       remove a drained shard (admin key)
  cluster rebalance [--plan]                move partitions to where rendezvous placement
                                          asks, a few at a time; --plan only prints them
  partition move <partition> <shard>        move a partition online; follows it to the end

global options:
  --url URL        router URL (default: $SKEIN_URL or http://127.0.0.1:8080)
  --api-key KEY    API key (default: $SKEIN_API_KEY)
  --json           machine output: one JSON document per line
  -h, --help       this text
  -V, --version    the version of this command line (@skein/client)

exit codes: 0 ok, 1 API or network error, 2 usage error`;

/** What `skein backup restore` calls: the engine's restoreBackup, present where a shard is installed. */
interface RestoringEngine {
  restoreBackup(backupDir: string, dataDir: string, id?: string): { id: string; highestPosition: string };
}

/**
 * Restores on this host with the engine of an installed shard (@skein/engine): the client
 * package does not carry LMDB, so the module is loaded only here, by name.
 */
async function restoreOnThisHost(backupDir: string, dataDir: string, id: string | undefined): Promise<{ id: string; highestPosition: string }> {
  const name = '@skein/engine';
  let engine: Partial<RestoringEngine>;
  try {
    engine = (await import(name)) as Partial<RestoringEngine>;
  } catch {
    throw new SkeinError('UNAVAILABLE', 'skein backup restore runs on a shard\'s host: it needs @skein/engine (installed with the shard) to write LMDB files');
  }
  if (typeof engine.restoreBackup !== 'function') throw new SkeinError('UNAVAILABLE', '@skein/engine has no restoreBackup');
  try {
    return engine.restoreBackup(backupDir, dataDir, id);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A mistake on the command line: exit 2 with a hint. */
class UsageError extends Error {
  override readonly name = 'UsageError';
}

const GLOBAL_OPTIONS = {
  url: { type: 'string' },
  'api-key': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const satisfies ParseArgsConfig['options'];

const COMMAND_OPTIONS = {
  partitions: { type: 'string' },
  quota: { type: 'string' },
  type: { type: 'string' },
  'expected-version': { type: 'string' },
  'idempotency-key': { type: 'string' },
  from: { type: 'string' },
  backward: { type: 'boolean' },
  limit: { type: 'string' },
  'from-position': { type: 'string' },
  category: { type: 'string' },
  types: { type: 'string' },
  'max-age': { type: 'string' },
  tenant: { type: 'string' },
  partition: { type: 'string' },
  state: { type: 'string' },
  kind: { type: 'string' },
  'backup-dir': { type: 'string' },
  'data-dir': { type: 'string' },
  id: { type: 'string' },
  plan: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

type OptionName = keyof typeof COMMAND_OPTIONS;

/** Which options each command accepts, beyond the global ones. */
const ACCEPTS: Record<string, OptionName[]> = {
  'tenant create': ['partitions', 'quota'],
  'tenant get': [],
  append: ['type', 'expected-version', 'idempotency-key'],
  read: ['from', 'backward', 'limit'],
  log: ['from-position', 'category', 'types', 'limit'],
  tail: ['from', 'category', 'types'],
  status: [],
  'tenant update': ['max-age', 'quota'],
  'maintenance run': ['tenant', 'partition'],
  jobs: ['state', 'kind', 'limit'],
  'backup create': [],
  'backup list': [],
  'backup restore': ['backup-dir', 'data-dir', 'id'],
  'cluster status': [],
  'cluster add': [],
  'cluster drain': [],
  'cluster remove': [],
  'cluster rebalance': ['plan'],
  'partition move': [],
};

/** Commands of two words: `tenant create`, `backup list`, … */
const GROUPS: Record<string, string[]> = {
  tenant: ['create', 'get', 'update'],
  maintenance: ['run'],
  backup: ['create', 'list', 'restore'],
  cluster: ['status', 'add', 'drain', 'remove', 'rebalance'],
  partition: ['move'],
};

/** An integer option that `none` clears (null). */
function clearableOption(value: string | undefined, name: string): number | null | undefined {
  if (value === 'none') return null;
  return integerOption(value, name, 1);
}

type Values = { [K in OptionName]?: (typeof COMMAND_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

interface Context {
  client: SkeinClient;
  json: boolean;
  io: CliIo;
  values: Values;
  args: string[];
}

function integerOption(value: string | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) < min) {
    throw new UsageError(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

function positionOption(value: string, name: string): bigint {
  try {
    return parsePosition(value, name);
  } catch {
    throw new UsageError(`--${name} must be a position (a decimal integer ≥ 0), got ${JSON.stringify(value)}`);
  }
}

function typesOption(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const types = value.split(',').map((t) => t.trim()).filter((t) => t !== '');
  return types.length > 0 ? types : undefined;
}

function arity(args: string[], min: number, max: number, shape: string): void {
  if (args.length < min) throw new UsageError(`missing argument: skein ${shape}`);
  if (args.length > max) throw new UsageError(`unexpected argument ${JSON.stringify(args[max])}: skein ${shape}`);
}

function out(ctx: Context, line: string): void {
  ctx.io.stdout.write(line + '\n');
}

function printEvent(ctx: Context, e: SkeinEvent): void {
  out(ctx, ctx.json ? toJson(e) : formatEvent(e));
}

async function readStdin(io: CliIo): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

/** `{type,data}`, an array of them, or (with --type) any JSON as the data of one event. */
export function eventsFromJson(text: string, type: string | undefined): ProposedEvent[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`the events are not valid JSON: ${(err as Error).message}`);
  }
  if (type !== undefined) return [{ type, data: value }];
  const isEvent = (v: unknown): v is ProposedEvent =>
    v !== null && typeof v === 'object' && !Array.isArray(v) && typeof (v as { type?: unknown }).type === 'string';
  if (isEvent(value)) return [{ ...value, data: value.data ?? null }];
  if (Array.isArray(value) && value.length > 0 && value.every(isEvent)) return value.map((e) => ({ ...e, data: e.data ?? null }));
  throw new UsageError('give events as {"type":…,"data":…} or an array of them, or pass --type T to append the JSON as the data of one event');
}

const COMMANDS: Record<string, (ctx: Context) => Promise<void>> = {
  async 'tenant create'(ctx) {
    arity(ctx.args, 1, 1, 'tenant create <tenant> [--partitions N] [--quota EVENTS_PER_SEC]');
    const partitions = integerOption(ctx.values.partitions, 'partitions', 1);
    const eventsPerSecond = integerOption(ctx.values.quota, 'quota', 1);
    const created = await ctx.client.admin.createTenant(ctx.args[0]!, { partitions, ...(eventsPerSecond !== undefined ? { quota: { eventsPerSecond } } : {}), signal: ctx.io.signal });
    if (ctx.json) return out(ctx, toJson(created));
    const quota = created.quota ? `, at most ${created.quota.eventsPerSecond} events/s` : '';
    out(ctx, `created tenant ${created.tenant} with ${created.partitions} partition(s)${quota}`);
    out(ctx, `api key (shown only now): ${created.apiKey}`);
  },

  async 'tenant get'(ctx) {
    arity(ctx.args, 1, 1, 'tenant get <tenant>');
    const tenant = await ctx.client.admin.getTenant(ctx.args[0]!, { signal: ctx.io.signal });
    if (tenant === null) throw new SkeinError('TENANT_NOT_FOUND', `no tenant ${ctx.args[0]}`);
    out(ctx, ctx.json ? toJson(tenant) : formatTree(tenant).join('\n'));
  },

  async append(ctx) {
    arity(ctx.args, 2, 3, 'append <tenant> <stream> [json]');
    const [tenant, stream, arg] = ctx.args as [string, string, string | undefined];
    let expectedVersion: ExpectedVersion | undefined;
    if (ctx.values['expected-version'] !== undefined) {
      try {
        expectedVersion = parseExpectedVersion(ctx.values['expected-version'], 'query');
      } catch {
        throw new UsageError(`--expected-version must be any, no_stream, stream_exists or an integer ≥ 0, got ${JSON.stringify(ctx.values['expected-version'])}`);
      }
    }
    let text = arg;
    if (text === undefined) {
      if (ctx.io.stdin.isTTY) throw new UsageError('give the event JSON as an argument or on stdin');
      text = await readStdin(ctx.io);
    }
    const events = eventsFromJson(text, ctx.values.type);
    const result = await ctx.client.append(tenant, stream, {
      events,
      expectedVersion,
      idempotencyKey: ctx.values['idempotency-key'],
      signal: ctx.io.signal,
    });
    out(ctx, ctx.json ? toJson(result) : formatAppend(result));
  },

  async read(ctx) {
    arity(ctx.args, 2, 2, 'read <tenant> <stream> [--from N] [--backward] [--limit N]');
    const limit = integerOption(ctx.values.limit, 'limit', 1);
    const from = integerOption(ctx.values.from, 'from', 1);
    const events = ctx.client.streamEvents(ctx.args[0]!, ctx.args[1]!, {
      from,
      direction: ctx.values.backward ? 'backward' : 'forward',
      pageSize: limit === undefined ? undefined : Math.min(limit, 1000),
      limit,
      signal: ctx.io.signal,
    });
    for await (const e of events) printEvent(ctx, e);
  },

  async log(ctx) {
    arity(ctx.args, 1, 1, 'log <tenant> [--from-position P] [--category C] [--types A,B] [--limit N]');
    const limit = integerOption(ctx.values.limit, 'limit', 1);
    const fromRaw = ctx.values['from-position'];
    let n = 0;
    const events = ctx.client.tenantLogEvents(ctx.args[0]!, {
      fromPosition: fromRaw === undefined ? undefined : positionOption(fromRaw, 'from-position'),
      category: ctx.values.category,
      types: typesOption(ctx.values.types),
      pageSize: limit === undefined ? undefined : Math.min(limit, 1000),
      signal: ctx.io.signal,
    });
    for await (const e of events) {
      printEvent(ctx, e);
      if (limit !== undefined && ++n >= limit) break;
    }
  },

  async tail(ctx) {
    arity(ctx.args, 1, 2, 'tail <tenant> [stream] [--from N|end]');
    const [tenant, stream] = ctx.args as [string, string | undefined];
    const fromRaw = ctx.values.from ?? 'end';
    const onReconnect = ({ delayMs, error }: { delayMs: number; error: unknown }) =>
      ctx.io.stderr.write(`skein: connection lost (${describeError(error)}); reconnecting in ${delayMs} ms\n`);
    let subscription;
    if (stream === undefined) {
      if (ctx.values.from !== undefined && fromRaw !== 'end') positionOption(fromRaw, 'from');
      subscription = ctx.client.subscribeTenant(tenant, {
        fromPosition: fromRaw === 'end' ? 'end' : fromRaw,
        category: ctx.values.category,
        types: typesOption(ctx.values.types),
        onReconnect,
      });
    } else {
      if (ctx.values.category !== undefined || ctx.values.types !== undefined) {
        throw new UsageError('--category and --types apply to a tenant log, not to one stream');
      }
      subscription = ctx.client.subscribeStream(tenant, stream, {
        from: fromRaw === 'end' ? 'end' : integerOption(fromRaw, 'from', 1),
        onReconnect,
      });
    }
    const stop = () => void subscription.close();
    ctx.io.signal?.addEventListener('abort', stop, { once: true });
    try {
      for await (const e of subscription) printEvent(ctx, e);
    } finally {
      ctx.io.signal?.removeEventListener('abort', stop);
    }
  },

  async 'tenant update'(ctx) {
    arity(ctx.args, 1, 1, 'tenant update <tenant> [--max-age SECONDS|none] [--quota EVENTS_PER_SEC|none]');
    const maxAge = clearableOption(ctx.values['max-age'], 'max-age');
    const quota = clearableOption(ctx.values.quota, 'quota');
    if (maxAge === undefined && quota === undefined) throw new UsageError('give --max-age or --quota (a number, or none to remove it)');
    const updated = await ctx.client.admin.updateTenant(
      ctx.args[0]!,
      { ...(maxAge !== undefined ? { retention: { maxAge } } : {}), ...(quota !== undefined ? { quota: quota === null ? null : { eventsPerSecond: quota } } : {}) },
      { signal: ctx.io.signal },
    );
    out(ctx, ctx.json ? toJson(updated) : formatTree(updated).join('\n'));
  },

  async 'maintenance run'(ctx) {
    arity(ctx.args, 1, 1, 'maintenance run <retention|compact> [--tenant T] [--partition P]');
    const kind = ctx.args[0]!;
    if (kind !== 'retention' && kind !== 'compact') throw new UsageError(`the kind is retention or compact, got ${JSON.stringify(kind)}`);
    const { jobs } = await ctx.client.admin.runMaintenance(
      { kind, ...(ctx.values.tenant !== undefined ? { tenant: ctx.values.tenant } : {}), ...(ctx.values.partition !== undefined ? { partition: ctx.values.partition } : {}) },
      { signal: ctx.io.signal },
    );
    if (ctx.json) return out(ctx, toJson({ jobs }));
    for (const j of jobs) out(ctx, `${j.id}  ${j.kind}  ${j.partition ?? '(shard)'}  on ${j.shard}`);
    if (jobs.length === 0) out(ctx, 'no partition to run it on');
  },

  async jobs(ctx) {
    arity(ctx.args, 0, 1, 'jobs [id] [--state S] [--kind K] [--limit N]');
    if (ctx.args[0] !== undefined) {
      const job = await ctx.client.admin.job(ctx.args[0], { signal: ctx.io.signal });
      if (job === null) throw new SkeinError('NOT_FOUND', `no job ${ctx.args[0]}`);
      return out(ctx, ctx.json ? toJson(job) : formatTree(job).join('\n'));
    }
    const state = ctx.values.state;
    if (state !== undefined && !(JOB_STATES as readonly string[]).includes(state)) throw new UsageError(`--state is one of ${JOB_STATES.join(', ')}`);
    const kind = ctx.values.kind;
    if (kind !== undefined && !(JOB_KINDS as readonly string[]).includes(kind)) throw new UsageError(`--kind is one of ${JOB_KINDS.join(', ')}`);
    const limit = integerOption(ctx.values.limit, 'limit', 1);
    const jobs = await ctx.client.admin.jobs(
      { ...(state !== undefined ? { state: state as JobState } : {}), ...(kind !== undefined ? { kind: kind as JobKind } : {}), ...(limit !== undefined ? { limit } : {}) },
      { signal: ctx.io.signal },
    );
    for (const j of jobs) {
      if (ctx.json) out(ctx, toJson(j));
      else {
        // A move's job also says where the move stands: its phase, shards and bytes copied.
        const move = j.move ? `  ${j.move.state} ${j.move.from} -> ${j.move.to} ${j.move.copiedBytes} bytes` : '';
        out(ctx, `${j.id}  ${j.kind}  ${j.partition ?? '(shard)'}  ${j.state}  ${j.progress}%${move}  attempts ${j.attempts}  ${j.createdAt}${j.error ? `  error: ${j.error}` : ''}`);
      }
    }
  },

  async 'backup create'(ctx) {
    arity(ctx.args, 0, 0, 'backup create');
    const backup = await ctx.client.admin.createBackup({ signal: ctx.io.signal });
    if (ctx.json) return out(ctx, toJson(backup));
    out(ctx, `backup ${backup.id}: ${backup.jobs.length} shard job(s) ${backup.jobs.map((j) => j.id).join(', ')}`);
  },

  async 'backup list'(ctx) {
    arity(ctx.args, 0, 0, 'backup list');
    for (const b of await ctx.client.admin.backups({ signal: ctx.io.signal })) {
      if (ctx.json) out(ctx, toJson(b));
      else out(ctx, `${b.id}  ${b.createdAt}  ${b.complete ? 'complete' : 'incomplete'}  ${b.shards.map((s) => `${s.shard}@${s.position} (${s.bytes} B)`).join('  ')}`);
    }
  },

  async 'backup restore'(ctx) {
    arity(ctx.args, 0, 0, 'backup restore --backup-dir DIR --data-dir DIR [--id ID]');
    const from = ctx.values['backup-dir'];
    const into = ctx.values['data-dir'];
    if (from === undefined || into === undefined) throw new UsageError('give --backup-dir (the shard\'s SKEIN_SHARD_BACKUP_DIR) and --data-dir (an empty directory)');
    const restored = await restoreOnThisHost(from, into, ctx.values.id);
    if (ctx.json) return out(ctx, toJson(restored));
    out(ctx, `restored backup ${restored.id} (events up to position ${restored.highestPosition}) into ${into}; start a shard on it`);
  },

  async status(ctx) {
    arity(ctx.args, 0, 0, 'status');
    const status = await ctx.client.admin.cluster({ signal: ctx.io.signal });
    out(ctx, ctx.json ? toJson(status) : formatTree(status).join('\n'));
  },

  async 'cluster status'(ctx) {
    arity(ctx.args, 0, 0, 'cluster status');
    const status = await ctx.client.admin.cluster({ signal: ctx.io.signal });
    out(ctx, ctx.json ? toJson(status) : formatTree(status).join('\n'));
  },

  async 'cluster add'(ctx) {
    arity(ctx.args, 2, 2, 'cluster add <id> <url>');
    await ctx.client.admin.addShard({ id: ctx.args[0]!, url: ctx.args[1]! }, { signal: ctx.io.signal });
    out(ctx, ctx.json ? toJson({ id: ctx.args[0], url: ctx.args[1], state: 'active' }) : `shard ${ctx.args[0]} joined (empty); run skein cluster rebalance to move partitions to it`);
  },

  async 'cluster drain'(ctx) {
    arity(ctx.args, 1, 1, 'cluster drain <id>');
    const { moves } = await ctx.client.admin.drainShard(ctx.args[0]!, { signal: ctx.io.signal });
    printMoves(ctx, moves, `shard ${ctx.args[0]} draining`);
  },

  async 'cluster remove'(ctx) {
    arity(ctx.args, 1, 1, 'cluster remove <id>');
    await ctx.client.admin.removeShard(ctx.args[0]!, { signal: ctx.io.signal });
    out(ctx, ctx.json ? toJson({ removed: ctx.args[0] }) : `shard ${ctx.args[0]} removed`);
  },

  async 'cluster rebalance'(ctx) {
    arity(ctx.args, 0, 0, 'cluster rebalance [--plan]');
    const { moves } = await ctx.client.admin.rebalance({ dryRun: ctx.values.plan === true }, { signal: ctx.io.signal });
    printMoves(ctx, moves, ctx.values.plan ? 'plan' : 'rebalancing');
  },

  async 'partition move'(ctx) {
    arity(ctx.args, 2, 2, 'partition move <partition> <shard>');
    let move = await ctx.client.admin.movePartition(ctx.args[0]!, ctx.args[1]!, { signal: ctx.io.signal });
    if (!ctx.json) out(ctx, `move ${move.id}: ${move.partition} ${move.from} -> ${move.to}`);
    let shown = '';
    while (move.state !== 'done' && move.state !== 'rolled_back') {
      const line = `${move.state} ${move.copiedBytes} bytes`;
      if (!ctx.json && line !== shown) out(ctx, (shown = line));
      await new Promise((r) => setTimeout(r, 200));
      move = (await ctx.client.admin.move(move.id, { signal: ctx.io.signal })) ?? move;
    }
    if (ctx.json) return out(ctx, toJson(move));
    out(ctx, move.state === 'done' ? `done: ${move.copiedBytes} bytes copied, writes paused ${move.pauseMs ?? 0} ms` : `rolled back: ${move.reason ?? ''}`);
    if (move.state === 'rolled_back') throw new SkeinError('CONFLICT', `the move rolled back: ${move.reason ?? 'unknown reason'}`);
  },
};

function printMoves(ctx: Context, moves: { id?: string; partition: string; from: string; to: string }[], title: string): void {
  if (ctx.json) return moves.forEach((m) => out(ctx, toJson(m)));
  out(ctx, `${title}: ${moves.length} move(s)`);
  for (const m of moves) out(ctx, `  ${m.partition}  ${m.from} -> ${m.to}${m.id ? `  (${m.id})` : ''}`);
}

/**
 * Runs one `skein` command line (without `node` and the script) and resolves to the exit
 * code. Writes results to stdout and one `error: …` line to stderr on failure; never throws.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: { ...GLOBAL_OPTIONS, ...COMMAND_OPTIONS }, allowPositionals: true, strict: true });
    } catch (err) {
      // node's message goes on to explain `--`; its first sentence is what the user needs.
      throw new UsageError((err as Error).message.split(/\. To specify|\n/)[0]!.replace(/^Unknown option/, 'unknown option'));
    }
    const { values, positionals } = parsed;
    if (values.help) {
      io.stdout.write(USAGE + '\n');
      return EXIT.ok;
    }
    if (values.version) {
      io.stdout.write(`${io.version ?? 'unknown'}\n`);
      return EXIT.ok;
    }
    const first = positionals[0];
    if (first === undefined) throw new UsageError('no command given');
    const group = GROUPS[first];
    const name = group ? `${first} ${positionals[1] ?? ''}`.trim() : first;
    const command = COMMANDS[name];
    if (!command) {
      throw new UsageError(group ? `unknown ${first} command ${JSON.stringify(positionals[1] ?? '')} (${group.join(', ')})` : `unknown command ${JSON.stringify(first)}`);
    }
    for (const key of Object.keys(values)) {
      if (key in GLOBAL_OPTIONS) continue;
      if (!ACCEPTS[name]!.includes(key as OptionName)) throw new UsageError(`skein ${name} does not take --${key}`);
    }
    const url = values.url ?? io.env.SKEIN_URL ?? 'http://127.0.0.1:8080';
    if (!/^https?:\/\/[^/]/.test(url)) throw new UsageError(`--url must be an http(s) URL, got ${JSON.stringify(url)}`);
    const client = createClient({ url, apiKey: values['api-key'] ?? io.env.SKEIN_API_KEY, fetch: io.fetch });
    await command({ client, json: values.json === true, io, values: values as Values, args: positionals.slice(group ? 2 : 1) });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`error: ${err.message}\nrun 'skein --help' for usage\n`);
      return EXIT.usage;
    }
    if (io.signal?.aborted && !isSkeinError(err)) return EXIT.interrupted;
    io.stderr.write(`error: ${describeError(err)}\n`);
    return EXIT.failed;
  }
}
