/**
 * The agents the platform hosts (AGENT_PROFILE), as the platform sees them: which protocol the
 * forwarder speaks, where the agent listens, what a pod of it needs, and the settings every profile
 * is given (the model provider: AGENT_LLM_*). What a profile does inside the pod (config it writes,
 * probes, state paths) lives beside the shim, in agent/profiles/. Parsed here once, for the platform
 * (lib/config.ts) and for the shim (agent/shim-config.ts) alike, so both refuse the same bad values.
 */
import { ConfigError } from './errors.js';
import { envStr as str, envInt as int, type Env } from './util/env.js';

export type AgentProtocol = 'zeroclaw' | 'telegram';
export type AgentProfileName = 'reference' | 'zeroclaw' | 'openclaw' | 'custom';
export const AGENT_PROFILE_NAMES: readonly AgentProfileName[] = ['reference', 'zeroclaw', 'openclaw', 'custom'];

export interface AgentResources {
  requests: Record<string, string>;
  limits: Record<string, string>;
}

export interface AgentProfileFacts {
  name: AgentProfileName;
  protocol: AgentProtocol;
  /** AGENT_PORT's default: where the forwarder reaches the agent in its pod. */
  defaultPort: number;
  /** The tenant pod's requests/limits (the chart can override them per profile). */
  resources: AgentResources;
  /** The agent calls setWebhook itself at start: the platform's public webhook URL must be known. */
  registersOwnWebhook: boolean;
  /** The agent cannot answer without a model: AGENT_LLM_BASE_URL and AGENT_LLM_MODEL are required. */
  needsModel: boolean;
}

export const PROFILE_FACTS: Readonly<Record<AgentProfileName, AgentProfileFacts>> = Object.freeze({
  reference: {
    name: 'reference', protocol: 'zeroclaw', defaultPort: 42_617, registersOwnWebhook: false, needsModel: false,
    resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
  },
  // The Go system's sizing of a ZeroClaw pod (a Rust binary: small).
  zeroclaw: {
    name: 'zeroclaw', protocol: 'zeroclaw', defaultPort: 42_617, registersOwnWebhook: false, needsModel: false,
    resources: { requests: { cpu: '100m', memory: '384Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
  },
  // Measured: RSS 1.0-1.07 GB per instance, 21 threads; its start is CPU-bound (docs/agents.md).
  openclaw: {
    name: 'openclaw', protocol: 'telegram', defaultPort: 8787, registersOwnWebhook: true, needsModel: true,
    resources: { requests: { cpu: '500m', memory: '1280Mi' }, limits: { cpu: '2', memory: '2Gi' } },
  },
  custom: {
    name: 'custom', protocol: 'zeroclaw', defaultPort: 42_617, registersOwnWebhook: false, needsModel: false,
    resources: { requests: { cpu: '100m', memory: '384Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
  },
});

/** The model provider every profile is given (OpenAI-compatible). */
export interface AgentLlmSettings {
  /** e.g. `https://api.openai.com/v1` or `http://127.0.0.1:4000/v1` (the stub LLM). */
  baseUrl: string;
  model: string;
  /** A secret: redacted everywhere, reaches pods only by Secret reference. */
  apiKey: string | undefined;
}

export interface AgentSettings {
  profile: AgentProfileName;
  protocol: AgentProtocol;
  port: number;
  llm: AgentLlmSettings | undefined;
  /** custom: the agent's shell command line. */
  command: string | undefined;
  /** custom: the readiness path on the agent's port (default /health). */
  healthPath: string;
  /** custom: AGENT_STATE_PATHS as given (parsed by the shim: agent/state-archive.ts). */
  statePaths: string | undefined;
  /** openclaw: the Node >= 24.16 binary that runs it (default `node` on PATH). */
  node: string;
  /** openclaw: its `openclaw.mjs` (default `openclaw` on PATH). */
  openclawBin: string;
  /** zeroclaw: its binary (default `zeroclaw` on PATH). */
  zeroclawBin: string;
}

/** OpenClaw's own engine range starts here (it uses node:sqlite). */
export const OPENCLAW_MIN_NODE: readonly [number, number] = [24, 16];

const HEALTH_PATH = /^\/[A-Za-z0-9._~!$&'()*+,;=:@/-]{0,200}$/;
const MODEL_ID = /^[A-Za-z0-9._:/@-]{1,200}$/;

function httpBase(env: Env, name: string): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(name, 'must be an http(s) URL such as https://api.openai.com/v1');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(name, `must be an http(s) URL, got protocol ${u.protocol}`);
  // A key in the URL would be printed wherever the URL is: refuse it.
  if (u.username || u.password) throw new ConfigError(name, 'must not carry credentials (use AGENT_LLM_API_KEY)');
  return raw.replace(/\/+$/, '');
}

function llmSettings(env: Env): AgentLlmSettings | undefined {
  const baseUrl = httpBase(env, 'AGENT_LLM_BASE_URL');
  const model = str(env, 'AGENT_LLM_MODEL');
  const apiKey = str(env, 'AGENT_LLM_API_KEY');
  if (model !== undefined && !MODEL_ID.test(model)) throw new ConfigError('AGENT_LLM_MODEL', 'must be a model id (letters, digits, . _ : / @ -, at most 200)');
  if (apiKey !== undefined && /[\s"'\\]/.test(apiKey)) throw new ConfigError('AGENT_LLM_API_KEY', 'must not contain whitespace, quotes or backslashes');
  if (baseUrl === undefined && model === undefined) {
    if (apiKey !== undefined) throw new ConfigError('AGENT_LLM_BASE_URL', 'is required when AGENT_LLM_API_KEY is set');
    return undefined;
  }
  if (baseUrl === undefined) throw new ConfigError('AGENT_LLM_BASE_URL', 'is required when AGENT_LLM_MODEL is set');
  if (model === undefined) throw new ConfigError('AGENT_LLM_MODEL', 'is required when AGENT_LLM_BASE_URL is set');
  return { baseUrl, model, apiKey };
}

/**
 * AGENT_PROFILE and what goes with it; ConfigError on the first bad variable. `requireCommand`:
 * where the agent is started (the shim, the local runtime) a custom agent needs AGENT_COMMAND; the
 * services of a Kubernetes platform only need its protocol (the tenant image may bring the command).
 */
export function loadAgentSettings(env: Env, options: { requireCommand?: boolean } = {}): AgentSettings {
  const requireCommand = options.requireCommand ?? true;
  const givenProfile = str(env, 'AGENT_PROFILE');
  const rawProfile = givenProfile ?? 'reference';
  if (!(AGENT_PROFILE_NAMES as readonly string[]).includes(rawProfile)) {
    throw new ConfigError('AGENT_PROFILE', `must be one of ${AGENT_PROFILE_NAMES.join('|')}, got ${JSON.stringify(rawProfile.slice(0, 30))}`);
  }
  const profile = rawProfile as AgentProfileName;
  const facts = PROFILE_FACTS[profile];
  const rawProtocol = str(env, 'AGENT_PROTOCOL');
  if (rawProtocol !== undefined && rawProtocol !== 'zeroclaw' && rawProtocol !== 'telegram') {
    throw new ConfigError('AGENT_PROTOCOL', `must be one of zeroclaw|telegram, got ${JSON.stringify(rawProtocol.slice(0, 30))}`);
  }
  if (rawProtocol !== undefined && givenProfile !== undefined && profile !== 'custom' && rawProtocol !== facts.protocol) {
    throw new ConfigError('AGENT_PROTOCOL', `the ${profile} profile speaks ${facts.protocol}; leave AGENT_PROTOCOL unset (or use AGENT_PROFILE=custom)`);
  }
  const command = str(env, 'AGENT_COMMAND');
  if (command !== undefined && profile !== 'custom' && profile !== 'reference') {
    throw new ConfigError('AGENT_COMMAND', `is for AGENT_PROFILE=custom; the ${profile} profile starts its own agent`);
  }
  // AGENT_COMMAND or AGENT_PROTOCOL without a profile keep meaning what they meant before
  // profiles: a custom agent.
  const effective: AgentProfileName = givenProfile === undefined && (command !== undefined || rawProtocol !== undefined) ? 'custom' : profile;
  if (effective === 'custom' && command === undefined && requireCommand) throw new ConfigError('AGENT_COMMAND', 'is required with AGENT_PROFILE=custom');
  const healthPath = str(env, 'AGENT_HEALTH_PATH') ?? '/health';
  if (!HEALTH_PATH.test(healthPath)) throw new ConfigError('AGENT_HEALTH_PATH', 'must be a URL path starting with /');
  const statePaths = str(env, 'AGENT_STATE_PATHS');
  for (const name of ['AGENT_HEALTH_PATH', 'AGENT_STATE_PATHS'] as const) {
    if (str(env, name) !== undefined && effective !== 'custom') throw new ConfigError(name, `is for AGENT_PROFILE=custom; the ${effective} profile declares its own`);
  }
  const llm = llmSettings(env);
  if (PROFILE_FACTS[effective].needsModel && llm === undefined) {
    throw new ConfigError('AGENT_LLM_BASE_URL', `the ${effective} profile needs a model: set AGENT_LLM_BASE_URL and AGENT_LLM_MODEL (and AGENT_LLM_API_KEY if the provider wants one)`);
  }
  return {
    profile: effective,
    protocol: effective === 'custom' ? (rawProtocol as AgentProtocol | undefined) ?? 'zeroclaw' : PROFILE_FACTS[effective].protocol,
    port: int(env, 'AGENT_PORT', PROFILE_FACTS[effective].defaultPort, 1, 65_535),
    llm,
    command,
    healthPath,
    statePaths,
    node: str(env, 'AGENT_NODE') ?? 'node',
    openclawBin: str(env, 'OPENCLAW_BIN') ?? 'openclaw',
    zeroclawBin: str(env, 'ZEROCLAW_BIN') ?? 'zeroclaw',
  };
}

/** The secret setting a shim needs: kept apart so it reaches pods only by Secret reference. */
export const AGENT_LLM_API_KEY_VAR = 'AGENT_LLM_API_KEY';

/**
 * The settings a shim is started with, as environment variables: `plain` may go into a pod spec,
 * `secret` only through a Secret (Kubernetes) or the child's own environment (local runtime).
 */
export function agentSettingsEnv(s: AgentSettings): { plain: Record<string, string>; secret: Record<string, string> } {
  // AGENT_PORT is the runtime's to set (a pod's fixed port, or a free one per local shim).
  const plain: Record<string, string> = { AGENT_PROFILE: s.profile };
  if (s.profile === 'custom') {
    plain.AGENT_PROTOCOL = s.protocol;
    plain.AGENT_HEALTH_PATH = s.healthPath;
    if (s.command !== undefined) plain.AGENT_COMMAND = s.command;
    if (s.statePaths !== undefined) plain.AGENT_STATE_PATHS = s.statePaths;
  }
  if (s.llm) {
    plain.AGENT_LLM_BASE_URL = s.llm.baseUrl;
    plain.AGENT_LLM_MODEL = s.llm.model;
  }
  if (s.profile === 'openclaw') {
    plain.AGENT_NODE = s.node;
    plain.OPENCLAW_BIN = s.openclawBin;
  }
  if (s.profile === 'zeroclaw') plain.ZEROCLAW_BIN = s.zeroclawBin;
  const secret: Record<string, string> = {};
  if (s.llm?.apiKey !== undefined) secret[AGENT_LLM_API_KEY_VAR] = s.llm.apiKey;
  return { plain, secret };
}

/** `v24.16.0` → [24, 16]; undefined for anything else. */
export function parseNodeVersion(text: string): [number, number] | undefined {
  const m = /^v?([0-9]+)\.([0-9]+)\.[0-9]+/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** OpenClaw's engines: `>=24.16.0 <25 || >=26.1.0`. */
export function nodeRunsOpenclaw(version: [number, number]): boolean {
  const [major, minor] = version;
  return (major === OPENCLAW_MIN_NODE[0] && minor >= OPENCLAW_MIN_NODE[1]) || (major === 26 && minor >= 1) || major > 26;
}
