/**
 * A stand-in for the `zeroclaw` binary (v0.8, upstream zeroclaw-labs/zeroclaw at 15d2866, tag
 * v0.8.4) where the platform depends on it, because ZeroClaw cannot be built here. Run as
 * `zeroclaw [--config-dir D] daemon|gateway [start] [-p N] [--host H]` through zeroclaw-bin.ts.
 * Each behaviour and its source (paths in that repository):
 *   install dir, config, env overrides   zeroclaw-emulator-config.ts (schema.rs, env_overrides.rs, main.rs)
 *   brain.db and the other stores        zeroclaw-emulator-stores.ts
 *   rate limits, idempotency, pairing    zeroclaw-emulator-guards.ts
 *   64 KiB body limit before anything (413 "length limit exceeded"), 408 with an empty body after
 *     request_timeout_secs, security headers: crates/zeroclaw-gateway/src/lib.rs run_gateway
 *     (RequestBodyLimitLayer, TimeoutLayer::with_status_code), security_headers.rs
 *   POST /webhook, its order (rate limit → auth limiter → bearer → JSON → ?agent → idempotency →
 *     autosave → chat) and every body: lib.rs handle_webhook, run_gateway_chat_with_tools,
 *     needs_quickstart_for; the turn (system prompt + "[Memory context]" + "[<time>] <message>"):
 *     crates/zeroclaw-runtime/src/agent/loop_.rs process_message, agent/turn/mod.rs
 *   the provider call: crates/zeroclaw-providers/src/factory.rs (custom → OpenAI-compatible,
 *     Bearer key), compatible.rs chat_completions_url, reliable.rs (retries, backoff ×2, no retry on 4xx)
 *   GET /health, GET /pair/code, POST /pair: lib.rs handle_health, handle_pair_code, handle_pair
 *   GET /api/status (the readiness probe): crates/zeroclaw-gateway/src/api.rs handle_api_status, require_auth
 *   SIGTERM: `gateway` has no handler (src/main.rs run_gateway_if_enabled) and dies at once;
 *     `daemon` traps it (crates/zeroclaw-runtime/src/daemon/mod.rs wait_for_exit_signal), serves on
 *     for its 500 ms GRACE_WINDOW, then exits 0, dropping turns still in flight
 * Simplified: one agent turn is one LLM call (no tools); only `custom` providers with a uri are
 * reachable; paired tokens are written back as plain hashes (upstream encrypts them).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import {
  bootModel, defaultModel, loadConfig, parseCli, resolveInstall, runtimeAgentAlias, savePairedTokens, StartupError,
  type EmulatorConfig, type ProviderEntry,
} from './zeroclaw-emulator-config.js';
import { AuthLimiter, clientKey, hashToken, IdempotencyStore, PairingGuard, RATE_WINDOW_S, SlidingWindow } from './zeroclaw-emulator-guards.js';
import { BrainDb, renderMemoryContext, SideStores, skipAutosave, systemPrompt } from './zeroclaw-emulator-stores.js';

const MAX_BODY = 65_536;
const GRACE_MS = 500;
const VERSION = '0.8.4';
const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin', 'cross-origin-resource-policy': 'same-origin',
};
const UNAUTHORIZED = 'Unauthorized — pair first via POST /pair, then send Authorization: Bearer <token>';

class NeedsQuickstart extends Error {}

interface Gateway {
  cfg: EmulatorConfig;
  installDir: string;
  model: string;
  pairing: PairingGuard;
  webhookLimit: SlidingWindow;
  pairLimit: SlidingWindow;
  auth: AuthLimiter;
  idempotency: IdempotencyStore;
  brain: BrainDb | undefined;
  stores: SideStores;
  startedAt: number;
  port: number;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendText(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { ...(text ? { 'content-type': 'text/plain; charset=utf-8' } : {}), 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The body up to the limit; a larger one (sent without Content-Length) is drained and flagged. */
async function readBody(req: IncomingMessage): Promise<{ body: Buffer; tooLarge: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= MAX_BODY) chunks.push(chunk);
  }
  return { body: Buffer.concat(chunks), tooLarge: size > MAX_BODY };
}

const header = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

async function serve(gw: Gateway, req: IncomingMessage, res: ServerResponse): Promise<void> {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
  // TimeoutLayer drops the whole request future (the LLM call with it) and answers 408, empty.
  const abort = new AbortController();
  const timer = setTimeout(() => {
    abort.abort();
    sendText(res, 408, '');
  }, gw.cfg.gateway.requestTimeoutS * 1000);
  res.once('finish', () => clearTimeout(timer));
  const length = header(req, 'content-length');
  if (length !== undefined && Number(length) > MAX_BODY) {
    req.resume();
    return sendText(res, 413, 'length limit exceeded');
  }
  const url = new URL(req.url ?? '/', 'http://gateway');
  const route = `${req.method ?? 'GET'} ${url.pathname}`;
  const client = clientKey(req.socket.remoteAddress, req.headers, gw.cfg.gateway.trustForwardedHeaders);
  switch (route) {
    case 'GET /health':
      req.resume();
      return send(res, 200, {
        status: 'ok', paired: gw.pairing.paired, require_pairing: gw.pairing.requirePairing,
        runtime: { pid: process.pid, updated_at: new Date().toISOString(), uptime_seconds: Math.floor((Date.now() - gw.startedAt) / 1000), components: { gateway: { status: 'ok' } } },
      });
    case 'GET /pair/code':
      req.resume();
      return send(res, 200, { success: true, pairing_required: gw.pairing.requirePairing, pairing_code: gw.pairing.paired ? null : gw.pairing.pairingCode ?? null });
    case 'POST /pair':
      req.resume();
      return pair(gw, req, res, client);
    case 'GET /api/status':
      req.resume();
      if (!authorized(gw, req)) return send(res, 401, { error: UNAUTHORIZED });
      return send(res, 200, {
        version: VERSION, model_provider: gw.cfg.providers[0] ? `${gw.cfg.providers[0].family}.${gw.cfg.providers[0].alias}` : null,
        model: gw.model, uptime_seconds: Math.floor((Date.now() - gw.startedAt) / 1000), gateway_port: gw.cfg.gateway.port,
        memory_backend: gw.brain ? 'sqlite' : 'none', paired: gw.pairing.paired, channels: {}, agent_alias: url.searchParams.get('agent'),
      });
    case 'POST /webhook':
      return webhook(gw, req, res, client, url, abort.signal);
    default:
      req.resume();
      return ['/health', '/pair', '/pair/code', '/webhook', '/api/status'].includes(url.pathname) ? sendText(res, 405, '') : sendText(res, 404, '');
  }
}

function bearer(req: IncomingMessage): string {
  const auth = header(req, 'authorization') ?? '';
  return auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : '';
}

/** api.rs require_auth: an empty bearer is refused even before the hash lookup. */
const authorized = (gw: Gateway, req: IncomingMessage): boolean => !gw.pairing.requirePairing || (bearer(req) !== '' && gw.pairing.isAuthenticated(bearer(req)));

function pair(gw: Gateway, req: IncomingMessage, res: ServerResponse, client: string): void {
  if (!gw.pairLimit.allow(client)) return send(res, 429, { error: 'Too many pairing requests. Please retry later.', retry_after: RATE_WINDOW_S });
  const locked = gw.auth.check(client);
  if (locked !== undefined) return send(res, 429, { error: `Too many auth attempts. Try again in ${locked}s.`, retry_after: locked });
  const result = gw.pairing.tryPair(header(req, 'x-pairing-code') ?? '', client);
  if (result.lockoutS !== undefined) return send(res, 429, { error: `Too many failed attempts. Try again in ${result.lockoutS}s.`, retry_after: result.lockoutS });
  if (result.token === undefined) {
    gw.auth.record(client);
    return send(res, 403, { error: 'Invalid pairing code' });
  }
  const hash = hashToken(result.token);
  try {
    gw.stores.registerDevice(hash, client);
    savePairedTokens(gw.installDir, gw.pairing.hashes());
  } catch (e) {
    gw.pairing.revoke(hash);
    return send(res, 500, { paired: false, persisted: false, error: `Token persistence error: ${(e as Error).message}`, message: 'Pairing failed; the in-process token was not retained.' });
  }
  send(res, 200, { paired: true, persisted: true, token: result.token, message: 'Save this token — use it as Authorization: Bearer <token>' });
}

/** lib.rs webhook_session_id: 1-128 chars of [A-Za-z0-9._-], else no session. */
function sessionId(req: IncomingMessage): string | undefined {
  const v = header(req, 'x-session-id')?.trim();
  return v && v.length <= 128 && /^[A-Za-z0-9._-]+$/.test(v) ? v : undefined;
}

async function webhook(gw: Gateway, req: IncomingMessage, res: ServerResponse, client: string, url: URL, signal: AbortSignal): Promise<void> {
  // axum runs the body extractor before the handler, so the body is read first and judged later.
  const { body, tooLarge } = await readBody(req);
  if (!gw.webhookLimit.allow(client)) {
    console.error('WARN /webhook rate limit exceeded');
    return send(res, 429, { error: 'Too many webhook requests. Please retry later.', retry_after: RATE_WINDOW_S });
  }
  if (gw.pairing.requirePairing) {
    const locked = gw.auth.check(client);
    if (locked !== undefined) return send(res, 429, { error: `Too many auth attempts. Try again in ${locked}s.`, retry_after: locked });
    if (!gw.pairing.isAuthenticated(bearer(req))) {
      gw.auth.record(client);
      console.error('WARN webhook: rejected — not paired / invalid bearer token');
      return send(res, 401, { error: UNAUTHORIZED });
    }
  }
  const message = parseWebhookBody(header(req, 'content-type'), body, tooLarge);
  if (message === undefined) return send(res, 400, { error: 'Invalid JSON body. Expected: {"message": "..."}' });
  const agentOverride = (url.searchParams.get('agent') ?? url.searchParams.get('agentAlias') ?? url.searchParams.get('agent_alias'))?.trim() || undefined;
  if (agentOverride !== undefined && !gw.cfg.agents.has(agentOverride)) {
    return send(res, 400, { error: `Unknown agent \`${agentOverride}\` — no [agents.${agentOverride}] entry configured.` });
  }
  const key = header(req, 'x-idempotency-key')?.trim();
  // Recorded before the turn and never released: a retry after a 408, 500 or 503 is a duplicate too.
  if (key && !gw.idempotency.recordIfNew(key)) {
    console.error(`INFO webhook duplicate ignored ${JSON.stringify(key)}`);
    return send(res, 200, { status: 'duplicate', idempotent: true, message: 'Request already processed for this idempotency key' });
  }
  const session = sessionId(req);
  if (gw.cfg.autoSave && gw.brain && !skipAutosave(message)) gw.brain.store(`webhook_msg_${randomUUID()}`, message, 'conversation', session);
  try {
    const response = await chat(gw, message, session, agentOverride, signal);
    send(res, 200, { response, model: modelLabel(gw, agentOverride) });
  } catch (e) {
    if (signal.aborted) return;
    if (e instanceof NeedsQuickstart) {
      console.error('WARN Webhook chat refused: gateway has no model configured; visit /quickstart');
      return send(res, 503, { error: 'needs_quickstart', url: '/quickstart' });
    }
    console.error(`ERROR webhook model_provider error: ${(e as Error).message}`);
    send(res, 500, { error: 'LLM request failed' });
  }
}

/** axum Json<WebhookBody>: an application/json (or +json) body that is an object with a string `message`. */
function parseWebhookBody(contentType: string | undefined, body: Buffer, tooLarge: boolean): string | undefined {
  const mime = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (tooLarge || !(mime === 'application/json' || (mime.startsWith('application/') && mime.endsWith('+json')))) return undefined;
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    const m = (parsed as { message?: unknown } | null)?.message;
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) && typeof m === 'string' ? m : undefined;
  } catch {
    return undefined;
  }
}

function modelLabel(gw: Gateway, agentOverride: string | undefined): string {
  const alias = agentOverride ?? runtimeAgentAlias(gw.cfg);
  const provider = alias ? findProvider(gw.cfg, gw.cfg.agents.get(alias)?.modelProvider ?? '') : undefined;
  return provider?.model?.trim() || defaultModel(gw.cfg) || '<unresolved>';
}

function findProvider(cfg: EmulatorConfig, ref: string): ProviderEntry | undefined {
  const [family, alias] = ref.split('.', 2);
  return cfg.providers.find((p) => p.family === family && p.alias === alias);
}

async function chat(gw: Gateway, message: string, session: string | undefined, agentOverride: string | undefined, signal: AbortSignal): Promise<string> {
  if (gw.model.trim() === '') throw new NeedsQuickstart();
  const alias = agentOverride ?? runtimeAgentAlias(gw.cfg);
  if (alias === undefined) throw new Error('webhook chat requires at least one configured [agents.<alias>] entry');
  const agent = gw.cfg.agents.get(alias);
  if (!agent?.riskProfile || !gw.cfg.riskProfiles.has(agent.riskProfile)) throw new Error(`agents.${alias}.risk_profile does not name a configured risk_profiles entry`);
  const provider = findProvider(gw.cfg, agent.modelProvider);
  if (!provider) throw new Error(`agents.${alias}.model_provider does not resolve to a configured provider`);
  const model = provider.model?.trim();
  if (!model) throw new Error(`agents.${alias}.model_provider resolves to an entry with no model`);
  const context = gw.brain ? renderMemoryContext(gw.brain.recall(alias, message, session), session !== undefined) : '';
  const user = `${context}[${localTime()}] ${message}`;
  const answer = await callProvider(gw.cfg, provider, model, systemPrompt(gw.installDir, alias, model), user, signal);
  gw.stores.recordCost(model, answer.usage, alias);
  return answer.text;
}

/** chrono's "%Y-%m-%d %H:%M:%S %Z" for Local (the offset, as chrono has no zone names). */
function localTime(d = new Date()): string {
  const p = (n: number): string => String(Math.abs(n)).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${off < 0 ? '-' : '+'}${p(Math.trunc(off / 60))}:${p(off % 60)}`;
}

interface Answer {
  text: string;
  usage?: { prompt_tokens?: number; completion_tokens?: number };
}

async function callProvider(cfg: EmulatorConfig, p: ProviderEntry, model: string, system: string, user: string, signal: AbortSignal): Promise<Answer> {
  if (p.family !== 'custom' || !p.uri) throw new Error(`the emulator reaches only custom providers with a uri, not ${p.family}.${p.alias}`);
  const base = p.uri.replace(/\/+$/, '');
  const url = new URL(base).pathname.replace(/\/+$/, '').endsWith('/chat/completions') ? base : `${base}/chat/completions`;
  const body = JSON.stringify({
    model, messages: [{ role: 'system', content: system }, { role: 'user', content: user }],
    ...(p.temperature === undefined ? {} : { temperature: p.temperature }), stream: false,
  });
  let backoff = cfg.providerBackoffMs;
  for (let attempt = 0; ; attempt++) {
    let retryable = true;
    let failure: string;
    try {
      const res = await fetch(url, { method: 'POST', body, signal, headers: { 'content-type': 'application/json', ...(p.apiKey ? { authorization: `Bearer ${p.apiKey}` } : {}) } });
      const text = await res.text();
      if (res.ok) {
        const json = JSON.parse(text) as { choices?: Array<{ message?: { content?: unknown } }>; usage?: Answer['usage'] };
        const content = json.choices?.[0]?.message?.content;
        if (typeof content !== 'string') throw new Error('no message content in the provider answer');
        return { text: content, ...(json.usage ? { usage: json.usage } : {}) };
      }
      retryable = res.status >= 500 || res.status === 429 || res.status === 408;
      failure = `HTTP ${res.status}`;
    } catch (e) {
      if (signal.aborted) throw e;
      failure = (e as Error).message;
    }
    if (!retryable || attempt >= cfg.providerRetries) throw new Error(`custom.${p.alias}: ${failure}`);
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 10_000);
  }
}

function listen(gw: Gateway, host: string, port: number): Promise<number> {
  const server = createServer((req, res) => {
    serve(gw, req, res).catch((e: unknown) => {
      console.error(`ERROR request failed: ${(e as Error).message}`);
      send(res, 500, { error: 'internal error' });
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function banner(gw: Gateway, host: string): void {
  const lines = [`🦀 ZeroClaw Gateway listening on http://${host}:${gw.port}`];
  const code = gw.pairing.pairingCode;
  if (gw.pairing.requirePairing && code) {
    lines.push('', '  🔐 PAIRING REQUIRED — use this one-time code:', '     ┌──────────────┐', `     │  ${code}  │`, '     └──────────────┘', `     Send: POST /pair with header X-Pairing-Code: ${code}`, '');
  } else if (!gw.pairing.requirePairing) lines.push('', '  ⚠️  Pairing: DISABLED (all requests accepted)', '');
  lines.push('  POST /pair      — pair a new client (X-Pairing-Code header)', '  POST /webhook   — {"message": "your prompt"}', '  GET  /health    — health check', '  Press Ctrl+C to stop.', '');
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main(): Promise<void> {
  const cli = parseCli(process.argv.slice(2), process.env);
  const install = resolveInstall(process.env);
  const cfg = loadConfig(install.dir, process.env);
  const daemon = cli.command === 'daemon';
  const host = cli.host ?? cfg.gateway.host;
  const port = cli.port ?? cfg.gateway.port;
  console.error(`INFO Config loaded path=${path.join(install.dir, 'config.toml')} workspace=${path.join(install.dir, 'data')} source=${install.source}`);
  if (cfg.diskVersion !== 3) console.error(`WARN Config is schema_version ${cfg.diskVersion}; auto-migrated to 3 in memory.`);
  const gw: Gateway = {
    cfg, installDir: install.dir, model: bootModel(cfg), port,
    pairing: new PairingGuard(cfg.gateway.requirePairing, cfg.gateway.pairedTokens),
    webhookLimit: new SlidingWindow(cfg.gateway.webhookRateLimit, cfg.gateway.rateLimitMaxKeys),
    pairLimit: new SlidingWindow(cfg.gateway.pairRateLimit, cfg.gateway.rateLimitMaxKeys),
    auth: new AuthLimiter(),
    idempotency: new IdempotencyStore(cfg.gateway.idempotencyTtlS, cfg.gateway.idempotencyMaxKeys),
    // With no [agents.*] the gateway runs on NoneMemory: no brain.db (lib.rs run_gateway).
    brain: cfg.agents.size > 0 && cfg.memoryBackend.split('.')[0] === 'sqlite' ? new BrainDb(path.join(install.dir, 'data')) : undefined,
    stores: new SideStores(install.dir, daemon),
    startedAt: Date.now(),
  };
  if (gw.model === '') console.error(`WARN Gateway booting without a configured model. Chat endpoints will return 503 needs_quickstart until at least one [providers.models.<type>.<alias>] model = "..." is set.`);
  if (daemon) {
    console.error(`INFO 🧠 Starting ZeroClaw Daemon on host=${host} port=${port}`);
    let stopping = false;
    const stop = (signal: string): void => {
      // Later signals change nothing: tokio keeps its handler installed, so they are swallowed.
      if (stopping) return;
      stopping = true;
      console.error(`INFO Received ${signal}, shutting down...`);
      setTimeout(() => {
        gw.brain?.close();
        gw.stores.close();
        process.exit(0);
      }, GRACE_MS);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => console.error('INFO Received SIGHUP, ignoring (daemon stays running)'));
  }
  // Under the daemon a failed bind is a component failure, retried with backoff; the bare gateway exits.
  for (let backoffS = 2; ; backoffS = Math.min(backoffS * 2, 60)) {
    try {
      gw.port = await listen(gw, host, port);
      break;
    } catch (e) {
      if (!daemon) throw new StartupError(`failed to bind ${host}:${port}: ${(e as Error).message}`);
      console.error(`ERROR Daemon component 'gateway' failed: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, backoffS * 1000));
    }
  }
  banner(gw, host);
}

main().catch((e: unknown) => {
  console.error(`Error: ${e instanceof StartupError ? e.message : (e as Error).stack ?? String(e)}`);
  process.exit(1);
});
