// SIGKILL at a random moment while several writers append: every acknowledged event
// survives, no append is half there, versions are contiguous, positions unique.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEngine } from './index.ts';

const writerScript = fileURLToPath(new URL('./testing/crash-writer.ts', import.meta.url));

interface Ack {
  streamId: string;
  firstVersion: number;
  lastVersion: number;
  firstPosition: string;
  ids: string[];
}

function runUntilKilled(dir: string, tag: string, killAfterMs: number): Promise<Ack[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', writerScript, dir, '8', tag], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acks: Ack[] = [];
    let buffer = '';
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line === 'ready') setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        else acks.push(JSON.parse(line) as Ack);
      }
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(acks);
      else reject(new Error(`writer exited with ${code}: ${stderr}`));
    });
  });
}

test('a SIGKILLed writer loses no acknowledged event and leaves no append half written', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-crash-'));
  try {
    const acked: Ack[] = [];
    for (let round = 0; round < 3; round++) {
      const acks = await runUntilKilled(dir, String(round % 2), 300 + Math.floor(Math.random() * 1200));
      assert.ok(acks.length > 0, 'the writer acknowledged appends before it was killed');
      acked.push(...acks);
    }

    const store = createEngine({ path: dir });
    try {
      const log = [];
      for (let from = 0n; ; ) {
        const page = store.readShardLog({ fromPosition: from, limit: 1000 });
        if (page.events.length === 0) break;
        log.push(...page.events);
        from = page.next;
      }
      // Positions unique and increasing.
      for (let i = 1; i < log.length; i++) assert.ok(log[i]!.position > log[i - 1]!.position, 'positions increase');

      const streams = new Set(log.map((e) => e.streamId));
      const byId = new Map<string, { version: number; position: bigint }>();
      for (const streamId of streams) {
        const events = [];
        for (let from: number | null = 1; from !== null; ) {
          const page = store.readStream('p', streamId, { from, limit: 1000 });
          assert.equal(page.ok, true);
          if (!page.ok) break;
          events.push(...page.events);
          from = page.next;
        }
        // Versions contiguous from 1.
        assert.deepEqual(events.map((e) => e.version), events.map((_, i) => i + 1), `versions of ${streamId}`);
        // Every append whole: its events sit together and are all there.
        for (let i = 0; i < events.length; ) {
          const { appendId, count } = events[i]!.data as { appendId: string; count: number };
          for (let j = 0; j < count; j++) {
            const e: (typeof events)[number] | undefined = events[i + j];
            assert.ok(e, `append ${appendId} of ${streamId} is cut short`);
            assert.deepEqual(e.data, { appendId, i: j, count, pad: 'x'.repeat(200) });
          }
          i += count;
        }
        for (const e of events) byId.set(e.id, { version: e.version, position: e.position });
      }
      // Every acknowledged event is there, at the acknowledged version and position.
      let checked = 0;
      for (const ack of acked) {
        ack.ids.forEach((id, i) => {
          const found = byId.get(id);
          assert.ok(found, `acknowledged event ${id} of ${ack.streamId} is missing`);
          assert.equal(found.version, ack.firstVersion + i);
          assert.equal(found.position, BigInt(ack.firstPosition) + BigInt(i));
          checked++;
        });
      }
      assert.ok(checked > 100, `checked ${checked} acknowledged events`);
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
