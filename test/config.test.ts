/**
 * Configuration: the brief's defaults, every documented variable validated with a one-line
 * ConfigError that names the variable and what it accepts (and never echoes a secret), ztm's own
 * variables, and a service that exits 2 with exactly one stderr line on a bad value.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCliConfig, loadConfig, type Env } from '../lib/config.js';
import { ConfigError } from '../lib/errors.js';
import { loadShimConfig } from '../agent/shim-config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Secrets long enough for the production checks. */
const WEBHOOK_SECRET = 'wh-secret-0123456789abcdef';
const WARM_POOL_SECRET = 'wp-secret-0123456789abcdef';

/** The ConfigError thrown by `fn`, asserted to be one line starting with `variable: `. */
function configError(t: Test, fn: () => unknown, variable: string, what: string): ConfigError | undefined {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  if (!(caught instanceof ConfigError)) {
    t.fail(`${what}: expected a ConfigError, got ${caught === undefined ? 'no error' : String(caught)}`);
    return undefined;
  }
  t.equal(caught.code, 'E_CONFIG', `${what}: code E_CONFIG`);
  t.equal(caught.variable, variable, `${what}: names ${variable}`);
  t.ok(caught.message.startsWith(`${variable}: `), `${what}: message starts with the variable name (${caught.message})`);
  t.notMatch(caught.message, /\n/, `${what}: message is one line`);
  return caught;
}

t.test('loadConfig({}) gives the brief\'s defaults', async (t) => {
  const c = loadConfig({});
  t.equal(c.dynamodbTable, 'tenant-registry');
  t.equal(c.s3Bucket, 'zeroclaw-tenant-state');
  t.equal(c.k8sNamespace, 'tenants');
  t.equal(c.kataRuntimeClass, 'kata-qemu');
  t.equal(c.wakeLockTtlS, 240);
  t.equal(c.reconcileIntervalS, 60);
  t.equal(c.podTerminationGraceS, 60, 'pods keep a minute for their final checkpoint');
  t.equal(c.ingressPort, 8080);
  t.equal(c.telegramApiBase, 'https://api.telegram.org');
  t.equal(c.runtime, 'local');
  t.equal(c.dataDir, path.resolve('./.ztm'));
  t.ok(path.isAbsolute(c.dataDir), 'DATA_DIR is resolved to an absolute path');
  t.equal(c.redisUrl, 'redis://127.0.0.1:6379');
  t.equal(c.redisUrlDefaulted, true);
  t.equal(c.agentProtocol, 'zeroclaw');
  t.equal(c.logLevel, 'info');
  t.equal(c.webhookSecret, undefined, 'no secret invented by the parser');
  t.equal(c.routerPublicUrl, undefined);
  t.same([c.shardRunnerLeaseMs, c.shardRunnerBacklog, c.shardRunnerMax], [15_000, 8, 4], 'shard runner settings');
});

t.test('shard runner settings are bounded', async (t) => {
  t.same(loadConfig({ SHARD_RUNNER_LEASE_MS: '6000', SHARD_RUNNER_BACKLOG: '16', SHARD_RUNNER_MAX: '2' }).shardRunnerMax, 2);
  for (const [k, v] of [['SHARD_RUNNER_LEASE_MS', '100'], ['SHARD_RUNNER_BACKLOG', '0'], ['SHARD_RUNNER_MAX', '65'], ['SHARD_RUNNER_MAX', 'x']]) {
    t.throws(() => loadConfig({ [k as string]: v }), { code: 'E_CONFIG' }, `${k}=${v} refused`);
  }
});

t.test('empty and blank values count as unset', async (t) => {
  const c = loadConfig({ INGRESS_PORT: '', RUNTIME: '   ', REDIS_URL: '', DYNAMODB_TABLE: ' ' });
  t.equal(c.ingressPort, 8080);
  t.equal(c.runtime, 'local');
  t.equal(c.redisUrlDefaulted, true);
  t.equal(c.dynamodbTable, 'tenant-registry');
});

t.test('good values are taken', async (t) => {
  const c = loadConfig({
    DYNAMODB_TABLE: 'my.table_1',
    S3_BUCKET: 'my-bucket.state',
    K8S_NAMESPACE: 'team-a',
    KATA_RUNTIME_CLASS: 'kata-fc',
    WAKE_LOCK_TTL_S: '30',
    RECONCILE_INTERVAL_S: '5',
    POD_TERMINATION_GRACE_S: '120',
    INGRESS_PORT: '0',
    TELEGRAM_API_BASE: 'http://127.0.0.1:9999/',
    ROUTER_PUBLIC_URL: 'https://router.example.com',
    AGENT_PROTOCOL: 'telegram',
    AGENT_COMMAND: 'exec my-agent --port "$PORT"',
    DATA_DIR: '/tmp/ztm-data',
    LOG_LEVEL: 'debug',
    WEBHOOK_SECRET,
  });
  t.equal(c.dynamodbTable, 'my.table_1');
  t.equal(c.s3Bucket, 'my-bucket.state');
  t.equal(c.k8sNamespace, 'team-a');
  t.equal(c.kataRuntimeClass, 'kata-fc');
  t.equal(c.wakeLockTtlS, 30);
  t.equal(c.reconcileIntervalS, 5);
  t.equal(c.podTerminationGraceS, 120);
  t.equal(c.ingressPort, 0, 'port 0 (any free port) is allowed');
  t.equal(c.telegramApiBase, 'http://127.0.0.1:9999', 'trailing slash dropped');
  t.equal(c.routerPublicUrl, 'https://router.example.com');
  t.equal(c.agentProtocol, 'telegram');
  t.equal(c.agent.profile, 'custom', 'AGENT_COMMAND without a profile: a custom agent, as before profiles');
  t.equal(c.dataDir, '/tmp/ztm-data');
  t.equal(c.logLevel, 'debug');
  t.equal(c.webhookSecret, WEBHOOK_SECRET);
});

t.test('Redis: REDIS_URL, rediss://, REDIS_ADDR host:port', async (t) => {
  let c = loadConfig({ REDIS_URL: 'redis://cache:6380/2' });
  t.equal(c.redisUrl, 'redis://cache:6380/2');
  t.equal(c.redisUrlDefaulted, false);

  c = loadConfig({ REDIS_URL: 'rediss://user:pw@secure.example.com:6380' });
  t.equal(c.redisUrl, 'rediss://user:pw@secure.example.com:6380', 'TLS URL accepted');
  t.equal(c.redisUrlDefaulted, false);

  c = loadConfig({ REDIS_ADDR: 'redis-master:6379' });
  t.equal(c.redisUrl, 'redis://redis-master:6379', 'REDIS_ADDR turned into a URL');
  t.equal(c.redisUrlDefaulted, false);
  t.doesNotThrow(() => new URL(c.redisUrl), 'the result parses as a URL');

  c = loadConfig({ REDIS_ADDR: '10.0.0.7:7000' });
  t.equal(c.redisUrl, 'redis://10.0.0.7:7000');

  c = loadConfig({ REDIS_URL: 'redis://a:1', REDIS_ADDR: 'b:2' });
  t.equal(c.redisUrl, 'redis://a:1', 'REDIS_URL wins over REDIS_ADDR');
});

t.test('each bad value throws a ConfigError naming the variable and what it accepts', async (t) => {
  const cases: Array<[Env, string, RegExp]> = [
    [{ INGRESS_PORT: 'abc' }, 'INGRESS_PORT', /whole number from 0 to 65535/],
    [{ INGRESS_PORT: '70000' }, 'INGRESS_PORT', /whole number from 0 to 65535/],
    [{ INGRESS_PORT: '80.5' }, 'INGRESS_PORT', /whole number/],
    [{ WAKE_LOCK_TTL_S: '-1' }, 'WAKE_LOCK_TTL_S', /whole number from \d+ to \d+/],
    [{ RECONCILE_INTERVAL_S: '0' }, 'RECONCILE_INTERVAL_S', /whole number from 1 to/],
    [{ POD_TERMINATION_GRACE_S: '5' }, 'POD_TERMINATION_GRACE_S', /whole number from 10 to 3600/],
    [{ RUNTIME: 'docker' }, 'RUNTIME', /local\|kubernetes/],
    [{ AGENT_PROTOCOL: 'http' }, 'AGENT_PROTOCOL', /zeroclaw\|telegram/],
    [{ REDIS_URL: 'http://x' }, 'REDIS_URL', /redis:\/\/ or rediss:\/\//],
    [{ REDIS_ADDR: 'nohostport' }, 'REDIS_ADDR', /host:port/],
    [{ TELEGRAM_API_BASE: 'ftp://x' }, 'TELEGRAM_API_BASE', /http\(s\) URL/],
    [{ TELEGRAM_API_BASE: 'not a url' }, 'TELEGRAM_API_BASE', /http\(s\) URL/],
    [{ ROUTER_PUBLIC_URL: 'router.example.com' }, 'ROUTER_PUBLIC_URL', /http\(s\) URL/],
    [{ ROUTER_PUBLIC_URL: 'ws://router.example.com' }, 'ROUTER_PUBLIC_URL', /http\(s\) URL/],
    [{ DYNAMODB_ENDPOINT: 'localhost:8000' }, 'DYNAMODB_ENDPOINT', /http\(s\) URL/],
    [{ WEBHOOK_SECRET: 'short' }, 'WEBHOOK_SECRET', /at least 16 characters/],
    [{ K8S_NAMESPACE: 'Bad_NS' }, 'K8S_NAMESPACE', /lowercase letters, digits, -/],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /fatal\|error\|warn\|info\|debug\|trace\|silent/],
    [{ DYNAMODB_TABLE: 'a' }, 'DYNAMODB_TABLE', /3-255 characters/],
    [{ S3_BUCKET: 'UPPER' }, 'S3_BUCKET', /3-63 characters of a-z 0-9/],
    [{ REDIS_CLUSTER: 'maybe' }, 'REDIS_CLUSTER', /true or false/],
  ];
  for (const [env, variable, allowed] of cases) {
    const what = JSON.stringify(env);
    const err = configError(t, () => loadConfig(env), variable, what);
    if (err) t.match(err.message, allowed, `${what}: says what is allowed`);
  }
});

t.test('RUNTIME=kubernetes: each service requires its own secrets (its main), the config none', async (t) => {
  const c = loadConfig({ RUNTIME: 'kubernetes', WEBHOOK_SECRET, WARM_POOL_SECRET });
  t.equal(c.runtime, 'kubernetes');
  t.equal(c.webhookSecret, WEBHOOK_SECRET);
  t.equal(c.warmPoolSecret, WARM_POOL_SECRET);
  // The ingress's Deployment has no WARM_POOL_SECRET (the chart gives each service only its keys).
  t.equal(loadConfig({ RUNTIME: 'kubernetes', WEBHOOK_SECRET }).warmPoolSecret, undefined);
  // local: secrets are optional (the embedded default generates and keeps them under DATA_DIR).
  t.doesNotThrow(() => loadConfig({ RUNTIME: 'local' }));
});

t.test('a ConfigError never echoes a secret that was given', async (t) => {
  for (const name of ['WEBHOOK_SECRET', 'WARM_POOL_SECRET']) {
    const value = 'short-secret';
    const err = configError(t, () => loadConfig({ [name]: value }), name, `${name} too short`);
    t.notMatch(err?.message ?? '', value, `${name}: message does not contain the value`);
  }
  // A bad REDIS_URL can carry a password.
  for (const url of ['http://user:hunter2-password@x:6379', 'redis://user:hunter2-password@[bad']) {
    const err = configError(t, () => loadConfig({ REDIS_URL: url }), 'REDIS_URL', `REDIS_URL ${url.slice(0, 8)}`);
    t.notMatch(err?.message ?? '', 'hunter2-password', 'message does not contain the password');
  }
  // The error on another variable does not carry the (valid) secrets given alongside it.
  const err = configError(
    t,
    () => loadConfig({ WEBHOOK_SECRET, WARM_POOL_SECRET, RUNTIME: 'kubernetes', INGRESS_PORT: 'abc' }),
    'INGRESS_PORT',
    'bad port next to secrets',
  );
  t.notMatch(err?.message ?? '', WEBHOOK_SECRET);
  t.notMatch(err?.message ?? '', WARM_POOL_SECRET);
});

t.test('loadCliConfig: ZTM_REDIS_URL, then REDIS_URL, then REDIS_ADDR', async (t) => {
  let c = loadCliConfig({ ZTM_REDIS_URL: 'redis://ztm:1', REDIS_URL: 'redis://platform:2', REDIS_ADDR: 'addr:3' });
  t.equal(c.redisUrl, 'redis://ztm:1', 'ZTM_REDIS_URL wins');
  c = loadCliConfig({ REDIS_URL: 'redis://platform:2', REDIS_ADDR: 'addr:3' });
  t.equal(c.redisUrl, 'redis://platform:2', 'falls back to REDIS_URL');
  c = loadCliConfig({ REDIS_ADDR: 'addr:3' });
  t.equal(c.redisUrl, 'redis://addr:3', 'then REDIS_ADDR, as a URL');
  c = loadCliConfig({});
  t.equal(c.redisUrl, undefined, 'no Redis URL: ztm goes through kubectl exec');
  t.equal(c.namespace, 'tenants', 'ZTM_NAMESPACE defaults to tenants');
  t.equal(c.kubeContext, undefined);
  t.equal(c.dataDir, path.resolve('./.ztm'));
  t.equal(c.pickupTimeoutS, 5);

  c = loadCliConfig({ ZTM_NAMESPACE: 'prod', ZTM_KUBE_CONTEXT: 'eks-prod', ZTM_PICKUP_TIMEOUT_S: '12' });
  t.equal(c.namespace, 'prod');
  t.equal(c.kubeContext, 'eks-prod');
  t.equal(c.pickupTimeoutS, 12);

  for (const bad of ['abc', '0', '-3', '1.5', '100000']) {
    const err = configError(t, () => loadCliConfig({ ZTM_PICKUP_TIMEOUT_S: bad }), 'ZTM_PICKUP_TIMEOUT_S', `ZTM_PICKUP_TIMEOUT_S=${bad}`);
    if (err) t.match(err.message, /whole number from 1 to \d+/);
  }
  configError(t, () => loadCliConfig({ ZTM_REDIS_URL: 'http://x' }), 'ZTM_REDIS_URL', 'ZTM_REDIS_URL=http://x');
  configError(t, () => loadCliConfig({ REDIS_ADDR: 'nohostport' }), 'REDIS_ADDR', 'fallback REDIS_ADDR is validated');
});

t.test('a service with a bad variable exits 2 with one stderr line', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'services/janitor/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', INGRESS_PORT: 'abc' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ code: null, signal: 'SIGKILL', timedOut: true });
    }, 30_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut: false });
    });
  });
  t.equal(result.timedOut, false, 'exits within 30 s');
  t.equal(result.code, 2, `exit code 2 (stderr: ${stderr})`);
  const lines = stderr.split('\n').filter((l) => l !== '');
  t.equal(lines.length, 1, 'exactly one stderr line');
  t.ok(stderr.endsWith('\n'), 'line is terminated');
  t.match(lines[0] ?? '', /^janitor: configuration error: INGRESS_PORT: must be a whole number from 0 to 65535/);
  t.equal(stdout, '', 'nothing on stdout');
});

t.test('agent profiles: protocol, port, model provider, resources, and what each refuses', async (t) => {
  const base = { WEBHOOK_SECRET };
  const ref = loadConfig(base);
  t.match(ref.agent, { profile: 'reference', protocol: 'zeroclaw', port: 42617, llm: undefined });
  t.same(ref.agentPodResources.limits, { cpu: '500m', memory: '256Mi' });

  const oc = loadConfig({ ...base, AGENT_PROFILE: 'openclaw', ROUTER_PUBLIC_URL: 'https://bots.example', AGENT_LLM_BASE_URL: 'http://127.0.0.1:4000/v1/', AGENT_LLM_MODEL: 'stub-model', AGENT_LLM_API_KEY: 'sk-123' });
  t.match(oc.agent, { profile: 'openclaw', protocol: 'telegram', port: 8787, llm: { baseUrl: 'http://127.0.0.1:4000/v1', model: 'stub-model', apiKey: 'sk-123' }, node: 'node', openclawBin: 'openclaw' });
  t.equal(oc.agentProtocol, 'telegram', 'the forwarder speaks the profile\'s protocol');
  t.same(oc.agentPodResources.requests, { cpu: '500m', memory: '1280Mi' });

  const zc = loadConfig({ ...base, AGENT_PROFILE: 'zeroclaw', ZEROCLAW_BIN: '/opt/zeroclaw', AGENT_POD_RESOURCES: '{"requests":{"cpu":"1"},"limits":{"memory":"1Gi"}}' });
  t.match(zc.agent, { profile: 'zeroclaw', protocol: 'zeroclaw', zeroclawBin: '/opt/zeroclaw', llm: undefined });
  t.same(zc.agentPodResources, { requests: { cpu: '1' }, limits: { memory: '1Gi' } });

  const k8sCustom = loadConfig({ ...base, RUNTIME: 'kubernetes', WARM_POOL_SECRET: 'p'.repeat(20), AGENT_PROTOCOL: 'telegram' });
  t.match(k8sCustom.agent, { profile: 'custom', protocol: 'telegram' }, 'kubernetes services need only the protocol of a custom agent');

  const bad: Array<[Record<string, string>, string, RegExp]> = [
    [{ AGENT_PROFILE: 'hermes' }, 'AGENT_PROFILE', /one of reference\|zeroclaw\|openclaw\|custom/],
    [{ AGENT_PROFILE: 'openclaw', ROUTER_PUBLIC_URL: 'https://x.example' }, 'AGENT_LLM_BASE_URL', /needs a model/],
    [{ AGENT_PROFILE: 'openclaw', AGENT_LLM_BASE_URL: 'http://llm/v1', AGENT_LLM_MODEL: 'm' }, 'ROUTER_PUBLIC_URL', /registers the bot's webhook/],
    [{ AGENT_PROFILE: 'zeroclaw', AGENT_PROTOCOL: 'telegram' }, 'AGENT_PROTOCOL', /speaks zeroclaw/],
    [{ AGENT_PROFILE: 'zeroclaw', AGENT_COMMAND: 'x' }, 'AGENT_COMMAND', /is for AGENT_PROFILE=custom/],
    [{ AGENT_PROFILE: 'custom' }, 'AGENT_COMMAND', /is required/],
    [{ AGENT_STATE_PATHS: 'x/' }, 'AGENT_STATE_PATHS', /is for AGENT_PROFILE=custom/],
    [{ AGENT_LLM_MODEL: 'm' }, 'AGENT_LLM_BASE_URL', /required when AGENT_LLM_MODEL/],
    [{ AGENT_LLM_API_KEY: 'sk-1' }, 'AGENT_LLM_BASE_URL', /required when AGENT_LLM_API_KEY/],
    [{ AGENT_LLM_BASE_URL: 'http://user:pw@llm/v1', AGENT_LLM_MODEL: 'm' }, 'AGENT_LLM_BASE_URL', /must not carry credentials/],
    [{ AGENT_LLM_BASE_URL: 'ftp://llm', AGENT_LLM_MODEL: 'm' }, 'AGENT_LLM_BASE_URL', /http\(s\)/],
    [{ AGENT_POD_RESOURCES: '{"limits":{"memory":"lots"}}' }, 'AGENT_POD_RESOURCES', /quantity/],
    [{ AGENT_POD_RESOURCES: 'nope' }, 'AGENT_POD_RESOURCES', /must be JSON/],
    [{ STATE_MAX_BYTES: '10' }, 'STATE_MAX_BYTES', /whole number/],
  ];
  for (const [env, variable, message] of bad) {
    t.throws(() => loadConfig({ ...base, ...env }), { code: 'E_CONFIG', variable, message }, `${JSON.stringify(env)} → ${variable}`);
  }
  // A secret is never echoed in the error.
  try {
    loadConfig({ ...base, AGENT_LLM_API_KEY: 'sk-secret value' , AGENT_LLM_BASE_URL: 'http://llm/v1', AGENT_LLM_MODEL: 'm' });
    t.fail('a key with a space is refused');
  } catch (err) {
    t.notMatch((err as Error).message, 'sk-secret');
  }
});

t.test('AGENT_SANDBOX: auto by default, namespaces or off; the sandbox uid/gid are not root; the shim takes only what the platform resolved', async (t) => {
  t.same(loadConfig({}).agentSandbox, { mode: 'auto', uid: 65_534, gid: 65_534 });
  t.same(loadConfig({ AGENT_SANDBOX: 'off' }).agentSandbox.mode, 'off');
  t.same(loadConfig({ AGENT_SANDBOX: 'namespaces', AGENT_SANDBOX_UID: '1234', AGENT_SANDBOX_GID: '5678' }).agentSandbox, { mode: 'namespaces', uid: 1234, gid: 5678 });
  configError(t, () => loadConfig({ AGENT_SANDBOX: 'bwrap' }), 'AGENT_SANDBOX', 'bwrap');
  configError(t, () => loadConfig({ AGENT_SANDBOX_UID: '0' }), 'AGENT_SANDBOX_UID', 'root');
  configError(t, () => loadConfig({ AGENT_SANDBOX_GID: '4294967295' }), 'AGENT_SANDBOX_GID', '(gid_t)-1');

  const shim = (env: Env) => loadShimConfig({ TENANT_ID: 'alice', ...env });
  t.equal(shim({}).sandbox, undefined, 'the shim runs its agent unsandboxed unless told (pods: the pod is the sandbox)');
  t.same(shim({ AGENT_SANDBOX: 'namespaces', AGENT_SANDBOX_HIDE: '["/srv/ztm"]' }).sandbox, { hide: ['/srv/ztm'], uid: 65_534, gid: 65_534 });
  configError(t, () => shim({ AGENT_SANDBOX: 'auto' }), 'AGENT_SANDBOX', 'auto in the shim');
  for (const hide of ['/srv/ztm', '["relative"]', '["/"]', '["/proc/1"]', '[1]']) {
    configError(t, () => shim({ AGENT_SANDBOX: 'namespaces', AGENT_SANDBOX_HIDE: hide }), 'AGENT_SANDBOX_HIDE', hide);
  }
});
