// The deploy files are checked as the tools that run them would read them: docker-compose.yml
// against the Compose specification's JSON schema (as the dclint package ships it), the Kubernetes
// manifests against the Kubernetes API schemas (kubernetes-models), the Prometheus files
// with promtool; and every image, port, setting and path they name against this repository
// (each service's own loadConfig judges the environment it would get).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, posix } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ajv } from 'ajv';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { ROOT, ROUTER_SETTINGS, SHARD_SETTINGS, dashboardQueries, readEnvFile, readText, readYaml, readYamlDocuments, repoPath } from './support.ts';

const require = createRequire(import.meta.url);

// --- Dockerfile ------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

/** Dockerfile instructions by stage (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.endsWith('\\')) pending += `${line.slice(0, -1)} `;
    else {
      logical.push(pending + line);
      pending = '';
    }
  }
  const stages: Stage[] = [];
  for (const line of logical) {
    const [keyword, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (keyword!.toUpperCase() === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      assert.ok(m, `FROM ${args}`);
      stages.push({ name: m[2] ?? String(stages.length), from: m[1]!, instructions: [] });
    } else {
      assert.ok(stages.length > 0, `${keyword} before the first FROM`);
      stages.at(-1)!.instructions.push({ keyword: keyword!.toUpperCase(), args });
    }
  }
  return stages;
}

const dockerfile = parseDockerfile(readText('deploy/Dockerfile'));
const stage = (name: string) => {
  const s = dockerfile.find((x) => x.name === name);
  assert.ok(s, `deploy/Dockerfile has a stage ${name}`);
  return s;
};
/** A stage's instructions including those of the stages it is built FROM. */
function lineage(name: string): Instruction[] {
  const s = stage(name);
  return dockerfile.some((x) => x.name === s.from) ? [...lineage(s.from), ...s.instructions] : s.instructions;
}
const envOf = (instructions: Instruction[]) => {
  const env: Record<string, string> = {};
  for (const i of instructions.filter((x) => x.keyword === 'ENV')) for (const m of i.args.matchAll(/([A-Z0-9_]+)=(\S+)/g)) env[m[1]!] = m[2]!;
  return env;
};

/** The workspace package directories of the root package.json (`libs/*` expanded). */
function workspaceDirs(): string[] {
  const globs = (JSON.parse(readText('package.json')) as { workspaces: string[] }).workspaces;
  return globs.flatMap((g) =>
    g.endsWith('/*')
      ? readdirSync(repoPath(g.slice(0, -2)))
          .map((d) => `${g.slice(0, -2)}/${d}`)
          .filter((d) => existsSync(repoPath(`${d}/package.json`)))
      : [g],
  );
}

describe('deploy/Dockerfile', () => {
  test('builds from node:20-slim by tag, stage by stage, with every path it copies present in the repository', () => {
    const names = dockerfile.map((s) => s.name);
    for (const s of dockerfile) {
      if (names.includes(s.from)) assert.ok(names.indexOf(s.from) < names.indexOf(s.name), `${s.name} builds FROM an earlier stage`);
      else assert.equal(s.from, 'node:20-slim', `stage ${s.name} starts from node:20-slim`);
      for (const i of s.instructions.filter((x) => x.keyword === 'COPY')) {
        const words = i.args.split(/\s+/);
        const from = words.find((w) => w.startsWith('--from='));
        const paths = words.filter((w) => !w.startsWith('--'));
        const sources = paths.slice(0, -1);
        if (from) assert.ok(names.includes(from.slice('--from='.length)), `${i.args}: no such stage`);
        else for (const src of sources) assert.ok(existsSync(repoPath(src)), `COPY ${src} (stage ${s.name}): not in the repository`);
      }
    }
  });

  test('installs every workspace manifest, compiles with npm run build, and ships production dependencies only', () => {
    for (const name of ['build', 'deps']) {
      const copied = stage(name).instructions.filter((i) => i.keyword === 'COPY').map((i) => i.args.split(/\s+/)[0]);
      for (const dir of workspaceDirs()) assert.ok(copied.includes(`${dir}/package.json`), `stage ${name} copies ${dir}/package.json (npm ci needs every workspace)`);
    }
    const runs = (name: string) => stage(name).instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    assert.match(runs('build'), /npm ci\b/);
    assert.match(runs('build'), /npm run build\b/);
    assert.ok((JSON.parse(readText('package.json')) as { scripts: Record<string, string> }).scripts.build, 'the root package.json has a build script');
    assert.match(runs('deps'), /npm ci --omit=dev\b/);
    const runtimeCopies = stage('runtime').instructions.filter((i) => i.keyword === 'COPY').map((i) => i.args);
    assert.ok(runtimeCopies.some((c) => c.startsWith('--from=deps') && c.includes('node_modules')), 'node_modules come from the production-only stage');
    assert.ok(!runtimeCopies.some((c) => c.startsWith('--from=build') && c.includes('node_modules')), 'no node_modules from the build stage');
  });

  for (const service of ['shard', 'router'] as const) {
    test(`the ${service} image runs dist/main.js as the non-root node user, with a /readyz HEALTHCHECK on its own port`, () => {
      const all = lineage(service);
      const users = all.filter((i) => i.keyword === 'USER').map((i) => i.args);
      assert.equal(users.at(-1), 'node');
      const cmd = JSON.parse(all.filter((i) => i.keyword === 'CMD').at(-1)!.args) as string[];
      assert.deepEqual(cmd, ['node', `services/${service}/dist/main.js`]);
      assert.ok(existsSync(repoPath(`services/${service}/src/main.ts`)), 'dist/main.js is compiled from src/main.ts');
      const health = all.filter((i) => i.keyword === 'HEALTHCHECK').at(-1)!.args;
      assert.match(health, /\/readyz/);
      const env = envOf(all);
      const settings = service === 'shard' ? SHARD_SETTINGS() : ROUTER_SETTINGS();
      for (const name of Object.keys(env).filter((n) => n.startsWith('SKEIN_'))) assert.ok(settings.has(name), `ENV ${name}: the ${service} reads no such setting`);
      const portSetting = service === 'shard' ? 'SKEIN_SHARD_PORT' : 'SKEIN_ROUTER_PORT';
      assert.match(health, new RegExp(`process\\.env\\.${portSetting}`));
      assert.deepEqual(all.filter((i) => i.keyword === 'EXPOSE').map((i) => i.args), [env[portSetting]]);
    });
  }

  test('the build context leaves out node_modules, build output, git and local secrets', () => {
    const ignored = readText('deploy/Dockerfile.dockerignore').split('\n').map((l) => l.trim());
    for (const entry of ['.git', '**/node_modules', '**/dist', '.env', 'deploy/k8s/secrets.env']) assert.ok(ignored.includes(entry), entry);
  });
});

// --- docker-compose.yml ----------------------------------------------------------------

/** Compose's interpolation of `${VAR}`, `${VAR:?message}`, `${VAR:-default}` and `$$`. */
function interpolate(value: unknown, env: Map<string, string>, used: Set<string>): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([?-])([^}]*))?\}/g, (whole, name: string | undefined, op: string | undefined, arg: string) => {
      if (whole === '$$') return '$';
      used.add(name!);
      const v = env.get(name!) ?? '';
      if (v === '' && op === '?') throw new Error(`required variable ${name} is missing a value: ${arg}`);
      return v === '' && op === '-' ? arg : v;
    });
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env, used));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env, used)]));
  return value;
}

const TEST_VALUE = '0123456789abcdef'.repeat(4);
const composeExample = readEnvFile('deploy/compose.env.example');
const composeUsed = new Set<string>();
const compose = interpolate(readYaml('docker-compose.yml'), new Map([...composeExample.keys()].map((k) => [k, TEST_VALUE])), composeUsed) as any;
const services = compose.services as Record<string, any>;
const builtFrom = (target: string) => Object.entries(services).filter(([, s]) => s.build?.target === target);

/** Runs each service's own loadConfig in a child process (services are not imported by tests); returns the violations per case. */
function configViolations(cases: { service: 'shard' | 'router'; env: Record<string, string> }[]): string[][] {
  const modules = { shard: pathToFileURL(repoPath('libs/shard/src/config.ts')).href, router: pathToFileURL(repoPath('libs/router/src/config.ts')).href };
  const code = `
    const modules = ${JSON.stringify(modules)};
    const out = [];
    for (const c of JSON.parse(process.env.CASES)) {
      const { loadConfig } = await import(modules[c.service]);
      try { loadConfig(c.env); out.push([]); } catch (err) { out.push(err.violations ?? [String(err)]); }
    }
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--conditions=skein-source', '--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, CASES: JSON.stringify(cases) },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as string[][];
}

/** Compose `environment` as a map (it may be a list of KEY=value). */
const environmentOf = (s: any): Record<string, string> =>
  Array.isArray(s.environment) ? Object.fromEntries(s.environment.map((e: string) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])) : { ...(s.environment ?? {}) };

describe('docker-compose.yml', () => {
  test('is valid against the Compose specification schema', () => {
    // dclint ships the Compose specification's schema (draft-07) without exporting its path.
    const schemaFile = join(dirname(require.resolve('dclint/package.json')), 'schemas/compose.schema.json');
    const schema = JSON.parse(readFileSync(schemaFile, 'utf8')) as Record<string, unknown>;
    // Ajv knows the draft-07 meta-schema by its http id; the file names it by https.
    delete schema.$schema;
    // strict: false because the schema uses annotations Ajv does not know (`deprecated`).
    const ajv = new Ajv({ allErrors: true, strict: false });
    const validate = ajv.compile(schema);
    const valid = validate(compose);
    assert.ok(valid, JSON.stringify(validate.errors, null, 2));
    // The schema is not a rubber stamp: a misspelt service key is refused.
    assert.equal(validate({ services: { x: { image: 'redis:7', enviroment: {} } } }), false);
  });

  test('every variable it interpolates is in deploy/compose.env.example, which commits no value', () => {
    assert.deepEqual([...composeUsed].filter((v) => !composeExample.has(v)), []);
    for (const [k, v] of composeExample) assert.equal(v, '', `${k} has a value in the example`);
    assert.throws(() => interpolate(readYaml('docker-compose.yml'), new Map(), new Set()), /required variable/, 'an unset secret stops compose');
  });

  test('Redis is redis:7 with AOF fsynced always, noeviction and the password every service uses', () => {
    const redis = services.redis;
    assert.equal(redis.image, 'redis:7');
    const args = (redis.command as string[]).join(' ');
    for (const setting of ['--appendonly yes', '--appendfsync always', '--maxmemory-policy noeviction', `--requirepass ${TEST_VALUE}`]) assert.ok(args.includes(setting), setting);
    assert.deepEqual(redis.volumes, ['redis-data:/data']);
    for (const [name, s] of [...builtFrom('shard'), ...builtFrom('router')]) {
      assert.equal(environmentOf(s).SKEIN_REDIS_URL, `redis://:${TEST_VALUE}@redis:6379`, name);
    }
  });

  test('three shards and a router, built from deploy/Dockerfile, each environment accepted by that service\'s loadConfig', () => {
    const shards = builtFrom('shard');
    const routers = builtFrom('router');
    assert.equal(shards.length, 3);
    assert.equal(routers.length, 1);
    const stages = dockerfile.map((s) => s.name);
    for (const [name, s] of [...shards, ...routers]) {
      assert.ok(existsSync(repoPath(s.build.context)), `${name}: build context`);
      assert.ok(existsSync(repoPath(posix.join(s.build.context, s.build.dockerfile))), `${name}: dockerfile`);
      assert.ok(stages.includes(s.build.target), `${name}: target ${s.build.target} is a stage`);
      assert.match(s.image, new RegExp(`^skein-${s.build.target}:`));
    }
    const shardSettings = SHARD_SETTINGS();
    const routerSettings = ROUTER_SETTINGS();
    const imageEnv = (target: string) => envOf(lineage(target));
    const cases: { service: 'shard' | 'router'; env: Record<string, string> }[] = [];
    for (const [name, s] of shards) {
      const env = environmentOf(s);
      for (const k of Object.keys(env)) assert.ok(shardSettings.has(k), `${name}: SKEIN setting ${k} is not read by the shard`);
      assert.equal(env.SKEIN_SHARD_ID, name, 'the shard id is the service (and host) name');
      const dataDir = env.SKEIN_SHARD_DATA_DIR ?? imageEnv('shard').SKEIN_SHARD_DATA_DIR;
      const volume = (s.volumes as string[]).map((v) => v.split(':')).find(([, target]) => target === dataDir);
      assert.ok(volume && compose.volumes && volume[0]! in compose.volumes, `${name}: a named volume holds ${dataDir}`);
      cases.push({ service: 'shard', env: { ...imageEnv('shard'), ...env } });
    }
    for (const [name, s] of routers) {
      const env = environmentOf(s);
      for (const k of Object.keys(env)) assert.ok(routerSettings.has(k), `${name}: SKEIN setting ${k} is not read by the router`);
      const expected = shards.map(([id, sh]) => `${id}=http://${id}:${environmentOf(sh).SKEIN_SHARD_PORT ?? imageEnv('shard').SKEIN_SHARD_PORT}`);
      assert.deepEqual(env.SKEIN_ROUTER_SHARDS!.split(','), expected);
      cases.push({ service: 'router', env: { ...imageEnv('router'), ...env } });
    }
    assert.deepEqual(configViolations(cases), cases.map(() => []));
    // The check can fail: a shard without its id and secret is refused.
    const [broken] = configViolations([{ service: 'shard', env: { ...cases[0]!.env, SKEIN_SHARD_ID: '', SKEIN_CLUSTER_SECRET: 'short' } }]);
    assert.equal(broken!.length, 2, JSON.stringify(broken));
  });

  test('only the router is published on all interfaces; shards and Redis publish nothing; Prometheus and Grafana on loopback', () => {
    for (const [name, s] of Object.entries(services)) {
      const ports = (s.ports ?? []) as string[];
      if (name === 'router') {
        assert.deepEqual(ports, [`${environmentOf(s).SKEIN_ROUTER_PORT}:${environmentOf(s).SKEIN_ROUTER_PORT}`]);
      } else if (name === 'redis' || s.build?.target === 'shard') {
        assert.deepEqual(ports, [], `${name} publishes no port`);
      } else {
        for (const p of ports) assert.match(p, /^127\.0\.0\.1:/, `${name} publishes on loopback only`);
      }
    }
  });

  test('bind mounts name files of this repository; Prometheus scrapes every Skein service on its port; Grafana gets the datasource and the dashboard', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const v of (s.volumes ?? []) as string[]) {
        const [source] = v.split(':');
        if (source!.startsWith('.')) assert.ok(existsSync(repoPath(source!)), `${name}: ${source} is in the repository`);
      }
    }
    const prometheus = readYaml('deploy/prometheus/prometheus.yml');
    const targets = (job: string) => prometheus.scrape_configs.find((c: any) => c.job_name === job).static_configs.flatMap((c: any) => c.targets).sort();
    assert.deepEqual(targets('skein-router'), builtFrom('router').map(([n, s]) => `${n}:${environmentOf(s).SKEIN_ROUTER_PORT}`).sort());
    assert.deepEqual(targets('skein-shard'), builtFrom('shard').map(([n, s]) => `${n}:${environmentOf(s).SKEIN_SHARD_PORT}`).sort());
    const promVolume = (services.prometheus.volumes as string[]).find((v) => v.startsWith('./deploy/prometheus:'))!;
    const configFlag = (services.prometheus.command as string[]).find((c) => c.startsWith('--config.file='))!;
    assert.equal(dirname(configFlag.slice('--config.file='.length)), promVolume.split(':')[1]);

    const datasource = readYaml('deploy/grafana/provisioning/datasources/prometheus.yml').datasources[0];
    assert.equal(datasource.url, 'http://prometheus:9090');
    assert.ok('prometheus' in services);
    const dashboard = JSON.parse(readText('deploy/grafana/skein.json'));
    const uids = new Set([...dashboard.panels.flatMap((p: any) => [p.datasource, ...(p.targets ?? []).map((t: any) => t.datasource)]), ...dashboard.templating.list.map((v: any) => v.datasource)].map((d: any) => d.uid));
    assert.deepEqual([...uids], [datasource.uid]);
    const provider = readYaml('deploy/grafana/provisioning/dashboards/skein.yml').providers[0];
    const dashboardMount = (services.grafana.volumes as string[]).find((v) => v.startsWith('./deploy/grafana/skein.json:'))!;
    assert.equal(dirname(dashboardMount.split(':')[1]!), provider.options.path);
    assert.ok((services.grafana.volumes as string[]).some((v) => v.startsWith('./deploy/grafana/provisioning:/etc/grafana/provisioning')));
    assert.ok(dashboardQueries().length >= 14);
  });
});

// --- Kubernetes ------------------------------------------------------------------------

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/StatefulSet': StatefulSet,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

const kustomization = readYaml('deploy/k8s/kustomization.yaml');
const manifests: any[] = (kustomization.resources as string[]).flatMap((f) => readYamlDocuments(`deploy/k8s/${f}`));
const find = (kind: string, name: string) => {
  const m = manifests.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(m, `deploy/k8s has ${kind} ${name}`);
  return m;
};
const secretName = kustomization.secretGenerator[0].name as string;
const secretExample = readEnvFile(`deploy/k8s/${kustomization.secretGenerator[0].envs[0]}.example`);
const labelsMatch = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);

/** A container's environment as the kubelet would give it (ConfigMaps, secrets with test values, fieldRefs, `$(VAR)`). */
function containerEnv(container: any, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) Object.assign(env, find('ConfigMap', from.configMapRef.name).data);
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (w, n: string) => env[n] ?? w);
    else if (e.valueFrom?.secretKeyRef) {
      assert.equal(e.valueFrom.secretKeyRef.name, secretName);
      assert.ok(secretExample.has(e.valueFrom.secretKeyRef.key), `secret key ${e.valueFrom.secretKeyRef.key} is in the example env file`);
      env[e.name] = TEST_VALUE;
    } else if (e.valueFrom?.fieldRef) {
      assert.equal(e.valueFrom.fieldRef.fieldPath, 'metadata.name');
      env[e.name] = podName;
    } else assert.fail(`env ${e.name}: unsupported source`);
  }
  return env;
}

describe('deploy/k8s', () => {
  test('every manifest is valid against the Kubernetes API schema of its kind, and the kustomization lists every file', () => {
    const files = readdirSync(repoPath('deploy/k8s')).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
    assert.deepEqual([...kustomization.resources].sort(), files);
    for (const m of manifests) {
      const Model = MODELS[`${m.apiVersion}/${m.kind}`];
      assert.ok(Model, `${m.apiVersion} ${m.kind}: no schema known to this test`);
      assert.doesNotThrow(() => new Model(m).validate(), `${m.kind} ${m.metadata?.name}`);
    }
    // The Secret kustomize generates from the env file.
    new Secret({ metadata: { name: secretName }, stringData: Object.fromEntries([...secretExample.keys()].map((k) => [k, TEST_VALUE])) }).validate();
    for (const [k, v] of secretExample) assert.equal(v, '', `${k} has a value in the example`);
    // The schema is not a rubber stamp: a port that is not a number is refused.
    const broken = structuredClone(find('StatefulSet', 'skein-shard'));
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'http';
    assert.throws(() => new StatefulSet(broken).validate());
  });

  test('shards: a StatefulSet with volume claims under a headless Service whose pod DNS names the router lists', () => {
    const sts = find('StatefulSet', 'skein-shard');
    const headless = find('Service', sts.spec.serviceName);
    assert.equal(headless.spec.clusterIP, 'None');
    const pod = sts.spec.template;
    assert.ok(labelsMatch(headless.spec.selector, pod.metadata.labels));
    const container = pod.spec.containers[0];
    const env = containerEnv(container, `${sts.metadata.name}-0`);
    const port = Number(env.SKEIN_SHARD_PORT);
    assert.equal(container.ports.find((p: any) => p.name === 'http').containerPort, port);
    assert.equal(headless.spec.ports[0].port, port);
    const claim = sts.spec.volumeClaimTemplates[0].metadata.name;
    assert.equal(container.volumeMounts.find((v: any) => v.name === claim).mountPath, env.SKEIN_SHARD_DATA_DIR);
    const routerEnv = containerEnv(find('Deployment', 'skein-router').spec.template.spec.containers[0], 'skein-router-x');
    const expected = Array.from({ length: sts.spec.replicas }, (_, i) => `${sts.metadata.name}-${i}=http://${sts.metadata.name}-${i}.${headless.metadata.name}:${port}`);
    assert.deepEqual(routerEnv.SKEIN_ROUTER_SHARDS!.split(','), expected);
  });

  test('router: a Deployment behind a Service; every Skein container has /readyz and /healthz probes, requests and limits, and runs as non-root', () => {
    const deployment = find('Deployment', 'skein-router');
    const service = find('Service', 'skein-router');
    assert.ok(labelsMatch(service.spec.selector, deployment.spec.template.metadata.labels));
    assert.ok(labelsMatch(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels));
    for (const workload of [deployment, find('StatefulSet', 'skein-shard')]) {
      const spec = workload.spec.template.spec;
      assert.equal(spec.securityContext.runAsNonRoot, true);
      for (const c of spec.containers) {
        assert.equal(c.readinessProbe.httpGet.path, '/readyz');
        assert.equal(c.livenessProbe.httpGet.path, '/healthz');
        for (const probe of [c.readinessProbe, c.livenessProbe]) assert.ok(c.ports.some((p: any) => p.name === probe.httpGet.port), 'probes use a declared port');
        for (const r of ['cpu', 'memory']) {
          assert.ok(c.resources.requests[r], `${c.name} requests ${r}`);
          assert.ok(c.resources.limits[r], `${c.name} limits ${r}`);
        }
        assert.match(c.image, /^skein-(shard|router):/);
        assert.ok(dockerfile.some((s) => s.name === c.image.split(':')[0].slice('skein-'.length)), `${c.image} is a target of deploy/Dockerfile`);
      }
    }
  });

  test('config in ConfigMaps, keys in the Secret, and each service\'s loadConfig accepts the environment its pods get', () => {
    const shardSettings = SHARD_SETTINGS();
    const routerSettings = ROUTER_SETTINGS();
    const shardEnv = containerEnv(find('StatefulSet', 'skein-shard').spec.template.spec.containers[0], 'skein-shard-0');
    const routerEnv = containerEnv(find('Deployment', 'skein-router').spec.template.spec.containers[0], 'skein-router-x');
    for (const k of Object.keys(shardEnv).filter((n) => n.startsWith('SKEIN_'))) assert.ok(shardSettings.has(k), `shard: ${k} is not read by the shard`);
    for (const k of Object.keys(routerEnv).filter((n) => n.startsWith('SKEIN_'))) assert.ok(routerSettings.has(k), `router: ${k} is not read by the router`);
    for (const cm of manifests.filter((m) => m.kind === 'ConfigMap')) {
      for (const k of Object.keys(cm.data)) assert.ok(!/KEY|SECRET|PASSWORD/.test(k), `${cm.metadata.name}: ${k} belongs in the Secret`);
    }
    assert.deepEqual([...secretExample.keys()].sort(), ['REDIS_PASSWORD', 'SKEIN_ADMIN_KEY', 'SKEIN_CLUSTER_SECRET']);
    assert.equal(shardEnv.SKEIN_REDIS_URL, `redis://:${TEST_VALUE}@skein-redis:6379`);
    const strip = (env: Record<string, string>) => Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('SKEIN_')));
    assert.deepEqual(configViolations([{ service: 'shard', env: strip(shardEnv) }, { service: 'router', env: strip(routerEnv) }]), [[], []]);
  });

  test('Redis: a StatefulSet with a volume claim, AOF fsynced always, noeviction and the password from the Secret', () => {
    const sts = find('StatefulSet', 'skein-redis');
    const service = find('Service', 'skein-redis');
    const c = sts.spec.template.spec.containers[0];
    assert.equal(c.image, 'redis:7');
    const args = (c.args as string[]).join(' ');
    for (const setting of ['--appendonly yes', '--appendfsync always', '--maxmemory-policy noeviction', '--requirepass $(REDIS_PASSWORD)']) assert.ok(args.includes(setting), setting);
    assert.equal(c.volumeMounts[0].name, sts.spec.volumeClaimTemplates[0].metadata.name);
    assert.equal(c.volumeMounts[0].mountPath, '/data');
    assert.equal(service.spec.ports[0].port, 6379);
    assert.ok(labelsMatch(service.spec.selector, sts.spec.template.metadata.labels));
    assert.equal(containerEnv(c, 'skein-redis-0').REDIS_PASSWORD, TEST_VALUE);
  });

  test('disruption budgets and network policies select the pods they are meant for', () => {
    const shardPods = find('StatefulSet', 'skein-shard').spec.template.metadata.labels;
    const routerPods = find('Deployment', 'skein-router').spec.template.metadata.labels;
    assert.equal(find('PodDisruptionBudget', 'skein-shard').spec.maxUnavailable, 1);
    assert.ok(labelsMatch(find('PodDisruptionBudget', 'skein-shard').spec.selector.matchLabels, shardPods));
    assert.ok(labelsMatch(find('PodDisruptionBudget', 'skein-router').spec.selector.matchLabels, routerPods));
    const shardPolicy = find('NetworkPolicy', 'skein-shard');
    assert.ok(labelsMatch(shardPolicy.spec.podSelector.matchLabels, shardPods));
    assert.ok(shardPolicy.spec.ingress[0].from.some((f: any) => !f.namespaceSelector && labelsMatch(f.podSelector.matchLabels, routerPods)), 'routers reach the shards');
    assert.ok(labelsMatch(find('NetworkPolicy', 'skein-redis').spec.podSelector.matchLabels, find('StatefulSet', 'skein-redis').spec.template.metadata.labels));
  });
});

// --- Prometheus ------------------------------------------------------------------------

describe('deploy/prometheus', () => {
  for (const [what, file] of [
    ['config', 'deploy/prometheus/prometheus.yml'],
    ['rules', 'deploy/prometheus/alerts.yml'],
  ] as const) {
    test(`promtool check ${what} passes on ${file}`, () => {
      const r = spawnSync('promtool', ['check', what, repoPath(file)], { encoding: 'utf8' });
      assert.ifError(r.error ? new Error(`promtool not found: apt-get install -y prometheus (${r.error.message})`) : null);
      assert.equal(r.status, 0, r.stdout + r.stderr);
    });
  }

  test('promtool refuses a broken rule file (the check above can fail)', () => {
    const dir = repoPath('deploy/prometheus');
    assert.ok(statSync(dir).isDirectory());
    const r = spawnSync('promtool', ['check', 'rules', '/dev/stdin'], { input: 'groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(up[5m) > 0\n', encoding: 'utf8' });
    assert.notEqual(r.status, 0);
  });
});
