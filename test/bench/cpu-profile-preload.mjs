// Preloaded into every node process of a topology (NODE_OPTIONS=--import=<this file>,
// with SKEIN_BENCH_CPU_PROFILE_DIR set): the same V8 sampling profiler as --cpu-prof,
// which NODE_OPTIONS does not accept. Writes <dir>/<pid>.cpuprofile when the process exits.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';

const dir = process.env.SKEIN_BENCH_CPU_PROFILE_DIR;
// Main threads only: a worker (an engine's commit thread) would write its profile under the process's pid.
if (dir && isMainThread) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  const write = () =>
    session.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(join(dir, `${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  // A session on the process's own thread answers synchronously, so this works inside 'exit'.
  process.on('exit', write);
  // SIGUSR2: the profile so far, now (a process that is killed at the end never exits).
  process.on('SIGUSR2', () => {
    process.off('exit', write);
    write();
  });
}
