/**
 * Periodic jobs on in-process timers: where a node without Redis runs what BullMQ job
 * schedulers run in a cluster (DESIGN.md, "Control plane", embedded default). A job
 * never runs twice at once (a run that is still going when its next one is due skips
 * that one); a failure is logged (once per run) and the job runs again at its next turn.
 */
export interface TimerJobs {
  /** Runs `run` every `everyMs` (first after `everyMs`) until {@link close}. */
  every(name: string, everyMs: number, run: () => Promise<void>): void;
  /** Stops every timer and resolves once the runs in progress ended. */
  close(): Promise<void>;
}

export interface TimerJobsLogger {
  warn(obj: object, msg?: string): void;
}

export function createTimerJobs(deps: { logger?: TimerJobsLogger } = {}): TimerJobs {
  const timers: NodeJS.Timeout[] = [];
  const running = new Set<Promise<void>>();
  let closed = false;
  return {
    every(name, everyMs, run) {
      if (closed) throw new Error(`timer job ${name} added after close`);
      let current: Promise<void> | null = null;
      const timer = setInterval(() => {
        if (current) return;
        current = run()
          .catch((err: unknown) => deps.logger?.warn({ err, job: name }, 'timer job failed; it runs again at its next turn'))
          .finally(() => {
            running.delete(current!);
            current = null;
          });
        running.add(current);
      }, everyMs);
      timer.unref();
      timers.push(timer);
    },
    async close() {
      closed = true;
      for (const t of timers) clearInterval(t);
      await Promise.allSettled([...running]);
    },
  };
}
