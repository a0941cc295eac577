/**
 * How the ZeroClaw emulator (zeroclaw-emulator.ts) finds its install dir and reads its config, as
 * upstream v0.8 does (15d2866). Sources:
 *   src/main.rs: main() (--config-dir sets ZEROCLAW_CONFIG_DIR), Commands::Daemon/Gateway (-p/--host)
 *   crates/zeroclaw-config/src/schema.rs: resolve_runtime_config_dirs, resolve_config_dir_for_data,
 *     default_config_dir, load_or_init (mkdir data/ and shared/, fresh config.toml 0600, salvage),
 *     GatewayConfig and its defaults, resolve_default_model, resolved_runtime_agent_alias
 *   crates/zeroclaw-config/src/migration.rs: detect_version, migrate_to_current_salvaged
 *   crates/zeroclaw-config/src/schema/v1.rs: V1Config::migrate (top-level provider keys folded)
 *   crates/zeroclaw-config/src/env_overrides.rs: ZEROCLAW_<lowercase path with __> overrides
 *   docs/book/src/reference/env-vars.md: alias grammar
 * The env-override schema here is the subset the platform touches: a real key outside it is
 * refused here although upstream would accept it.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify, type TomlTable } from 'smol-toml';

export class StartupError extends Error {}

export interface Cli {
  command: 'daemon' | 'gateway';
  port: number | undefined;
  host: string | undefined;
}

/** Parses `[--config-dir D] daemon|gateway [start] [-p N] [--host H]`; --config-dir may come anywhere. */
export function parseCli(argv: readonly string[], env: NodeJS.ProcessEnv): Cli {
  const rest: string[] = [];
  let port: number | undefined;
  let host: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new StartupError(`a value is required for '${flag}'`);
      return v;
    };
    if (flag === '--config-dir') {
      const dir = value();
      if (dir.trim() === '') throw new StartupError('--config-dir cannot be empty');
      env.ZEROCLAW_CONFIG_DIR = dir;
    } else if (flag === '-p' || flag === '--port') {
      const v = value();
      if (!/^\d{1,5}$/.test(v) || Number(v) > 65_535) throw new StartupError(`invalid value '${v}' for '--port <PORT>'`);
      port = Number(v);
    } else if (flag === '--host') host = value();
    else rest.push(a);
  }
  const [cmd, sub, ...extra] = rest;
  if (cmd === 'daemon' && sub === undefined) return { command: 'daemon', port, host };
  if (cmd === 'gateway' && (sub === undefined || sub === 'start') && extra.length === 0) return { command: 'gateway', port, host };
  throw new StartupError(`the emulator runs only \`zeroclaw daemon\` and \`zeroclaw gateway [start]\`, not: ${argv.join(' ')}`);
}

/** The install dir: ZEROCLAW_CONFIG_DIR > ZEROCLAW_DATA_DIR > ZEROCLAW_WORKSPACE > $HOME/.zeroclaw. */
export function resolveInstall(env: NodeJS.ProcessEnv): { dir: string; source: string } {
  const configDir = env.ZEROCLAW_CONFIG_DIR?.trim();
  if (configDir) return { dir: expandTilde(configDir, env), source: 'ZEROCLAW_CONFIG_DIR' };
  const dataDir = env.ZEROCLAW_DATA_DIR;
  if (dataDir !== undefined && dataDir.trim() !== '') return { dir: forDataDir(expandTilde(dataDir, env)), source: 'ZEROCLAW_DATA_DIR' };
  const workspace = env.ZEROCLAW_WORKSPACE;
  if (workspace) return { dir: forDataDir(expandTilde(workspace, env)), source: 'ZEROCLAW_WORKSPACE' };
  return { dir: path.join(env.HOME ? env.HOME : os.homedir(), '.zeroclaw'), source: 'default' };
}

/** resolve_config_dir_for_data: `<d>`, or `<parent>/.zeroclaw` for a legacy layout or a dir named data/workspace. */
function forDataDir(d: string): string {
  if (existsSync(path.join(d, 'config.toml'))) return d;
  const legacy = path.join(path.dirname(d), '.zeroclaw');
  if (existsSync(path.join(legacy, 'config.toml'))) return legacy;
  return ['data', 'workspace'].includes(path.basename(d)) ? legacy : d;
}

function expandTilde(p: string, env: NodeJS.ProcessEnv): string {
  const home = env.HOME || os.homedir();
  return path.resolve(p === '~' ? home : p.startsWith('~/') ? path.join(home, p.slice(2)) : p);
}

export interface GatewaySettings {
  host: string;
  port: number;
  requirePairing: boolean;
  allowPublicBind: boolean;
  pairedTokens: string[];
  pairRateLimit: number;
  webhookRateLimit: number;
  trustForwardedHeaders: boolean;
  rateLimitMaxKeys: number;
  idempotencyTtlS: number;
  idempotencyMaxKeys: number;
  requestTimeoutS: number;
}

export interface ProviderEntry {
  family: string;
  alias: string;
  apiKey?: string;
  uri?: string;
  model?: string;
  temperature?: number;
}

export interface EmulatorConfig {
  /** The on-disk schema_version (1 for a V1 file, migrated in memory as upstream does). */
  diskVersion: number;
  gateway: GatewaySettings;
  providers: ProviderEntry[];
  agents: Map<string, { enabled: boolean; modelProvider: string; riskProfile: string }>;
  riskProfiles: Set<string>;
  memoryBackend: string;
  autoSave: boolean;
  providerRetries: number;
  providerBackoffMs: number;
}

type Kind = 'str' | 'int' | 'bool' | 'float' | 'strs';

const GATEWAY_FIELDS: Record<string, Kind> = {
  port: 'int', host: 'str', require_pairing: 'bool', allow_public_bind: 'bool', allow_remote_admin: 'bool', paired_tokens: 'strs',
  pair_rate_limit_per_minute: 'int', webhook_rate_limit_per_minute: 'int', trust_forwarded_headers: 'bool', path_prefix: 'str',
  rate_limit_max_keys: 'int', idempotency_ttl_secs: 'int', idempotency_max_keys: 'int', session_persistence: 'bool',
  session_ttl_hours: 'int', websocket_ping_interval_secs: 'int', web_dist_dir: 'str', request_timeout_secs: 'int',
  long_running_request_timeout_secs: 'int', check_updates: 'bool', allow_self_upgrade: 'bool',
};
const FIXED_FIELDS: Record<string, Kind> = {
  ...Object.fromEntries(Object.entries(GATEWAY_FIELDS).map(([k, v]) => [`gateway.${k}`, v])),
  'memory.backend': 'str', 'memory.auto_save': 'bool', 'reliability.provider_retries': 'int', 'reliability.provider_backoff_ms': 'int', locale: 'str',
};
const PROVIDER_FIELDS: Record<string, Kind> = {
  api_key: 'str', kind: 'str', uri: 'str', model: 'str', temperature: 'float', timeout_secs: 'int', wire_api: 'str', max_tokens: 'int', merge_system_into_user: 'bool',
};
// The model-provider families of crates/zeroclaw-config/src/providers.rs ModelProviders, in its order.
const FAMILIES = ('openai azure anthropic moonshot qwen openrouter ollama together fireworks groq mistral atomic_chat deepseek cohere '
  + 'perplexity xai cerebras sambanova hyperbolic deepinfra huggingface reka baseten nscale anyscale nebius friendli stepfun aihubmix '
  + 'siliconflow astrai avian deepmyst venice nearai novita nvidia telnyx vercel cloudflare atlascloud ovh copilot glm minimax zai '
  + 'doubao yi hunyuan qianfan baichuan gemini gemini_cli grok_cli lmstudio llamacpp sglang vllm osaurus litellm lepton morph manifest '
  + 'github_models upstage featherless arcee lambda_ai inception synthetic opencode kilocli kilo custom bedrock').split(' ');
const AGENT_FIELDS: Record<string, Kind> = { enabled: 'bool', model_provider: 'str', risk_profile: 'str', runtime_profile: 'str' };
const MAP_SECTIONS: Array<{ path: string; fields: Record<string, Kind> }> = [
  ...FAMILIES.map((f) => ({ path: `providers.models.${f}`, fields: PROVIDER_FIELDS })),
  { path: 'agents', fields: AGENT_FIELDS },
  { path: 'risk_profiles', fields: { level: 'str' } satisfies Record<string, Kind> },
].sort((a, b) => b.path.length - a.path.length);

/** Reads (or makes) `<install>/config.toml` as load_or_init does, env overrides applied in memory. */
export function loadConfig(installDir: string, env: NodeJS.ProcessEnv): EmulatorConfig {
  for (const dir of [path.join(installDir, 'data'), path.join(installDir, 'shared')]) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new StartupError(`Failed to create data directory: ${dir}: ${(e as Error).message}`);
    }
  }
  const file = path.join(installDir, 'config.toml');
  let raw: TomlTable;
  let diskVersion = 3;
  if (!existsSync(file)) {
    // A fresh install saves its defaults first; env overrides are never written (env-vars.md).
    writeFileSync(file, 'schema_version = 3\n', { mode: 0o600 });
    raw = { schema_version: 3 };
  } else {
    try {
      raw = parse(readFileSync(file, 'utf8'));
    } catch (e) {
      // Upstream boots on defaults and marks the security posture degraded; daemon and gateway then refuse to serve.
      throw new StartupError(`config could not be parsed (${(e as Error).message.split('\n')[0]}); refusing to serve with a degraded security posture`);
    }
    const v = raw.schema_version;
    diskVersion = v === undefined ? 1 : typeof v === 'number' && Number.isInteger(v) && v >= 1 ? v : NaN;
    if (!(diskVersion <= 3)) throw new StartupError(`config schema_version ${String(v)} cannot be migrated; refusing to serve with a degraded security posture`);
    if (diskVersion < 3) raw = migrateV1(raw);
  }
  applyEnvOverrides(raw, env);
  return normalize(raw, diskVersion);
}

/**
 * V1 → V3 as far as the gateway sees it: the top-level provider keys fold into
 * [providers.models.<default_provider, else openrouter>.default] and a migration "default" agent
 * points at it. A V1 file without default_model therefore has no model: needs_quickstart.
 */
function migrateV1(v1: TomlTable): TomlTable {
  const { default_provider, default_model, api_key, api_url, default_temperature, schema_version: _v, workspace_dir: _w, ...rest } = v1;
  const out: TomlTable = { ...rest, schema_version: 3 };
  const folded = [default_provider, default_model, api_key, api_url, default_temperature].some((x) => x !== undefined);
  if (!folded) return out;
  const family = typeof default_provider === 'string' ? default_provider : 'openrouter';
  const entry: TomlTable = {};
  if (default_model !== undefined) entry.model = default_model;
  if (api_key !== undefined) entry.api_key = api_key;
  if (api_url !== undefined) entry.uri = api_url;
  if (default_temperature !== undefined) entry.temperature = default_temperature;
  out.providers = { models: { [family]: { default: entry } } };
  out.agents ??= { default: { model_provider: `${family}.default`, risk_profile: 'default' } };
  out.risk_profiles ??= { default: { level: 'supervised' } };
  return out;
}

/** env_overrides.rs apply_env_overrides: every ZEROCLAW_<lowercase> name must resolve, or the start fails. */
function applyEnvOverrides(raw: TomlTable, env: NodeJS.ProcessEnv): void {
  const names = Object.keys(env).filter((k) => /^ZEROCLAW_[a-z0-9_]+$/.test(k)).sort();
  for (const name of names) {
    const tail = name.slice('ZEROCLAW_'.length);
    const { segments, kind } = resolvePath(name, tail);
    if (segments.join('.') === 'schema_version') throw new StartupError(`${name} -> schema_version: this field is not overridable via env vars`);
    setPath(raw, segments, coerce(name, kind, env[name] as string));
  }
}

function resolvePath(name: string, tail: string): { segments: string[]; kind: Kind } {
  for (const section of MAP_SECTIONS) {
    const prefix = `${section.path.replaceAll('.', '__')}__`;
    if (!tail.startsWith(prefix)) continue;
    const [alias = '', inner = ''] = splitOnce(tail.slice(prefix.length), '__');
    if (!/^[a-z0-9](?:[a-z0-9_]{0,61}[a-z0-9])?$/.test(alias) || alias.includes('__')) throw new StartupError(`${name} did not resolve to a schema path: invalid alias \`${alias}\` for \`${section.path}\``);
    const kind = section.fields[inner];
    if (kind === undefined) throw new StartupError(`${name} did not resolve to a schema path: unknown property \`${section.path}.${alias}.${inner.replaceAll('__', '.')}\``);
    return { segments: [...section.path.split('.'), alias, inner], kind };
  }
  const dotted = tail.replaceAll('__', '.');
  const kind = FIXED_FIELDS[dotted];
  if (kind === undefined) throw new StartupError(`${name} did not resolve to a schema path: no schema field has env-form \`${tail}\``);
  return { segments: dotted.split('.'), kind };
}

function splitOnce(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + sep.length)];
}

function coerce(name: string, kind: Kind, v: string): unknown {
  const bad = (): never => {
    throw new StartupError(`${name}: invalid value for a ${kind} field`);
  };
  switch (kind) {
    case 'str': return v;
    case 'int': return /^\d+$/.test(v) ? Number(v) : bad();
    case 'float': return v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : bad();
    case 'bool': return v === 'true' ? true : v === 'false' ? false : bad();
    case 'strs': {
      try {
        const list: unknown = JSON.parse(v);
        if (Array.isArray(list) && list.every((x) => typeof x === 'string')) return list;
      } catch {
        // falls through to the error: Vec<String> fields take a JSON array
      }
      return bad();
    }
  }
}

function setPath(root: TomlTable, segments: string[], value: unknown): void {
  let t = root as Record<string, unknown>;
  for (const s of segments.slice(0, -1)) {
    if (typeof t[s] !== 'object' || t[s] === null || Array.isArray(t[s])) t[s] = {};
    t = t[s] as Record<string, unknown>;
  }
  t[segments.at(-1) as string] = value;
}

function normalize(raw: TomlTable, diskVersion: number): EmulatorConfig {
  const g = table(raw.gateway);
  const int = (k: string, d: number, max = Number.MAX_SAFE_INTEGER): number => {
    const v = g[k] ?? d;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new StartupError(`[gateway] ${k} must be a whole number`);
    return v;
  };
  const bool = (k: string, d: boolean): boolean => {
    const v = g[k] ?? d;
    if (typeof v !== 'boolean') throw new StartupError(`[gateway] ${k} must be true or false`);
    return v;
  };
  const tokens = g.paired_tokens ?? [];
  if (!Array.isArray(tokens) || !tokens.every((x) => typeof x === 'string')) throw new StartupError('[gateway] paired_tokens must be a list of strings');
  const gateway: GatewaySettings = {
    host: typeof g.host === 'string' ? g.host : '127.0.0.1',
    port: int('port', 42617, 65_535),
    requirePairing: bool('require_pairing', true),
    allowPublicBind: bool('allow_public_bind', false),
    // enc2: values need .secret_key to decrypt; the emulator writes and reads only plain hashes.
    pairedTokens: (tokens as string[]).filter((x) => !x.startsWith('enc2:') && x !== ''),
    pairRateLimit: int('pair_rate_limit_per_minute', 10),
    webhookRateLimit: int('webhook_rate_limit_per_minute', 60),
    trustForwardedHeaders: bool('trust_forwarded_headers', false),
    rateLimitMaxKeys: int('rate_limit_max_keys', 10_000) || 10_000,
    idempotencyTtlS: Math.max(1, int('idempotency_ttl_secs', 300)),
    idempotencyMaxKeys: int('idempotency_max_keys', 10_000) || 10_000,
    requestTimeoutS: int('request_timeout_secs', 30),
  };
  const providers: ProviderEntry[] = [];
  const models = table(table(raw.providers).models);
  for (const family of FAMILIES) {
    for (const alias of Object.keys(table(models[family])).sort()) {
      const e = table(table(models[family])[alias]);
      providers.push({
        family, alias,
        ...(typeof e.api_key === 'string' && e.api_key.trim() !== '' ? { apiKey: e.api_key.trim() } : {}),
        ...(typeof e.uri === 'string' ? { uri: e.uri } : {}),
        ...(typeof e.model === 'string' ? { model: e.model } : {}),
        ...(typeof e.temperature === 'number' ? { temperature: e.temperature } : {}),
      });
    }
  }
  const agents = new Map<string, { enabled: boolean; modelProvider: string; riskProfile: string }>();
  for (const [alias, a] of Object.entries(table(raw.agents))) {
    const t = table(a);
    agents.set(alias, {
      enabled: t.enabled !== false,
      modelProvider: typeof t.model_provider === 'string' ? t.model_provider : '',
      riskProfile: typeof t.risk_profile === 'string' ? t.risk_profile : '',
    });
  }
  const memory = table(raw.memory);
  const reliability = table(raw.reliability);
  return {
    diskVersion, gateway, providers, agents,
    riskProfiles: new Set(Object.keys(table(raw.risk_profiles))),
    memoryBackend: typeof memory.backend === 'string' ? memory.backend : 'sqlite',
    autoSave: memory.auto_save !== false,
    providerRetries: typeof reliability.provider_retries === 'number' ? reliability.provider_retries : 2,
    providerBackoffMs: typeof reliability.provider_backoff_ms === 'number' ? reliability.provider_backoff_ms : 500,
  };
}

const table = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : {});

/**
 * The model the gateway boots with (lib.rs run_gateway): the first provider entry's, else any
 * entry's (resolve_default_model); '' when there is none or the first entry cannot be built
 * (a custom entry without uri). '' means every chat answers 503 needs_quickstart.
 */
export function bootModel(c: EmulatorConfig): string {
  const first = c.providers[0];
  if (!first || (first.family === 'custom' && !first.uri)) return '';
  return first.model?.trim() || defaultModel(c) || '';
}

export const defaultModel = (c: EmulatorConfig): string | undefined => c.providers.map((p) => p.model?.trim()).find((m) => m);

/** schema.rs resolved_runtime_agent_alias: an agent named "default", else the smallest enabled alias. */
export function runtimeAgentAlias(c: EmulatorConfig): string | undefined {
  if (c.agents.has('default')) return 'default';
  return [...c.agents].filter(([, a]) => a.enabled).map(([alias]) => alias).sort()[0];
}

/** lib.rs persist_pairing_tokens: the token hashes go back into config.toml (upstream encrypts them). */
export function savePairedTokens(installDir: string, hashes: readonly string[]): void {
  const file = path.join(installDir, 'config.toml');
  const raw = parse(readFileSync(file, 'utf8'));
  raw.gateway = { ...table(raw.gateway), paired_tokens: [...hashes] };
  writeFileSync(file, stringify(raw), { mode: 0o600 });
}
