// Server CPU and memory from /proc (Linux): what every process of a topology spent,
// summed over all its threads (utime + stime of /proc/<pid>/stat), and its RSS.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (getconf CLK_TCK; 100 on Linux/x86). */
const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** One process at one instant. */
export interface ProcSample {
  pid: number;
  /** What it is: `router`, `shard-0`, `redis`, `node-1`, `postmaster`, `backend`, `walwriter`, … */
  label: string;
  /** utime + stime of every thread since it started, seconds. */
  cpuSeconds: number;
  rssBytes: number;
}

function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces and parentheses): state is [0].
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Parent pid of every live process. */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const f = statFields(Number(name));
      if (f[0] !== 'Z') out.set(Number(name), Number(f[1]));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Every live descendant of `root` (children, their children, …), not `root` itself. */
export function descendants(root: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const [pid, ppid] of parents()) byParent.set(ppid, [...(byParent.get(ppid) ?? []), pid]);
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const child of byParent.get(queue.shift()!) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/** Parent pid of `pid`, or undefined when it is gone. */
export function parentOf(pid: number): number | undefined {
  try {
    return Number(statFields(pid)[1]);
  } catch {
    return undefined;
  }
}

/**
 * A name for a server process: a Skein service by its settings (`SKEIN_SHARD_ID`, `SKEIN_ROLE`),
 * redis-server, or a PostgreSQL process by its title (`postgres: 15/main: walwriter`).
 */
export function labelOf(pid: number): string {
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  if (cmdline.startsWith('redis-server')) return 'redis';
  const title = /^postgres: [^:]+: (.*)$/.exec(cmdline.replace(/\0/g, ' ').trim());
  // A backend's title names its client: `postgres test 127.0.0.1(40312) idle`, `… [local] …`.
  if (title) return /\(\d+\)|\[local\]/.test(title[1]!) ? 'backend' : title[1]!.trim();
  if (/(^|\/)postgres\0/.test(cmdline)) return 'postmaster';
  let environ: string[] = [];
  try {
    environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  } catch {
    // another user's process: no environment to read
  }
  const setting = (name: string) => environ.find((v) => v.startsWith(`${name}=`))?.slice(name.length + 1);
  const args = cmdline.split('\0');
  const main = args.find((a) => /main\.(ts|js)$/.test(a)) ?? '';
  const service = /services\/([^/]+)\//.exec(main)?.[1];
  const role = setting('SKEIN_ROLE') ?? service ?? args[0]!.split('/').pop()!;
  const shard = setting('SKEIN_SHARD_ID');
  if (role === 'shard' && shard) return shard;
  const node = setting('SKEIN_NODE_ID');
  return node && role === 'node' ? `node-${node}` : role;
}

/** Samples `pids` now; processes that exited meanwhile are left out. */
export function sample(pids: readonly number[]): ProcSample[] {
  const out: ProcSample[] = [];
  for (const pid of pids) {
    try {
      const f = statFields(pid);
      const rssKiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      out.push({ pid, label: labelOf(pid), cpuSeconds: (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND, rssBytes: rssKiB * 1024 });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** One thread of a process at one instant: its name and the CPU it spent since it started. */
export interface ThreadSample {
  tid: number;
  /** The thread's name (`node`, `libuv-worker`, `V8 DefaultWorke`, …; Linux keeps 15 characters). */
  name: string;
  userSeconds: number;
  systemSeconds: number;
}

/** Samples every thread of `pid` now (`/proc/<pid>/task/<tid>/stat`); threads that exited meanwhile are left out. */
export function threadsOf(pid: number): ThreadSample[] {
  const out: ThreadSample[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ tid: Number(tid), name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), userSeconds: Number(f[11]) / TICKS_PER_SECOND, systemSeconds: Number(f[12]) / TICKS_PER_SECOND });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** What one process spent between two samples, and its RSS at the second. */
export interface ProcUsage {
  pid: number;
  label: string;
  cpuSeconds: number;
  rssBytes: number;
}

/**
 * CPU each process of `after` spent since `before`; a process that started in between
 * counts from zero. A process that exited in between is missing from `after`, and its
 * CPU with it.
 */
export function usageBetween(before: readonly ProcSample[], after: readonly ProcSample[]): ProcUsage[] {
  const start = new Map(before.map((s) => [s.pid, s.cpuSeconds]));
  return after.map((s) => ({ pid: s.pid, label: s.label, cpuSeconds: s.cpuSeconds - (start.get(s.pid) ?? 0), rssBytes: s.rssBytes }));
}

/** Usage summed by label (labels in first-seen order), with how many processes each holds. */
export function byLabel(usage: readonly ProcUsage[]): Array<{ label: string; processes: number; cpuSeconds: number; rssBytes: number }> {
  const out = new Map<string, { label: string; processes: number; cpuSeconds: number; rssBytes: number }>();
  for (const u of usage) {
    const g = out.get(u.label) ?? { label: u.label, processes: 0, cpuSeconds: 0, rssBytes: 0 };
    g.processes++;
    g.cpuSeconds += u.cpuSeconds;
    g.rssBytes += u.rssBytes;
    out.set(u.label, g);
  }
  return [...out.values()];
}
