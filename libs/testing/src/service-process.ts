import { spawn, type ChildProcess } from 'node:child_process';

/** Options of {@link startServiceProcess}. */
export interface ServiceProcessOptions {
  /** For messages: `router`, `shard-a`, … */
  name: string;
  /** Absolute path of the service's `main.ts`. */
  main: string;
  env: Record<string, string>;
  /** The pino message logged once listening; its `url` member is the base URL. */
  listeningMessage: string;
  /** Default 20 s. */
  startTimeoutMs?: number;
  /** Extra node flags (for example `--cpu-prof`). */
  nodeArgs?: string[];
}

/** A service process (run from its TypeScript sources: `node --conditions=skein-source --import tsx`) owned by a test. */
export interface ServiceProcess {
  readonly name: string;
  /** Base URL of the running process (it may change on restart with port 0). */
  readonly url: string;
  /** stdout and stderr lines so far. */
  readonly output: string[];
  /** Its process id while running (for SIGSTOP/SIGCONT, or /proc/<pid>/status), else undefined. */
  readonly pid: number | undefined;
  /** Sends `signal` (default SIGKILL); resolves with the exit code or signal once it exited. */
  kill(signal?: NodeJS.Signals): Promise<number | string | null>;
  /** Starts it again (after kill) with the same settings; resolves once it listens. */
  restart(): Promise<void>;
}

const running = new Set<ChildProcess>();
let hooked = false;

/** Spawns a service and resolves once it logged its listening line; rejects with its output when it exits first. */
export async function startServiceProcess(options: ServiceProcessOptions): Promise<ServiceProcess> {
  const output: string[] = [];
  let child: ChildProcess | undefined;
  let url = '';
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const c of running) c.kill('SIGKILL');
    });
  }

  async function start(): Promise<void> {
    const c = spawn(process.execPath, [...(options.nodeArgs ?? []), '--conditions=skein-source', '--import', 'tsx', options.main], { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    running.add(c);
    c.once('exit', () => running.delete(c));
    const timeoutMs = options.startTimeoutMs ?? 20_000;
    await new Promise<void>((resolve, reject) => {
      let buffered = '';
      const timer = setTimeout(() => reject(new Error(`${options.name} did not start within ${timeoutMs} ms:\n${output.slice(-20).join('\n')}`)), timeoutMs);
      const onLine = (line: string) => {
        output.push(line);
        const m = line.includes(`"${options.listeningMessage}"`) ? /"url":"([^"]+)"/.exec(line) : null;
        if (m && url === '') {
          url = m[1]!;
          clearTimeout(timer);
          resolve();
        }
      };
      c.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        let i;
        while ((i = buffered.indexOf('\n')) >= 0) {
          onLine(buffered.slice(0, i));
          buffered = buffered.slice(i + 1);
        }
      });
      c.stderr!.on('data', (chunk: Buffer) => output.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
      c.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${options.name} exited (${code ?? signal}) before listening:\n${output.slice(-20).join('\n')}`));
      });
    });
  }

  async function kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | string | null> {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return c ? (c.exitCode ?? c.signalCode) : null;
    const exited = new Promise<number | string | null>((resolve) => c.once('exit', (code, sig) => resolve(code ?? sig)));
    c.kill(signal);
    return exited;
  }

  await start();
  return {
    name: options.name,
    get url() {
      return url;
    },
    output,
    get pid() {
      return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
    },
    kill,
    async restart() {
      await kill('SIGKILL');
      url = '';
      await start();
    },
  };
}
