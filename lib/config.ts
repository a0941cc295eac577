/**
 * The one place that reads the environment. Every variable of the brief is parsed and validated
 * here, once, at start; a bad value throws a ConfigError naming the variable and what it accepts.
 */
import path from 'node:path';
import { ConfigError } from './errors.js';
import { loadAgentSettings, PROFILE_FACTS, type AgentProtocol, type AgentResources, type AgentSettings } from './agent-profiles.js';

import { envInt as int, envStr as str, type Env } from './util/env.js';
import { LOG_FORMATS, type LogFormat } from './log-pretty.js';
import { DEFAULT_DELIVERY_SHARDS, MAX_DELIVERY_SHARDS, setDeliveryShards } from './delivery/shards.js';

export type { Env };
export type RuntimeKind = 'local' | 'kubernetes';
export type { AgentProtocol };
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  runtime: RuntimeKind;
  dataDir: string;
  logLevel: LogLevel;
  /** LOG_FORMAT: `auto` (readable on a terminal, JSON otherwise), `json`, `pretty`. */
  logFormat: LogFormat;
  redisUrl: string;
  /** True when neither REDIS_URL nor REDIS_ADDR was given (the embedded default may start one). */
  redisUrlDefaulted: boolean;
  redisCluster: boolean;
  dynamodbTable: string;
  dynamodbEndpoint: string | undefined;
  s3Bucket: string;
  s3Endpoint: string | undefined;
  awsRegion: string;
  k8sNamespace: string;
  /**
   * K8S_POD_OWNER: the Secret in K8S_NAMESPACE that owns every tenant pod and tenant Secret (the
   * chart's `agentic-tenancy-owner`; lib/runtime/pod-owner.ts), so helm uninstall removes them.
   * Unset: no owner (pods outlive the release).
   */
  k8sPodOwner: string | undefined;
  warmPoolTarget: number;
  /**
   * The warm pool's bounds: WARM_POOL_MIN/WARM_POOL_MAX (the pool-keeper sizes it between them from
   * the wake rate and the start time), or WARM_POOL_TARGET alone (fixed: min = max = it; the default).
   * `warmPoolTarget` is the size the pool starts at (min).
   */
  warmPool: WarmPoolConfig;
  warmPoolSecret: string | undefined;
  zeroclawImage: string;
  kataRuntimeClass: string;
  routerPublicUrl: string | undefined;
  wakeLockTtlS: number;
  /**
   * COLD_START_TIMEOUT_S: the bound of one wake's start while it makes progress (a pod Pending for a
   * node being provisioned, an image pulling); the wake lock is renewed up to it. Default 600.
   */
  coldStartTimeoutS: number;
  /** K8S_API_TIMEOUT_S: the bound of one Kubernetes API request (retried with backoff on 429/5xx/timeouts); default 15. */
  k8sApiTimeoutS: number;
  /**
   * POD_TERMINATION_GRACE_S: tenant and warm pods' terminationGracePeriodSeconds, the time the shim
   * has for its final checkpoint after SIGTERM (and how long a pod on a lost node stays Terminating
   * before the runtime force-deletes it); default 60, 10-3600.
   */
  podTerminationGraceS: number;
  reconcileIntervalS: number;
  idleCheckIntervalS: number;
  ingressPort: number;
  ingressHost: string;
  ingressBodyLimit: number;
  /**
   * The Bot API base URL, or TELEGRAM_SANDBOX (`TELEGRAM_API_BASE=sandbox`): `npm start` then runs
   * the local Bot API sandbox and replaces this with its URL before building any client.
   */
  telegramApiBase: string;
  /** Port of the Bot API sandbox (TELEGRAM_SANDBOX_PORT, default 8081, 0 = a free port). */
  telegramSandboxPort: number;
  webhookSecret: string | undefined;
  /** AGENT_PROFILE and its settings (protocol, port, model provider...): lib/agent-profiles.ts. */
  agent: AgentSettings;
  /** The protocol of the profile (custom: AGENT_PROTOCOL). */
  agentProtocol: AgentProtocol;
  agentPort: number;
  /** custom profile: the agent's command line (AGENT_COMMAND). */
  agentCommand: string | undefined;
  /** Bound of one tenant's whole-state checkpoint, uncompressed (STATE_MAX_BYTES). */
  stateMaxBytes: number;
  /** Tenant pods' requests/limits (AGENT_POD_RESOURCES JSON; default: the profile's, lib/agent-profiles.ts). */
  agentPodResources: AgentResources;
  agentTimeoutS: number;
  /** How long a woken agent may take to become ready before the wake fails (local runtime). */
  agentReadyTimeoutS: number;
  /** AGENT_SANDBOX (local runtime): namespaces per agent, off, or auto (namespaces when the host can); AGENT_SANDBOX_UID/GID. */
  agentSandbox: AgentSandboxConfig;
  forwarderConcurrency: number;
  tenantConcurrency: number;
  forwardAttempts: number;
  /**
   * DELIVERY_SHARDS (default 24, 1-256): hash slots the tenants' mailboxes and drain queues are
   * spread over (lib/delivery/shards.ts). Every service of a platform must use the same value.
   */
  deliveryShards: number;
  /** DEDUP_WINDOW_S (default 3600) and DEDUP_MAX_PER_TENANT (default 1000): the accepted update_ids remembered per tenant. */
  dedupWindowS: number;
  dedupMaxPerTenant: number;
  /**
   * DELIVERY_WAIT_REPLICAS (default 0: off): the ingress acknowledges an update only once this many
   * replicas have its write (Redis WAIT), within DELIVERY_WAIT_TIMEOUT_MS (default 500), else 503.
   */
  deliveryWaitReplicas: number;
  deliveryWaitTimeoutMs: number;
  /**
   * Shard runners (docs/architecture.md, "Shard runners"): SHARD_RUNNER_LEASE_MS (default 15000) is
   * a runner's lease, renewed every third of it (ingress and forwarders must agree);
   * SHARD_RUNNER_BACKLOG (default 8) the ready chats per live runner past which the ingress starts
   * another; SHARD_RUNNER_MAX (default 4) the most runners one shard gets.
   */
  shardRunnerLeaseMs: number;
  shardRunnerBacklog: number;
  shardRunnerMax: number;
  /**
   * DELIVERY_OPENING_LEASES (default true): the ingress takes the chat lease for the runner of a chat
   * it opens (docs/architecture.md, the accept script); false while forwarders older than that run.
   */
  deliveryOpeningLeases: boolean;
  adminPort: number;
  /** Bull Board port: the dashboard service's listener (default 3001); `npm start` serves it only when set. */
  dashboardPort: number | undefined;
  /** Basic auth of the dashboard (DASHBOARD_USER + DASHBOARD_PASSWORD, both or neither). */
  dashboardAuth: DashboardCredentials | undefined;
  /** The admin HTTP API (services/admin-api): ADMIN_API_PORT (its Deployment: default 8090; `npm start`: only when set). */
  adminApiPort: number | undefined;
  /** ADMIN_API_HOST: its interface (default 127.0.0.1 locally, 0.0.0.0 with RUNTIME=kubernetes). */
  adminApiHost: string;
  /** Per-token token bucket: ADMIN_API_RATE_PER_MIN refill (default 60), ADMIN_API_BURST size (default 20). */
  adminApiRatePerMin: number;
  adminApiBurst: number;
}

export interface WarmPoolConfig {
  min: number;
  max: number;
  /** WARM_POOL_HIT_TARGET: the probability that a wake finds a ready member the pool is sized for (default 0.95). */
  hitTarget: number;
}

export type AgentSandboxMode = 'auto' | 'namespaces' | 'off';

export interface AgentSandboxConfig {
  mode: AgentSandboxMode;
  /** Who a sandboxed agent runs as when the platform runs as root (default 65534, nobody/nogroup). */
  uid: number;
  gid: number;
}

export interface DashboardCredentials {
  user: string;
  password: string;
}

export interface CliConfig {
  redisUrl: string | undefined;
  /**
   * ZTM_REDIS_CLUSTER, else REDIS_CLUSTER; undefined: ztm asks the node (INFO cluster), so any
   * node's address of a Redis Cluster works without a setting.
   */
  redisCluster: boolean | undefined;
  namespace: string;
  /** Where the tenant pods are (`ztm logs`): ZTM_TENANTS_NAMESPACE, else `<namespace>-agents` as the chart names it. */
  tenantsNamespace: string;
  kubeContext: string | undefined;
  dataDir: string;
  /** Seconds to wait for an admin worker to pick a command up before saying none is running. */
  pickupTimeoutS: number;
  /** Basic auth for `ztm dashboard` (DASHBOARD_USER + DASHBOARD_PASSWORD). */
  dashboardAuth: DashboardCredentials | undefined;
  /** The Bot API sandbox `ztm chat` talks to (ZTM_SANDBOX_URL); else the one in DATA_DIR/platform.json. */
  sandboxUrl: string | undefined;
}

/** `TELEGRAM_API_BASE=sandbox`: the platform runs its own local Bot API (lib/sandbox/). */
export const TELEGRAM_SANDBOX = 'sandbox';

/** True when `config` asks for the local Bot API sandbox instead of a Bot API URL. */
export function usesTelegramSandbox(config: Pick<Config, 'telegramApiBase'>): boolean {
  return config.telegramApiBase === TELEGRAM_SANDBOX;
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];



function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], def: T): T {
  const raw = str(env, name);
  if (raw === undefined) return def;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(name, `must be one of ${allowed.join('|')}, got ${JSON.stringify(raw.slice(0, 30))}`);
  }
  return raw as T;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = str(env, name);
  if (raw === undefined) return def;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(name, `must be true or false, got ${JSON.stringify(raw.slice(0, 30))}`);
}

function httpUrl(env: Env, name: string, def?: string): string | undefined {
  const raw = str(env, name) ?? def;
  if (raw === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(name, `must be an http(s) URL such as https://example.com, got ${JSON.stringify(raw.slice(0, 60))}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ConfigError(name, `must be an http(s) URL, got protocol ${u.protocol}`);
  }
  return raw.replace(/\/+$/, '');
}

function telegramApiBase(env: Env): string {
  if (str(env, 'TELEGRAM_API_BASE') === TELEGRAM_SANDBOX) return TELEGRAM_SANDBOX;
  try {
    return httpUrl(env, 'TELEGRAM_API_BASE', 'https://api.telegram.org') as string;
  } catch (err) {
    const why = err instanceof ConfigError ? err.message.slice('TELEGRAM_API_BASE: '.length) : 'is invalid';
    throw new ConfigError('TELEGRAM_API_BASE', `${why}; or \`sandbox\` for the local Bot API sandbox of npm start`);
  }
}

function secret(env: Env, name: string): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  if (raw.length < 16) throw new ConfigError(name, 'must be at least 16 characters (use e.g. `openssl rand -hex 32`)');
  return raw;
}

function dashboardAuth(env: Env): DashboardCredentials | undefined {
  const user = str(env, 'DASHBOARD_USER');
  const password = str(env, 'DASHBOARD_PASSWORD');
  if (user === undefined && password === undefined) return undefined;
  if (user === undefined) throw new ConfigError('DASHBOARD_USER', 'must be set when DASHBOARD_PASSWORD is (basic auth needs both)');
  if (password === undefined) throw new ConfigError('DASHBOARD_PASSWORD', 'must be set when DASHBOARD_USER is (basic auth needs both)');
  if (user.includes(':')) throw new ConfigError('DASHBOARD_USER', 'must not contain ":" (basic auth separates user and password with it)');
  if (password.length < 12) throw new ConfigError('DASHBOARD_PASSWORD', 'must be at least 12 characters (use e.g. `openssl rand -hex 16`)');
  return { user, password };
}

/** AGENT_POD_RESOURCES: `{"requests":{"cpu":"500m","memory":"1Gi"},"limits":{...}}` (quantities checked by the runtime). */
function podResources(env: Env, def: AgentResources): AgentResources {
  const raw = str(env, 'AGENT_POD_RESOURCES');
  if (raw === undefined) return { requests: { ...def.requests }, limits: { ...def.limits } };
  const bad = (): never => {
    throw new ConfigError('AGENT_POD_RESOURCES', 'must be JSON like {"requests":{"cpu":"500m","memory":"1Gi"},"limits":{"memory":"2Gi"}}');
  };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    bad();
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) bad();
  const out: AgentResources = { requests: {}, limits: {} };
  for (const [kind, list] of Object.entries(value as Record<string, unknown>)) {
    if ((kind !== 'requests' && kind !== 'limits') || list === null || typeof list !== 'object' || Array.isArray(list)) bad();
    for (const [name, q] of Object.entries(list as Record<string, unknown>)) {
      if (typeof q !== 'string' || !/^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$/.test(q)) {
        throw new ConfigError('AGENT_POD_RESOURCES', `${kind}.${name.slice(0, 40)}: expected a quantity such as 500m or 512Mi`);
      }
      out[kind as 'requests' | 'limits'][name] = q;
    }
  }
  return out;
}

function resolveRedisUrl(env: Env): { url: string; defaulted: boolean } {
  const url = str(env, 'REDIS_URL');
  if (url !== undefined) {
    if (!/^rediss?:\/\//.test(url)) throw new ConfigError('REDIS_URL', 'must start with redis:// or rediss://');
    try {
      new URL(url);
    } catch {
      throw new ConfigError('REDIS_URL', 'is not a valid URL (redis://[user:password@]host:port[/db])');
    }
    return { url, defaulted: false };
  }
  const addr = str(env, 'REDIS_ADDR');
  if (addr !== undefined) {
    if (!/^[A-Za-z0-9.\-_:[\]]+:[0-9]{1,5}$/.test(addr)) throw new ConfigError('REDIS_ADDR', `must be host:port, got ${JSON.stringify(addr.slice(0, 60))}`);
    return { url: `redis://${addr}`, defaulted: false };
  }
  return { url: 'redis://127.0.0.1:6379', defaulted: true };
}

/**
 * WARM_POOL_TARGET is the fixed-size form (min = max = it); WARM_POOL_MIN + WARM_POOL_MAX let the
 * pool-keeper follow demand between them. Both forms at once only when they say the same thing.
 */
function warmPool(env: Env, def: number): WarmPoolConfig {
  const hitRaw = str(env, 'WARM_POOL_HIT_TARGET');
  const hitTarget = hitRaw === undefined ? 0.95 : Number(hitRaw);
  if (hitRaw !== undefined && (!/^0?\.[0-9]+$/.test(hitRaw) || hitTarget < 0.5 || hitTarget > 0.999)) {
    throw new ConfigError('WARM_POOL_HIT_TARGET', `must be a probability from 0.5 to 0.999 such as 0.95, got ${JSON.stringify(hitRaw.slice(0, 30))}`);
  }
  const given = (name: string): boolean => str(env, name) !== undefined;
  const target = int(env, 'WARM_POOL_TARGET', def, 0, 1000);
  if (!given('WARM_POOL_MIN') && !given('WARM_POOL_MAX')) return { min: target, max: target, hitTarget };
  if (!given('WARM_POOL_MAX')) throw new ConfigError('WARM_POOL_MAX', 'must be set with WARM_POOL_MIN (the adaptive pool\'s upper bound)');
  const max = int(env, 'WARM_POOL_MAX', 0, 0, 1000);
  const min = int(env, 'WARM_POOL_MIN', 0, 0, 1000);
  if (min > max) throw new ConfigError('WARM_POOL_MIN', `must not exceed WARM_POOL_MAX (${min} > ${max})`);
  if (given('WARM_POOL_TARGET') && (min !== target || max !== target)) {
    throw new ConfigError('WARM_POOL_TARGET', `is the fixed-size form (min = max = ${target}) and contradicts WARM_POOL_MIN=${min}/WARM_POOL_MAX=${max}: set one form`);
  }
  return { min, max, hitTarget };
}

/**
 * DELIVERY_SHARDS, also made the process's delivery layout (lib/delivery/shards.ts): every mailbox
 * and dead-letter reader of the process must agree with the forwarders, the janitor's too.
 */
function deliveryShards(env: Env): number {
  const n = int(env, 'DELIVERY_SHARDS', DEFAULT_DELIVERY_SHARDS, 1, MAX_DELIVERY_SHARDS);
  setDeliveryShards(n);
  return n;
}

/** Parses the platform's configuration. Throws ConfigError on the first bad variable. */
export function loadConfig(env: Env): Config {
  const runtime = oneOf<RuntimeKind>(env, 'RUNTIME', ['local', 'kubernetes'], 'local');
  const redis = resolveRedisUrl(env);
  const dataDir = path.resolve(str(env, 'DATA_DIR') ?? './.ztm');
  const webhookSecret = secret(env, 'WEBHOOK_SECRET');
  const warmPoolSecret = secret(env, 'WARM_POOL_SECRET');
  // Each service requires the secrets it uses itself (services/<name>/main.ts): a Deployment is given
  // only those (the chart's secretKeyRefs), so the ingress never holds the warm pool's secret.
  const agent = loadAgentSettings(env, { requireCommand: runtime === 'local' });
  const telegramBase = telegramApiBase(env);
  const routerPublicUrl = httpUrl(env, 'ROUTER_PUBLIC_URL');
  if (PROFILE_FACTS[agent.profile].registersOwnWebhook && routerPublicUrl === undefined && telegramBase !== TELEGRAM_SANDBOX) {
    // The agent calls setWebhook itself at every start: without the platform's URL it would point
    // the bot somewhere else.
    throw new ConfigError('ROUTER_PUBLIC_URL', `is required with AGENT_PROFILE=${agent.profile} (the agent registers the bot's webhook at <ROUTER_PUBLIC_URL>/tg/<id> itself)`);
  }
  const k8sNamespace = str(env, 'K8S_NAMESPACE') ?? 'tenants';
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(k8sNamespace)) {
    throw new ConfigError('K8S_NAMESPACE', 'must be a Kubernetes namespace name (lowercase letters, digits, -)');
  }
  const k8sPodOwner = str(env, 'K8S_POD_OWNER');
  if (k8sPodOwner !== undefined && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(k8sPodOwner)) {
    throw new ConfigError('K8S_POD_OWNER', 'must be a Kubernetes Secret name (lowercase letters, digits, -, .)');
  }
  const table = str(env, 'DYNAMODB_TABLE') ?? 'tenant-registry';
  if (!/^[A-Za-z0-9_.-]{3,255}$/.test(table)) throw new ConfigError('DYNAMODB_TABLE', 'must be 3-255 characters of A-Z a-z 0-9 _ . -');
  const bucket = str(env, 'S3_BUCKET') ?? 'zeroclaw-tenant-state';
  const warmPoolBounds = warmPool(env, runtime === 'local' ? 1 : 2);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new ConfigError('S3_BUCKET', 'must be a valid S3 bucket name: 3-63 characters of a-z 0-9 . -, starting and ending with a letter or digit');

  return {
    runtime,
    dataDir,
    logLevel: oneOf<LogLevel>(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    logFormat: oneOf<LogFormat>(env, 'LOG_FORMAT', LOG_FORMATS, 'auto'),
    redisUrl: redis.url,
    redisUrlDefaulted: redis.defaulted,
    redisCluster: bool(env, 'REDIS_CLUSTER', false),
    dynamodbTable: table,
    dynamodbEndpoint: httpUrl(env, 'DYNAMODB_ENDPOINT'),
    s3Bucket: bucket,
    s3Endpoint: httpUrl(env, 'S3_ENDPOINT'),
    awsRegion: str(env, 'AWS_REGION') ?? str(env, 'AWS_DEFAULT_REGION') ?? 'us-east-1',
    k8sNamespace,
    k8sPodOwner,
    warmPoolTarget: warmPoolBounds.min,
    warmPool: warmPoolBounds,
    warmPoolSecret,
    zeroclawImage: str(env, 'ZEROCLAW_IMAGE') ?? 'zeroclaw:latest',
    kataRuntimeClass: str(env, 'KATA_RUNTIME_CLASS') ?? 'kata-qemu',
    routerPublicUrl,
    wakeLockTtlS: int(env, 'WAKE_LOCK_TTL_S', 240, 5, 3600),
    coldStartTimeoutS: int(env, 'COLD_START_TIMEOUT_S', 600, 5, 7200),
    k8sApiTimeoutS: int(env, 'K8S_API_TIMEOUT_S', 15, 1, 600),
    podTerminationGraceS: int(env, 'POD_TERMINATION_GRACE_S', 60, 10, 3600),
    reconcileIntervalS: int(env, 'RECONCILE_INTERVAL_S', 60, 1, 86_400),
    idleCheckIntervalS: int(env, 'IDLE_CHECK_INTERVAL_S', 30, 1, 86_400),
    ingressPort: int(env, 'INGRESS_PORT', 8080, 0, 65_535),
    ingressHost: str(env, 'INGRESS_HOST') ?? (runtime === 'local' ? '127.0.0.1' : '0.0.0.0'),
    ingressBodyLimit: int(env, 'INGRESS_BODY_LIMIT', 1_048_576, 1024, 64 * 1_048_576),
    telegramApiBase: telegramBase,
    telegramSandboxPort: int(env, 'TELEGRAM_SANDBOX_PORT', 8081, 0, 65_535),
    webhookSecret,
    agent,
    agentProtocol: agent.protocol,
    agentPort: agent.port,
    agentCommand: agent.command,
    stateMaxBytes: int(env, 'STATE_MAX_BYTES', 512 * 1_048_576, 1_048_576, 64 * 1024 * 1_048_576),
    agentPodResources: podResources(env, PROFILE_FACTS[agent.profile].resources),
    agentTimeoutS: int(env, 'AGENT_TIMEOUT_S', 120, 1, 3600),
    agentReadyTimeoutS: int(env, 'AGENT_READY_TIMEOUT_S', 120, 1, 3600),
    agentSandbox: {
      mode: oneOf<AgentSandboxMode>(env, 'AGENT_SANDBOX', ['auto', 'namespaces', 'off'], 'auto'),
      // Not root (0), not (uid_t)-1 ("unchanged" to the kernel).
      uid: int(env, 'AGENT_SANDBOX_UID', 65_534, 1, 4_294_967_294),
      gid: int(env, 'AGENT_SANDBOX_GID', 65_534, 1, 4_294_967_294),
    },
    forwarderConcurrency: int(env, 'FORWARDER_CONCURRENCY', 64, 1, 10_000),
    tenantConcurrency: int(env, 'TENANT_CONCURRENCY', 4, 1, 1000),
    forwardAttempts: int(env, 'FORWARD_ATTEMPTS', 8, 1, 100),
    deliveryShards: deliveryShards(env),
    dedupWindowS: int(env, 'DEDUP_WINDOW_S', 3600, 60, 7 * 86_400),
    dedupMaxPerTenant: int(env, 'DEDUP_MAX_PER_TENANT', 1000, 100, 1_000_000),
    deliveryWaitReplicas: int(env, 'DELIVERY_WAIT_REPLICAS', 0, 0, 10),
    deliveryWaitTimeoutMs: int(env, 'DELIVERY_WAIT_TIMEOUT_MS', 500, 1, 10_000),
    shardRunnerLeaseMs: int(env, 'SHARD_RUNNER_LEASE_MS', 15_000, 3_000, 300_000),
    shardRunnerBacklog: int(env, 'SHARD_RUNNER_BACKLOG', 8, 1, 10_000),
    shardRunnerMax: int(env, 'SHARD_RUNNER_MAX', 4, 1, 64),
    deliveryOpeningLeases: bool(env, 'DELIVERY_OPENING_LEASES', true),
    adminPort: int(env, 'ADMIN_PORT', 9090, 0, 65_535),
    dashboardPort: str(env, 'DASHBOARD_PORT') === undefined ? undefined : int(env, 'DASHBOARD_PORT', 3001, 0, 65_535),
    dashboardAuth: dashboardAuth(env),
    adminApiPort: str(env, 'ADMIN_API_PORT') === undefined ? undefined : int(env, 'ADMIN_API_PORT', 8090, 0, 65_535),
    adminApiHost: str(env, 'ADMIN_API_HOST') ?? (runtime === 'local' ? '127.0.0.1' : '0.0.0.0'),
    adminApiRatePerMin: int(env, 'ADMIN_API_RATE_PER_MIN', 60, 1, 100_000),
    adminApiBurst: int(env, 'ADMIN_API_BURST', 20, 1, 10_000),
  };
}

/** `ztm`'s own variables: ZTM_REDIS_URL (falls back to REDIS_URL / REDIS_ADDR), ZTM_REDIS_CLUSTER (REDIS_CLUSTER), ZTM_NAMESPACE, ZTM_KUBE_CONTEXT, ZTM_SANDBOX_URL. */
export function loadCliConfig(env: Env): CliConfig {
  let redisUrl = str(env, 'ZTM_REDIS_URL');
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError('ZTM_REDIS_URL', 'must start with redis:// or rediss://');
  }
  if (redisUrl === undefined && (str(env, 'REDIS_URL') || str(env, 'REDIS_ADDR'))) redisUrl = resolveRedisUrl(env).url;
  const clusterVar = str(env, 'ZTM_REDIS_CLUSTER') !== undefined ? 'ZTM_REDIS_CLUSTER' : 'REDIS_CLUSTER';
  const namespace = str(env, 'ZTM_NAMESPACE') ?? 'tenants';
  deliveryShards(env); // `ztm status` and `ztm dead` read the platform's shards
  return {
    redisUrl,
    redisCluster: str(env, clusterVar) === undefined ? undefined : bool(env, clusterVar, false),
    namespace,
    tenantsNamespace: str(env, 'ZTM_TENANTS_NAMESPACE') ?? `${namespace}-agents`.slice(0, 63).replace(/-+$/, ''),
    kubeContext: str(env, 'ZTM_KUBE_CONTEXT'),
    dataDir: path.resolve(str(env, 'DATA_DIR') ?? './.ztm'),
    pickupTimeoutS: int(env, 'ZTM_PICKUP_TIMEOUT_S', 5, 1, 300),
    dashboardAuth: dashboardAuth(env),
    sandboxUrl: httpUrl(env, 'ZTM_SANDBOX_URL'),
  };
}
