// The calibration server of the benchmarks: a Fastify route that parses a JSON body
// and answers 201 with a fixed append result, nothing else. What it does per second
// with a given load generator is this machine's ceiling for one Fastify hop.
import Fastify from 'fastify';

const app = Fastify({ logger: false });
const answer = { streamId: 's', firstVersion: 1, lastVersion: 1, firstPosition: '1', lastPosition: '1' };
app.post('/echo/:stream', async (_req, reply) => reply.code(201).send(answer));
// The append route's shape, so that the append workload (measureSkeinAppends) drives it as it drives Skein.
app.post('/v1/tenants/:tenant/streams/:stream/events', async (_req, reply) => reply.code(201).send(answer));
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
const port = typeof address === 'object' && address ? address.port : 0;
console.log(JSON.stringify({ level: 30, msg: 'echo listening', url: `http://127.0.0.1:${port}` }));
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
