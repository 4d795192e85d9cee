// The control-store contract against Redis: a real redis-server, a fresh database per test.
import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { controlStoreContract, startRedis, type RedisServer } from '@skein/testing';
import { createRedisControlStore } from './redis-control-store.ts';

let server: RedisServer;
before(async () => {
  server = await startRedis();
});
after(async () => {
  await server.stop();
});

let db = 0;
controlStoreContract('redis', async () => {
  // Databases 0–15 of one server; each test gets its own (SELECT), never a FLUSHALL of another's.
  const url = `${server.url}/${db++ % 16}`;
  const redis = new Redis(url);
  const subscriber = new Redis(url);
  await redis.flushdb();
  return {
    store: createRedisControlStore({ redis, subscriber }),
    async close() {
      redis.disconnect();
      subscriber.disconnect();
    },
  };
});
