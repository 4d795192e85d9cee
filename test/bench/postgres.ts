// The PostgreSQL baseline of issue 9: the same workload as Skein's appends, as one
// autocommit INSERT per event into an indexed table, from node `pg` clients, with the
// server's own durability settings (checked and reported, never changed here).
import pg from 'pg';
import { descendants, parentOf } from './proc.ts';
import { EVENT_DATA, measureWindow, StreamVersions, type Measured, type Timing } from './workload.ts';

export interface PostgresSettings {
  /** A libpq-style connection string; default `postgresql://postgres@127.0.0.1:5432/test` (SKEIN_BENCH_PG_URL). */
  url: string;
  clients: number;
  streams: number;
}

/** What the baseline measured, or why it was skipped. */
export type PostgresOutcome =
  | { skipped: string }
  | {
      version: string;
      synchronousCommit: string;
      fsync: string;
      walSyncMethod: string;
      /** The table the INSERTs went to. */
      ddl: string;
      measured: Measured;
    };

const TABLE = `skein_bench_events_${process.pid}`;
const DDL = `CREATE TABLE ${TABLE} (position bigserial, stream text NOT NULL, version int NOT NULL, data jsonb NOT NULL, PRIMARY KEY (stream, version))`;

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  await client.connect();
  return client;
}

/**
 * The server's processes: the postmaster (parent of a backend) and every process it
 * started. Only for a server on this machine whose processes /proc shows; else empty.
 */
function serverProcesses(backendPid: number): () => number[] {
  const postmaster = parentOf(backendPid);
  if (postmaster === undefined) return () => [];
  return () => [postmaster, ...descendants(postmaster)];
}

/** Runs the baseline, or says why it could not (no server reachable, not on this machine). */
export async function measurePostgres(settings: PostgresSettings, timing: Timing): Promise<PostgresOutcome> {
  let admin: pg.Client;
  try {
    admin = await connect(settings.url);
  } catch (err) {
    return { skipped: `no PostgreSQL at ${settings.url.replace(/:[^:@/]*@/, ':***@')} (${err instanceof Error ? err.message : String(err)})` };
  }
  const clients: pg.Client[] = [];
  try {
    const show = async (name: string) => String((await admin.query(`SHOW ${name}`)).rows[0]?.[name]);
    const version = await show('server_version');
    const synchronousCommit = await show('synchronous_commit');
    const fsync = await show('fsync');
    const walSyncMethod = await show('wal_sync_method');
    const backendPid = Number((await admin.query('SELECT pg_backend_pid() AS pid')).rows[0]?.pid);
    const pids = serverProcesses(backendPid);
    if (pids().length === 0) return { skipped: `PostgreSQL at ${settings.url} runs elsewhere: its processes are not in /proc` };
    await admin.query(`DROP TABLE IF EXISTS ${TABLE}`);
    await admin.query(DDL);
    for (let i = 0; i < settings.clients; i++) clients.push(await connect(settings.url));

    const versions = new StreamVersions(settings.clients, settings.streams);
    const data = JSON.stringify(EVENT_DATA);
    let latencies: number[] = [];
    let ok = 0;
    let failed = 0;
    let recording = true;
    let stopping = false;
    let windowStart = 0;
    const loops = clients.map(async (client, c) => {
      while (!stopping) {
        const s = versions.current(c);
        const t0 = performance.now();
        try {
          // A named statement: parsed and planned once per connection, as an application's would be.
          await client.query({ name: 'append', text: `INSERT INTO ${TABLE} (stream, version, data) VALUES ($1, $2, $3)`, values: [`order-${s}`, versions.versions[s]! + 1, data] });
          versions.acknowledged(c, 1);
          if (recording) {
            ok++;
            latencies.push(performance.now() - t0);
          }
        } catch (err) {
          if (recording) failed++;
          if (failed > 100) throw err;
        }
      }
    });
    const measured = await measureWindow(
      timing,
      1,
      pids,
      () => {
        latencies = [];
        ok = 0;
        failed = 0;
        windowStart = performance.now();
      },
      async () => {
        recording = false;
        const seconds = (performance.now() - windowStart) / 1000;
        stopping = true;
        await Promise.all(loops);
        return { seconds, latencies, ok, statuses: { ok, ...(failed > 0 ? { error: failed } : {}) } };
      },
    );
    return { version, synchronousCommit, fsync, walSyncMethod, ddl: DDL.replace(TABLE, 'events'), measured };
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await admin.query(`DROP TABLE IF EXISTS ${TABLE}`).catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
}
