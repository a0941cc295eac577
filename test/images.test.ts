/**
 * The images without a Docker engine: every path the Dockerfiles COPY exists (and is not ignored by
 * .dockerignore), the compile stage's output has every entry point the images run, and each image's
 * ENTRYPOINT, run here with the environment its Dockerfile sets, either prints its one-line
 * configuration error or starts: /healthz, /metrics with the queue gauges, the HEALTHCHECK, SIGTERM.
 */
import t from 'tap';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { freePort } from '../lib/util/free-port.js';
import { ROOT } from './support/platform.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { startDynamo } from './support/dynamo.js';
import { waitUntil } from './support/wait.js';
import { parseDockerfile, runProcess, startProcess, type Dockerfile } from './support/dockerfile.js';

// A compile and a dozen real processes: more than the default per-file budget on a busy machine.
t.setTimeout(360_000);

const OUT = path.join(ROOT, 'node_modules/.cache/ztm-image-test');
const SERVICES = ['ingress', 'forwarder', 'waker', 'janitor', 'pool-keeper', 'dashboard', 'admin-api'];
// The admin API needs no secret of its own (only REDIS_URL, which has a default): it has no one-line secret error to print.
const NEEDING_SECRETS = SERVICES.filter((s) => s !== 'admin-api');
const SECRETS = { WEBHOOK_SECRET: 'w'.repeat(32), WARM_POOL_SECRET: 'p'.repeat(32) };

const platform = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
const agent = parseDockerfile(readFileSync(path.join(ROOT, 'agent/Dockerfile'), 'utf8'));
const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

let redis: TestRedis;
let dynamo: Awaited<ReturnType<typeof startDynamo>>;
let scratch: string;

/** The image's command with `/app` (its WORKDIR) mapped to the compiled tree here. */
const command = (d: Dockerfile): string[] => {
  const argv = d.entrypoint[0] === '/usr/bin/tini' ? d.entrypoint.slice(d.entrypoint.indexOf('--') + 1) : d.entrypoint;
  return argv.map((a) => a.replace(/^\/app(?=\/|$)/, OUT));
};
const baseEnv = () => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratch });

/** Runs `fn` over `items`, `width` at a time (a dozen node processes at once starve a small CI box). */
async function inBatches<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  return out;
}

t.before(async () => {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const tsc = await runProcess(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', path.join(OUT, 'dist')], { cwd: ROOT, timeoutMs: 150_000 });
  if (tsc.code !== 0) throw new Error(`the compile stage (tsc -p tsconfig.build.json) failed: ${tsc.stdout}${tsc.stderr}`);
  copyFileSync(path.join(ROOT, 'scripts/docker-entrypoint.sh'), path.join(OUT, 'docker-entrypoint.sh'));
  [redis, dynamo] = await Promise.all([startRedis(), startDynamo()]);
  scratch = mkdtempSync(path.join(os.tmpdir(), 'ztm-images-'));
});
t.teardown(async () => {
  await redis?.close();
  await dynamo?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

t.test('every base image is pinned to an exact version tag or a digest', async (t) => {
  const bases = [...platform.bases, ...agent.bases];
  t.ok(bases.length >= 3, `bases found: ${bases.join(', ')}`);
  for (const base of bases) {
    t.match(base, /(@sha256:[0-9a-f]{64}$)|(:\d+\.\d+\.\d+(-[a-z0-9.-]+)?$)/, `${base}: exact tag (major.minor.patch) or digest, never one that moves`);
  }
  t.ok(platform.bases.includes(`node:${process.versions.node}-bookworm-slim`), 'the services image runs the Node this suite runs on');
});

t.test('every path the Dockerfiles COPY exists and is in the build context', async (t) => {
  for (const [name, d] of [['Dockerfile', platform], ['agent/Dockerfile', agent]] as const) {
    t.ok(d.copies.length > 5, `${name} copies files`);
    for (const c of d.copies) {
      if (c.from === 'zeroclaw') continue; // the named build context of a ZeroClaw checkout
      if (c.from) {
        t.ok(d.stages.includes(c.from), `${name}: COPY --from=${c.from} names a stage`);
        continue;
      }
      for (const src of c.sources) {
        t.ok(existsSync(path.join(ROOT, src)), `${name}: ${src} exists`);
        const top = src.replace(/^\.\//, '').split('/')[0];
        t.notOk(ignored.includes(top ?? '') || ignored.includes(src), `${name}: ${src} is not in .dockerignore`);
      }
    }
  }
  t.same(agent.stages, ['compile', 'deps', 'agent-reference', 'zeroclaw-build-source', 'zeroclaw-build-release', 'zeroclaw-build', 'agent-zeroclaw', 'deps-node24', 'agent-openclaw']);
});

t.test('the compile stage produces every entry point the images run', async (t) => {
  for (const s of SERVICES) t.ok(existsSync(path.join(OUT, 'dist/services', s, 'main.js')), `dist/services/${s}/main.js`);
  for (const f of ['dist/cli/run.js', 'dist/services/healthcheck.js', 'dist/agent/shim.js', 'dist/agent/reference-agent.js']) t.ok(existsSync(path.join(OUT, f)), f);
  t.same(platform.entrypoint, ['/app/docker-entrypoint.sh']);
  t.same(agent.entrypoint.slice(0, 2), ['/usr/bin/tini', '--'], 'the tenant image runs its shim under tini');
  t.match(platform.user, /^[1-9][0-9]*:[1-9][0-9]*$/, 'platform image: numeric non-root user');
  t.equal(agent.user, '65532:65532', 'tenant image: the uid the Kubernetes runtime runs pods as');
  t.ok(platform.healthcheck && agent.healthcheck, 'both images have a HEALTHCHECK');
});

t.test('each service with only the image environment: the one-line configuration error', async (t) => {
  const results = await inBatches(NEEDING_SECRETS, 3, (s) => runProcess('sh', [...command(platform), s], { env: { ...baseEnv(), ...platform.env } }));
  NEEDING_SECRETS.forEach((s, i) => {
    const r = results[i]!;
    t.equal(r.code, 2, `${s} exits 2`);
    // Each service names the first secret it needs and lacks, in one line.
    t.match(r.stderr.trim(), new RegExp(`^${s}: configuration error: (WEBHOOK_SECRET|WARM_POOL_SECRET|DASHBOARD_PASSWORD): is required[^\n]*$`), s);
  });
  const none = await runProcess('sh', command(platform), { env: { ...baseEnv(), ...platform.env } });
  t.equal(none.code, 2);
  t.match(none.stderr, /^usage: SERVICE=<name> or argument <name>/);
});

t.test('the Kubernetes services outside a cluster say so in one line', async (t) => {
  const names = ['waker', 'janitor', 'pool-keeper'];
  const env = { ...baseEnv(), ...platform.env, ...SECRETS, REDIS_URL: redis.url, DYNAMODB_ENDPOINT: dynamo.endpoint, KUBECONFIG: path.join(scratch, 'none') };
  const results = await Promise.all(names.map((s) => runProcess('sh', [...command(platform), s], { env })));
  names.forEach((s, i) => {
    t.equal(results[i]!.code, 2, `${s} exits 2: a configuration error`);
    t.match(results[i]!.stderr, new RegExp(`^${s}: configuration error: RUNTIME: kubernetes: `, 'm'), s);
    t.equal(results[i]!.stderr.trim().split('\n').length, 1, `${s}: one line`);
  });
});

t.test('each service starts from the image entrypoint: probes, metrics, HEALTHCHECK, SIGTERM', async (t) => {
  await inBatches(SERVICES, 2, async (s) => {
    const [httpPort, adminPort, dashboardPort, apiPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    // The image's env; the runtime services use the local runtime here (no cluster), the others run as in the image.
    const env: Record<string, string> = {
      ...baseEnv(), ...platform.env, ...SECRETS,
      REDIS_URL: redis.url, DYNAMODB_ENDPOINT: dynamo.endpoint, DYNAMODB_TABLE: 'images-test', S3_ENDPOINT: 'http://127.0.0.1:1',
      INGRESS_PORT: String(httpPort), ADMIN_PORT: String(adminPort), DASHBOARD_PORT: String(dashboardPort), ADMIN_API_PORT: String(apiPort),
      DATA_DIR: path.join(scratch, s), WARM_POOL_TARGET: '0', DASHBOARD_USER: 'ops', DASHBOARD_PASSWORD: 'correct-horse-battery',
      ...(['waker', 'janitor', 'pool-keeper'].includes(s) ? { RUNTIME: 'local' } : {}),
    };
    const port = s === 'ingress' ? httpPort : s === 'dashboard' ? dashboardPort : adminPort;
    const proc = startProcess('sh', [...command(platform), s], { env });
    try {
      await waitUntil(`${s} /healthz`, async () => {
        if (proc.exited) throw new Error(`${s} exited ${proc.code}: ${proc.stderr}`);
        return request(`http://127.0.0.1:${port}/healthz`).then(async (r) => (await r.body.dump(), r.statusCode === 200), () => false);
      }, 60_000);
      // The ingress serves its metrics on ADMIN_PORT only: its webhook port faces the internet.
      const metricsPort = s === 'ingress' ? adminPort : port;
      if (s === 'ingress') {
        const onWebhookPort = await request(`http://127.0.0.1:${httpPort}/metrics`);
        await onWebhookPort.body.dump();
        t.equal(onWebhookPort.statusCode, 404, 'ingress: no /metrics on the webhook port');
      }
      if (s === 'admin-api') {
        // Its API on ADMIN_API_PORT, its metrics on ADMIN_PORT: the request it just answered is counted there.
        const api = await request(`http://127.0.0.1:${apiPort}/healthz`);
        await api.body.dump();
        t.equal(api.statusCode, 200, 'admin-api: /healthz on its API port');
      }
      const metrics = await request(`http://127.0.0.1:${metricsPort}/metrics`);
      const text = await metrics.body.text();
      t.equal(metrics.statusCode, 200, `${s} /metrics`);
      if (s === 'admin-api') {
        t.match(text, /^ztm_admin_api_requests_total\{operation="plain",status="200",service="admin-api"\} 1$/m, 'admin-api exports ztm_admin_api_requests_total');
      } else {
        t.match(text, new RegExp(`^ztm_queue_jobs\\{queue="forward",state="waiting",service="${s}"\\} 0$`, 'm'), `${s} exports ztm_queue_jobs`);
        t.match(text, new RegExp(`^ztm_dead_letters\\{service="${s}"\\} 0$`, 'm'), `${s} exports ztm_dead_letters`);
      }
      const health = await runProcess('sh', [...command(platform), 'healthcheck'], { env });
      t.equal(health.code, 0, `${s}: HEALTHCHECK passes`);
    } finally {
      proc.kill('SIGTERM');
      t.equal(await proc.exit, 0, `${s} stops cleanly on SIGTERM`);
      t.notMatch(proc.stderr, /Error|at /, `${s} printed no stack trace`);
    }
  });
});

t.test('ztm from the image entrypoint (what kubectl exec runs)', async (t) => {
  const help = await runProcess('sh', [...command(platform), 'ztm', '--help'], { env: { ...baseEnv(), ...platform.env } });
  t.equal(help.code, 0);
  t.match(help.stdout, /ztm status/);
  const status = await runProcess('sh', [...command(platform), 'ztm', 'status', '--json'], { env: { ...baseEnv(), ...platform.env, REDIS_URL: redis.url } });
  t.equal(status.code, 0, status.stderr);
  t.match(JSON.parse(status.stdout), { queues: Array, dead_letters: 0 });
});

t.test('the tenant image: the shim from its entrypoint, with the image environment', async (t) => {
  const workspace = path.join(scratch, 'workspace');
  mkdirSync(workspace, { recursive: true });
  const [cmd, ...args] = command(agent);
  const env = { ...baseEnv(), ...agent.env, WORKSPACE: workspace, HOME: workspace };
  const cold = await runProcess(cmd!, args, { env });
  t.equal(cold.code, 2, 'no tenant and not warm: a configuration error');
  t.match(cold.stdout + cold.stderr, /TENANT_ID.*required unless WARM=1/);
  const shimPort = await freePort();
  const warm = startProcess(cmd!, args, { env: { ...env, SHIM_PORT: String(shimPort), WARM: '1', WARM_POOL_SECRET: SECRETS.WARM_POOL_SECRET } });
  try {
    await waitUntil('the warm shim /healthz', async () => {
      if (warm.exited) throw new Error(`shim exited ${warm.code}: ${warm.stdout}${warm.stderr}`);
      return request(`http://127.0.0.1:${shimPort}/healthz`).then(async (r) => (await r.body.dump(), r.statusCode === 200), () => false);
    }, 30_000);
    const ready = await request(`http://127.0.0.1:${shimPort}/readyz`);
    await ready.body.dump();
    t.equal(ready.statusCode, 503, 'a warm shim is not ready until claimed');
  } finally {
    warm.kill('SIGTERM');
    t.equal(await warm.exit, 0, 'the warm shim stops on SIGTERM');
  }
});
