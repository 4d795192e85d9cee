// A child process for the crash test: appends from several concurrent writers and
// prints one line per acknowledgement, until it is killed.
// Usage: node --import tsx crash-writer.ts <dir> <writers> <tag>
import { randomUUID } from 'node:crypto';
import { createEngine } from '../index.ts';

const [dir, writersArg, tag] = process.argv.slice(2);
const engine = createEngine({ path: dir! });
const writers = Number(writersArg);

async function writer(w: number) {
  const streamId = `crash-${tag}-${w}`;
  let version = engine.streamState('p', streamId).version;
  for (let n = 0; ; n++) {
    const count = 1 + ((n * 7 + w) % 4);
    const appendId = randomUUID();
    const events = Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type: 'Crash', data: { appendId, i, count, pad: 'x'.repeat(200) } }));
    const r = await engine.append('p', streamId, { expectedVersion: version, events });
    if (!r.ok) throw new Error(`unexpected outcome ${JSON.stringify(r)}`);
    version = r.lastVersion;
    process.stdout.write(
      JSON.stringify({ streamId, firstVersion: r.firstVersion, lastVersion: r.lastVersion, firstPosition: String(r.firstPosition), ids: events.map((e) => e.id) }) + '\n',
    );
  }
}
process.stdout.write('ready\n');
await Promise.all(Array.from({ length: writers }, (_, w) => writer(w)));
