/**
 * ZeroClaw v0.8 (upstream zeroclaw-labs/zeroclaw 15d2866, tag v0.8.4) as the shim's zeroclaw profile
 * needs it: the schema-v3 config.toml it writes before every start, the environment that carries
 * the LLM key, the state inside the install dir, the readiness check and the command. Every fact
 * names its upstream source; test/support/zeroclaw-emulator.ts follows the same sources.
 */
import { createHash, randomBytes } from 'node:crypto';

export interface ZeroclawConfigOptions {
  /** Where the gateway binds ([gateway] host): the pod IP / 0.0.0.0, or 127.0.0.1 locally. */
  host: string;
  port: number;
  /** The platform's OpenAI-compatible provider (AGENT_LLM_BASE_URL / AGENT_LLM_MODEL); undefined: none. */
  llm: { baseUrl: string; model: string } | undefined;
  /** SHA-256 (64 lowercase hex) of the bearer the forwarder sends. */
  pairedTokenSha256: string;
  /** SHA-256 of the shim's own bearer for the readiness probe (newZeroclawProbeToken). */
  probeTokenSha256?: string;
  /** [gateway] request_timeout_secs: after it ZeroClaw answers 408 (upstream default 30). */
  requestTimeoutS?: number;
  /** [gateway] webhook_rate_limit_per_minute; default 0 = off (see below). */
  webhookRateLimitPerMinute?: number;
}

/** Provider alias under [providers.models.custom.<alias>]; agents.main.model_provider names it. */
export const ZEROCLAW_PROVIDER = 'custom.platform';
export const ZEROCLAW_AGENT = 'main';
/** Upstream's default gateway port (crates/zeroclaw-config/src/schema.rs default_gateway_port). */
export const ZEROCLAW_DEFAULT_PORT = 42617;
/** The body limit of every gateway route (crates/zeroclaw-gateway/src/lib.rs MAX_BODY_SIZE). */
export const ZEROCLAW_MAX_BODY_BYTES = 65_536;

// crates/zeroclaw-config/src/pairing.rs is_public_bind: anything else needs allow_public_bind.
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]', '0:0:0:0:0:0:0:1']);
const SHA256_HEX = /^[0-9a-f]{64}$/;

export function renderZeroclawConfig(o: ZeroclawConfigOptions): string {
  if (typeof o.host !== 'string' || o.host.trim() === '' || o.host !== o.host.trim()) throw new TypeError('renderZeroclawConfig: host must be a non-empty host name or address');
  wholeNumber('port', o.port, 1, 65_535);
  // Lowercase only: upstream stores hash_token() output (lowercase) and compares strings, so an
  // uppercase hash passes its 64-hex check but can never match a bearer (pairing.rs is_token_hash).
  const tokens = [o.pairedTokenSha256, ...(o.probeTokenSha256 === undefined ? [] : [o.probeTokenSha256])];
  for (const t of tokens) if (typeof t !== 'string' || !SHA256_HEX.test(t)) throw new TypeError('renderZeroclawConfig: paired token hashes must be 64 lowercase hex characters (SHA-256)');
  const timeout = o.requestTimeoutS ?? 30;
  wholeNumber('requestTimeoutS', timeout, 1, 86_400);
  const rate = o.webhookRateLimitPerMinute ?? 0;
  wholeNumber('webhookRateLimitPerMinute', rate, 0, 1_000_000);

  const lines = [
    '# Written by the Agentic Tenancy shim before every start from the platform\'s settings: edits are lost.',
    '# The LLM key is not here: ZeroClaw reads it from ZEROCLAW_providers__models__custom__platform__api_key.',
    'schema_version = 3',
    '',
    '[gateway]',
    `host = ${tomlString(o.host)}`,
    `port = ${o.port}`,
    // Off, upstream only logs a warning for a public bind (lib.rs run_gateway); on, the intent is explicit.
    `allow_public_bind = ${!LOOPBACK_HOSTS.has(o.host)}`,
    'require_pairing = true',
    // Plain 64-hex values are taken as token hashes (pairing.rs PairingGuard::new); no pairing code is made.
    `paired_tokens = [${[...new Set(tokens)].map(tomlString).join(', ')}]`,
    `request_timeout_secs = ${timeout}`,
    // Upstream counts /webhook per client IP (60 a minute by default, then 429 for a minute). Every
    // request of a tenant comes from the forwarder, already authenticated and paced by the
    // platform, so the per-IP limit would only stall a busy tenant; 0 turns it off (lib.rs allow()).
    `webhook_rate_limit_per_minute = ${rate}`,
    '',
    // Pinned so brain.db stays where the state list says (<install>/data/memory/brain.db).
    '[memory]',
    'backend = "sqlite"',
    'auto_save = true',
  ];
  if (o.llm) {
    lines.push('', '[providers.models.custom.platform]', `uri = ${tomlString(providerUri(o.llm.baseUrl))}`, `model = ${tomlString(nonEmpty('llm.model', o.llm.model))}`,
      // Chat completions is the custom family's default; written so a change of default cannot move it.
      'wire_api = "chat_completions"');
  }
  lines.push('', `[agents.${ZEROCLAW_AGENT}]`);
  // With no model the gateway boots in needs_quickstart mode: every /webhook answers 503.
  if (o.llm) lines.push(`model_provider = ${tomlString(ZEROCLAW_PROVIDER)}`);
  lines.push('risk_profile = "default"', '', '[risk_profiles.default]', 'level = "supervised"', '');
  return lines.join('\n');
}

/**
 * AGENT_LLM_BASE_URL is an OpenAI-compatible base (…/v1, as the OpenAI SDKs take it). ZeroClaw's
 * custom provider posts to `<uri>/chat/completions`, or to `uri` itself when its path already ends
 * in /chat/completions (crates/zeroclaw-providers/src/compatible.rs chat_completions_url; trailing
 * slashes are trimmed by base_url()). So the base maps to `uri` unchanged, minus trailing slashes.
 */
export function providerUri(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError('renderZeroclawConfig: llm.baseUrl must be an absolute http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('renderZeroclawConfig: llm.baseUrl must be an absolute http(s) URL');
  if (url.search !== '' || url.hash !== '') throw new TypeError('renderZeroclawConfig: llm.baseUrl must have no query or fragment (ZeroClaw appends /chat/completions)');
  return baseUrl.replace(/\/+$/, '');
}

/**
 * The environment the profile adds for ZeroClaw (besides ZEROCLAW_CONFIG_DIR): the key as a v0.8
 * env override, `ZEROCLAW_` + the dotted config path with `.` → `__` (crates/zeroclaw-config/src/
 * env_overrides.rs). Overrides live in memory only, never written to config.toml. Any other
 * inherited name matching ZEROCLAW_OVERRIDE_NAME that is not a schema path aborts ZeroClaw's start.
 */
export function zeroclawEnv(o: { apiKey?: string }): Record<string, string> {
  if (o.apiKey === undefined || o.apiKey.trim() === '') return {};
  return { ZEROCLAW_providers__models__custom__platform__api_key: o.apiKey };
}

/** Names ZeroClaw reads as config overrides (lowercase tail); uppercase ones are its bootstrap names. */
export const ZEROCLAW_OVERRIDE_NAME = /^ZEROCLAW_[a-z0-9_]+$/;

/** Upstream's own hash of a bearer (pairing.rs hash_token): the value for paired_tokens. */
export function zeroclawTokenSha256(bearer: string): string {
  return createHash('sha256').update(bearer, 'utf8').digest('hex');
}

/** A fresh bearer for the shim's readiness probe, shaped like upstream's own tokens (zc_<64 hex>). */
export function newZeroclawProbeToken(): { token: string; sha256: string } {
  const token = `zc_${randomBytes(32).toString('hex')}`;
  return { token, sha256: zeroclawTokenSha256(token) };
}

/**
 * Readiness = "can answer a message". GET /health is liveness only: it is public and 200 even with
 * no model (lib.rs handle_health). GET /api/status needs a paired bearer (api.rs require_auth, the
 * same PairingGuard as /webhook) and calls no LLM; its `model` is AppState.model, the very value
 * /webhook checks before answering 503 needs_quickstart (lib.rs needs_quickstart_for). So a 200
 * with a non-empty `model` proves: the listener serves, config.toml was read, the bearer hashes in
 * it are accepted, and a model is configured. It does not prove the LLM is reachable or the key
 * valid (that shows as 500 "LLM request failed" on /webhook). The bearer is the probe token.
 */
export const zeroclawReadinessProbe = {
  method: 'GET',
  path: '/api/status',
  headers: 'bearer',
  readyWhen(status: number, body: string): boolean {
    if (status !== 200) return false;
    try {
      const model = (JSON.parse(body) as { model?: unknown } | null)?.model;
      return typeof model === 'string' && model.trim() !== '';
    } catch {
      return false;
    }
  },
} as const satisfies { method: 'GET' | 'POST'; path: string; headers: 'bearer'; readyWhen: (status: number, body: string) => boolean };

export const ZEROCLAW_HEALTH_PATH = '/health';

/**
 * `daemon`, not `gateway`: bare `zeroclaw gateway` installs no signal handler, so SIGTERM kills it
 * mid-turn (src/main.rs run_gateway_if_enabled). `zeroclaw daemon` traps SIGTERM/SIGINT
 * (crates/zeroclaw-runtime/src/daemon/mod.rs wait_for_exit_signal), keeps serving for a fixed
 * 500 ms grace window (GRACE_WINDOW), then aborts what is left and exits 0: a turn still waiting
 * on the LLM after that half second is lost either way. It also adds cron and channels (none
 * configured here) and a local RPC socket at data/daemon.sock. Upstream's image runs `daemon` too.
 */
export const ZEROCLAW_COMMAND_ARGS = ['daemon'] as const;

export interface ZeroclawStatePath {
  /** Relative to the install dir (ZEROCLAW_CONFIG_DIR), POSIX separators. */
  path: string;
  kind: 'sqlite' | 'file' | 'dir';
}

/**
 * ZeroClaw's whole state, from upstream's backup list (docs/book/src/architecture/
 * runtime-state-and-persistence.md "Backup and restore"). Any of them may be absent (most stores
 * are made on first use). Not state: config.toml. The shim rewrites it before every start from
 * the platform's settings (gateway, bearer hashes, provider) and env overrides are never written
 * into it; what ZeroClaw itself writes there (tokens from POST /pair, dashboard edits) the platform
 * does not use, and restoring it would only bring back a previous pod's bearer hashes.
 */
export const ZEROCLAW_STATE_PATHS: readonly ZeroclawStatePath[] = [
  // Memory (crates/zeroclaw-memory/src/sqlite.rs: WAL, synchronous=NORMAL); audit.db when enabled.
  { path: 'data/memory/brain.db', kind: 'sqlite' },
  { path: 'data/memory/audit.db', kind: 'sqlite' },
  // Chat sessions and ACP sessions (crates/zeroclaw-infra/src/session_sqlite.rs, WAL).
  { path: 'data/sessions/sessions.db', kind: 'sqlite' },
  { path: 'data/sessions/acp-sessions.db', kind: 'sqlite' },
  { path: 'data/cron/jobs.db', kind: 'sqlite' },
  { path: 'data/sop/runs.db', kind: 'sqlite' },
  { path: 'data/control_plane.db', kind: 'sqlite' },
  // Paired-device metadata (crates/zeroclaw-gateway/src/api_pairing.rs, WAL).
  { path: 'data/devices.db', kind: 'sqlite' },
  // Key of every enc2: secret ZeroClaw stores (crates/zeroclaw-config/src/secrets.rs).
  { path: '.secret_key', kind: 'file' },
  // costs.jsonl, memory hygiene state (crates/zeroclaw-memory/src/hygiene.rs).
  { path: 'data/state', kind: 'dir' },
  // Per-agent workspace: IDENTITY.md, SOUL.md, USER.md, MEMORY.md, the agent's own files (schema.rs agent_workspace_dir).
  { path: 'agents', kind: 'dir' },
  // Skill bundles shared by the agents (schema.rs load_or_init creates <install>/shared).
  { path: 'shared', kind: 'dir' },
];

/**
 * Regenerable or unarchivable paths, never checkpointed (for a shim that walks the install dir;
 * SQLite -wal/-shm sidecars are never copied raw: the databases go through the backup API).
 */
export const ZEROCLAW_CACHE_EXCLUDES: readonly string[] = [
  'data/daemon.sock', // the daemon's RPC socket (crates/zeroclaw-runtime/src/rpc/local.rs socket_path)
  'data/state/runtime-trace.jsonl', // rolling log (runtime-state doc: "logs are evidence, not state")
  'data/memory/response_cache.db', // LLM response cache (crates/zeroclaw-memory/src/response_cache.rs)
  'data/pricing.json', // model price catalogue (crates/zeroclaw-runtime/src/agent/pricing_catalog.rs)
  'data/ftl', // downloaded locale catalogues (schema.rs ftl_locale_dir)
  'state', // daemon_state.json, the daemon's status snapshot (daemon/mod.rs state_file_path)
];

function wholeNumber(name: string, n: number, min: number, max: number): void {
  if (!Number.isInteger(n) || n < min || n > max) throw new TypeError(`renderZeroclawConfig: ${name} must be a whole number from ${min} to ${max}`);
}

function nonEmpty(name: string, s: string): string {
  if (typeof s !== 'string' || s.trim() === '') throw new TypeError(`renderZeroclawConfig: ${name} must be a non-empty string`);
  return s;
}

/** A TOML basic string: quotes, backslashes and control characters escaped (TOML 1.0 §String). */
export function tomlString(s: string): string {
  // A lone surrogate has no TOML escape (\uD800-\uDFFF are not Unicode scalar values).
  if (/[\uD800-\uDFFF]/u.test(s)) throw new TypeError('renderZeroclawConfig: strings must be well-formed Unicode');
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}
