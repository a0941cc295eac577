/**
 * The shim's configuration: the one place that reads its environment, and the validation of the
 * tenant binding a warm pod receives in a claim (same rules as a cold pod's env). A bad value is
 * a ConfigError / ValidationError naming the variable; secret values are never echoed.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, ValidationError } from '../lib/errors.js';
import { BOT_TOKEN_PATTERN, TENANT_ID_PATTERN } from '../lib/validate.js';
import { loadAgentSettings, type AgentSettings } from '../lib/agent-profiles.js';

import { envInt as int, envStr as str, type Env } from '../lib/util/env.js';
import type { SandboxSettings } from './agent-sandbox.js';

export type { Env };

/** What to exec: a file and its arguments (never through a shell unless AGENT_COMMAND says so). */
export interface AgentCommand {
  file: string;
  args: string[];
  /** For logs: the default's name or the configured command line. */
  display: string;
}

/** Who this pod works for, from the env (cold) or a claim (warm). */
export interface TenantBinding {
  tenantId: string;
  botToken: string | undefined;
  stateGetUrl: string | undefined;
  statePutUrl: string | undefined;
  /** GET of the older single-brain.db object, read only when the state object does not exist yet. */
  stateLegacyGetUrl: string | undefined;
  /** The tenant's webhook secret (telegram protocol: the agent verifies the platform's deliveries with it). */
  webhookSecret: string | undefined;
  /** SHA-256 (hex) of the bearer the forwarder presents to this tenant's agent (zeroclaw protocol). */
  agentTokenSha256: string | undefined;
  /** Extra variables for the agent (claim only); the shim's own PORT, WORKSPACE... win. */
  env: Record<string, string>;
  /** The tenant's incarnation (claim only): state URLs must name `tenants/<id>/<incarnation>/…` (state-url-guard.ts). */
  incarnation?: string | undefined;
}

export interface ShimConfig {
  shimPort: number;
  shimHost: string;
  agentPort: number;
  /** A second port for an agent's internal listener (OpenClaw's gateway); loopback only. */
  internalPort: number;
  /** AGENT_PROFILE and its settings (lib/agent-profiles.ts). */
  agent: AgentSettings;
  /** The Bot API base the platform uses (telegram-protocol agents answer through it). */
  botApiBase: string | undefined;
  /** The platform's public webhook base: `<it>/tg/<id>` is the only webhook an agent may register. */
  routerPublicUrl: string | undefined;
  /** Bound of the whole state, uncompressed, at checkpoint and restore. */
  stateMaxBytes: number;
  workspace: string;
  /** 0 turns periodic checkpoints off (the one on stop still happens). */
  checkpointIntervalS: number;
  agentReadyTimeoutS: number;
  /**
   * SHIM_PREWARM (default 1): a warm member runs once, before any claim, the code paths a claim
   * takes for the first time (agent/shim-prewarm.ts), so a wake does not pay for them; 0 turns it off.
   */
  prewarm: boolean;
  /** How long the agent gets between SIGTERM and SIGKILL. */
  agentStopTimeoutS: number;
  /** Where to write the agent's pid (= its process group): lets a local supervisor reap it if the shim dies hard. */
  agentPidFile: string | undefined;
  /**
   * The local runtime's process (SHIM_SUPERVISOR_PID): when it is gone the shim stops gracefully
   * (final checkpoint), since a restarted runtime cannot adopt it and would start a second agent on
   * the same workspace. Unset in a pod, where the shim outlives the platform's workers.
   */
  supervisorPid: number | undefined;
  warm: boolean;
  warmPoolSecret: string | undefined;
  /**
   * AGENT_SANDBOX=namespaces (the local runtime, after its probe): the agent runs in its own
   * namespaces (agent/agent-sandbox.ts), AGENT_SANDBOX_HIDE (a JSON array of absolute paths, the
   * platform's DATA_DIR) covered, as AGENT_SANDBOX_UID/GID when the shim is root. Unset or off: not.
   */
  sandbox: SandboxSettings | undefined;
  /** Set for a cold start; undefined for a warm pool member until it is claimed. */
  tenant: TenantBinding | undefined;
  logLevel: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/**
 * What a claim may set in the agent's environment: locale, time zone, log level and TENANT_* facts.
 * Nothing that changes how a program loads (NODE_OPTIONS, LD_PRELOAD, PATH...) or what the shim
 * relies on (PORT, HOST, WORKSPACE, the agent's own settings).
 */
const CLAIM_ENV_ALLOWED = /^(TZ|LANG|LANGUAGE|LC_[A-Z]+|LOG_LEVEL|TENANT_[A-Z0-9_]+)$/;
const CLAIM_ENV_RESERVED = new Set(['TENANT_ID', 'TENANT_WEBHOOK_SECRET']);
const MAX_CLAIM_ENV = 100;
const MAX_ENV_VALUE = 32 * 1024;



/** A presigned URL is a credential: say what is wrong with it, never what it is. */
function checkUrl(name: string, value: unknown, fail: (name: string, msg: string) => Error): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw fail(name, 'must be a string URL');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw fail(name, 'must be an http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw fail(name, 'must be an http(s) URL');
  return value;
}

function checkTenant(name: string, value: unknown, fail: (name: string, msg: string) => Error): string {
  if (typeof value !== 'string' || !TENANT_ID_PATTERN.test(value)) {
    throw fail(name, "must be lowercase letters, digits and '-', starting with a letter, at most 40 characters");
  }
  return value;
}

const WEBHOOK_SECRET = /^[A-Za-z0-9_-]{1,256}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const INCARNATION = /^[A-Za-z0-9_-]{1,128}$/;

function checkPattern(name: string, value: unknown, pattern: RegExp, what: string, fail: (name: string, msg: string) => Error): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || !pattern.test(value)) throw fail(name, `must be ${what}`);
  return value;
}

function checkToken(name: string, value: unknown, fail: (name: string, msg: string) => Error): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || !BOT_TOKEN_PATTERN.test(value)) {
    throw fail(name, "must be a Telegram bot token (<digits>:<30-60 chars of A-Z a-z 0-9 _ ->)");
  }
  return value;
}

const configFail = (name: string, msg: string): Error => new ConfigError(name, msg);
const claimFail = (name: string, msg: string): Error => new ValidationError(`${name}: ${msg}`);

/**
 * Without AGENT_COMMAND: the reference agent beside this file, with the same node; under tsx
 * (running .ts) it gets the tsx loader by absolute URL so the agent's cwd does not matter.
 */
export function defaultAgentCommand(): AgentCommand {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    return {
      file: process.execPath,
      args: ['--import', import.meta.resolve('tsx'), fileURLToPath(new URL('./reference-agent.ts', here))],
      display: 'reference-agent (tsx)',
    };
  }
  return { file: process.execPath, args: [fileURLToPath(new URL('./reference-agent.js', here))], display: 'reference-agent' };
}

/** Ids the agent may run as: not root (0), not (uid_t)-1, which means "unchanged" to the kernel. */
const SANDBOX_ID_MAX = 4_294_967_294;

function loadSandbox(env: Env): SandboxSettings | undefined {
  const mode = str(env, 'AGENT_SANDBOX') ?? 'off';
  if (mode !== 'namespaces' && mode !== 'off') throw new ConfigError('AGENT_SANDBOX', `must be namespaces or off in the shim (the platform resolves auto), got ${JSON.stringify(mode.slice(0, 20))}`);
  if (mode === 'off') return undefined;
  let hide: unknown;
  try {
    hide = JSON.parse(str(env, 'AGENT_SANDBOX_HIDE') ?? '[]');
  } catch {
    throw new ConfigError('AGENT_SANDBOX_HIDE', 'must be a JSON array of absolute paths');
  }
  if (!Array.isArray(hide) || hide.length > 16 || !hide.every((p) => typeof p === 'string' && path.isAbsolute(p) && path.resolve(p) !== '/' && !/^\/(proc|sys|dev)(\/|$)/.test(path.resolve(p)))) {
    throw new ConfigError('AGENT_SANDBOX_HIDE', 'must be a JSON array of at most 16 absolute paths, none of them /, /proc, /sys or /dev');
  }
  return { hide: hide as string[], uid: int(env, 'AGENT_SANDBOX_UID', 65_534, 1, SANDBOX_ID_MAX), gid: int(env, 'AGENT_SANDBOX_GID', 65_534, 1, SANDBOX_ID_MAX) };
}

export function loadShimConfig(env: Env): ShimConfig {
  const logLevel = str(env, 'LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join('|')}`);
  const warmRaw = str(env, 'WARM') ?? '0';
  if (warmRaw !== '0' && warmRaw !== '1') throw new ConfigError('WARM', `must be 1 (warm pool member) or 0, got ${JSON.stringify(warmRaw.slice(0, 10))}`);
  const warm = warmRaw === '1';
  const warmPoolSecret = str(env, 'WARM_POOL_SECRET');
  if (warm && warmPoolSecret === undefined) throw new ConfigError('WARM_POOL_SECRET', 'required when WARM=1');
  if (warmPoolSecret !== undefined && warmPoolSecret.length < 16) {
    throw new ConfigError('WARM_POOL_SECRET', 'must be at least 16 characters');
  }

  const agent = loadAgentSettings(env);

  let tenant: TenantBinding | undefined;
  const tenantRaw = str(env, 'TENANT_ID');
  if (warm) {
    if (tenantRaw !== undefined) throw new ConfigError('TENANT_ID', 'must not be set with WARM=1 (a warm pod gets its tenant from a claim)');
  } else {
    if (tenantRaw === undefined) throw new ConfigError('TENANT_ID', 'required unless WARM=1');
    tenant = {
      tenantId: checkTenant('TENANT_ID', tenantRaw, configFail),
      botToken: checkToken('BOT_TOKEN', str(env, 'BOT_TOKEN'), configFail),
      stateGetUrl: checkUrl('STATE_GET_URL', str(env, 'STATE_GET_URL'), configFail),
      statePutUrl: checkUrl('STATE_PUT_URL', str(env, 'STATE_PUT_URL'), configFail),
      stateLegacyGetUrl: checkUrl('STATE_LEGACY_GET_URL', str(env, 'STATE_LEGACY_GET_URL'), configFail),
      webhookSecret: checkPattern('TENANT_WEBHOOK_SECRET', str(env, 'TENANT_WEBHOOK_SECRET'), WEBHOOK_SECRET, "1-256 characters of A-Z a-z 0-9 _ -", configFail),
      agentTokenSha256: checkPattern('AGENT_TOKEN_SHA256', str(env, 'AGENT_TOKEN_SHA256'), SHA256_HEX, 'a lowercase hex SHA-256', configFail),
      env: {},
    };
  }

  const shimPort = int(env, 'SHIM_PORT', 9000, 1, 65_535);
  const agentPort = agent.port;
  if (shimPort === agentPort) throw new ConfigError('AGENT_PORT', `must differ from SHIM_PORT (${shimPort})`);
  const internalPort = int(env, 'AGENT_INTERNAL_PORT', 18_789, 1, 65_535);
  if (internalPort === agentPort || internalPort === shimPort) throw new ConfigError('AGENT_INTERNAL_PORT', 'must differ from SHIM_PORT and AGENT_PORT');
  const botApiBase = checkUrl('TELEGRAM_API_BASE', str(env, 'TELEGRAM_API_BASE'), configFail)?.replace(/\/+$/, '');
  const routerPublicUrl = checkUrl('ROUTER_PUBLIC_URL', str(env, 'ROUTER_PUBLIC_URL'), configFail)?.replace(/\/+$/, '');
  return {
    shimPort,
    shimHost: str(env, 'SHIM_HOST') ?? '0.0.0.0',
    agentPort,
    internalPort,
    agent,
    botApiBase,
    routerPublicUrl,
    stateMaxBytes: int(env, 'STATE_MAX_BYTES', 512 * 1_048_576, 1_048_576, 64 * 1024 * 1_048_576),
    workspace: path.resolve(str(env, 'WORKSPACE') ?? '/workspace'),
    checkpointIntervalS: int(env, 'CHECKPOINT_INTERVAL_S', 60, 0, 86_400),
    agentReadyTimeoutS: int(env, 'AGENT_READY_TIMEOUT_S', 60, 1, 3_600),
    prewarm: int(env, 'SHIM_PREWARM', 1, 0, 1) === 1,
    agentStopTimeoutS: int(env, 'AGENT_STOP_TIMEOUT_S', 20, 1, 3_600),
    agentPidFile: str(env, 'AGENT_PID_FILE'),
    supervisorPid: str(env, 'SHIM_SUPERVISOR_PID') === undefined ? undefined : int(env, 'SHIM_SUPERVISOR_PID', 0, 1, 4_194_304),
    warm,
    warmPoolSecret,
    sandbox: loadSandbox(env),
    tenant,
    logLevel,
  };
}

/**
 * The body of `POST /claim`: `{ tenant_id, incarnation?, bot_token?, state_get_url?, state_put_url?,
 * state_legacy_get_url?, webhook_secret?, agent_token_sha256?, env? }`.
 */
export function parseClaim(body: unknown): TenantBinding {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ValidationError('claim: expected a JSON object');
  const b = body as Record<string, unknown>;
  const env: Record<string, string> = {};
  if (b.env !== undefined && b.env !== null) {
    if (typeof b.env !== 'object' || Array.isArray(b.env)) throw new ValidationError('env: expected an object of strings');
    const entries = Object.entries(b.env as Record<string, unknown>);
    if (entries.length > MAX_CLAIM_ENV) throw new ValidationError(`env: at most ${MAX_CLAIM_ENV} variables`);
    for (const [k, v] of entries) {
      if (!ENV_NAME.test(k)) throw new ValidationError(`env: invalid variable name ${JSON.stringify(k.slice(0, 40))}`);
      if (!CLAIM_ENV_ALLOWED.test(k) || CLAIM_ENV_RESERVED.has(k)) {
        throw new ValidationError(`env: ${k} may not be set by a claim (allowed: TZ, LANG, LC_*, LOG_LEVEL, TENANT_*)`);
      }
      if (typeof v !== 'string' || v.length > MAX_ENV_VALUE) throw new ValidationError(`env.${k}: expected a string of at most ${MAX_ENV_VALUE} characters`);
      env[k] = v;
    }
  }
  return {
    tenantId: checkTenant('tenant_id', b.tenant_id, claimFail),
    botToken: checkToken('bot_token', b.bot_token, claimFail),
    stateGetUrl: checkUrl('state_get_url', b.state_get_url, claimFail),
    statePutUrl: checkUrl('state_put_url', b.state_put_url, claimFail),
    stateLegacyGetUrl: checkUrl('state_legacy_get_url', b.state_legacy_get_url, claimFail),
    webhookSecret: checkPattern('webhook_secret', b.webhook_secret, WEBHOOK_SECRET, '1-256 characters of A-Z a-z 0-9 _ -', claimFail),
    agentTokenSha256: checkPattern('agent_token_sha256', b.agent_token_sha256, SHA256_HEX, 'a lowercase hex SHA-256', claimFail),
    env,
    incarnation: checkPattern('incarnation', b.incarnation, INCARNATION, '1-128 characters of A-Z a-z 0-9 _ -', claimFail),
  };
}

/** The body of `POST /state-urls`: `{ state_get_url?, state_put_url? }`, at least one. */
export function parseStateUrls(body: unknown): { getUrl: string | undefined; putUrl: string | undefined } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ValidationError('state-urls: expected a JSON object');
  const b = body as Record<string, unknown>;
  const getUrl = checkUrl('state_get_url', b.state_get_url, claimFail);
  const putUrl = checkUrl('state_put_url', b.state_put_url, claimFail);
  if (getUrl === undefined && putUrl === undefined) throw new ValidationError('state-urls: give state_get_url and/or state_put_url');
  return { getUrl, putUrl };
}
