/**
 * Talks to tenants' agents over HTTP with one undici Pool per endpoint (kept alive, closed when idle),
 * in either protocol of the brief, and classifies every answer by what it means (ZeroClaw's gateway,
 * OpenClaw's webhook listener; docs/architecture.md "Failures") for the drainer.
 */
import { Pool, errors as undiciErrors } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import type { AgentProtocol } from '../../lib/config.js';
import type { TypingNotifier } from './typing-notifier.js';
import { AGENT_REFUSAL_REASONS, MAX_AGENT_RETRY_AFTER_S, STALE_ENDPOINT_REASONS, idempotencyKey, type AgentErrorCode } from '../../lib/delivery/outcomes.js';

export type DeliveryOutcome =
  /** 2xx. `response`: the zeroclaw answer (undefined: none; the telegram protocol never has one). */
  | { kind: 'answered'; response: string | undefined; status: number }
  /** ZeroClaw saw this X-Idempotency-Key before: 200 `{"status":"duplicate"}` with no response. */
  | { kind: 'duplicate'; status: number }
  /** Connection refused/reset or timeout before an answer: the endpoint is stale. */
  | { kind: 'unreachable'; reason: string }
  /**
   * 5xx, 408, 429: retry with backoff, not before `retryAfterMs`. `turnEnded`: the agent recorded
   * the idempotency key and ended that turn without an answer (zeroclaw 5xx/408), so the next try
   * must present a new key (outcomes.ts idempotencyKey).
   */
  | { kind: 'retry'; status: number; error: AgentErrorCode; reason: string; retryAfterMs?: number; turnEnded: boolean }
  /** Nothing but an operator can fix it (413, needs_quickstart): a dead letter at once. */
  | { kind: 'refused'; status: number; error: AgentErrorCode; reason: string }
  /** Any other 4xx: the agent refused this update; not retried. */
  | { kind: 'rejected'; status: number; reason: string }
  /**
   * The agent at this endpoint refused the tenant's own credential (401): it is not this tenant's
   * agent (a pod IP reused by another tenant's pod, a stale endpoint) or not this incarnation's.
   * The drainer drops the endpoint (if unchanged) and asks for a wake, bounded per update.
   */
  | { kind: 'stale-endpoint'; status: number; reason: string };

export interface AgentClientOptions {
  protocol: AgentProtocol;
  timeoutMs: number;
  /** Connections per endpoint: a tenant's concurrent chats share them. */
  connectionsPerEndpoint?: number;
  idlePoolMs?: number;
  /**
   * zeroclaw: "typing…" in the chat while the agent works on its answer (a request with a
   * chatId), from ~1 s on, until the answer or the timeout.
   */
  typing?: TypingNotifier | undefined;
}

export interface DeliverRequest {
  address: string;
  tenantId: string;
  /** The chat the update came from (the "typing…" while the agent answers). */
  chatId?: string;
  updateId: number;
  /** Turns of this update the agent ended in an error so far (picks the idempotency key). */
  failedTurns?: number;
  /** zeroclaw: the text to forward and the tenant's bearer (deriveAgentToken, per incarnation). */
  text?: string;
  bearer?: string;
  /** telegram: the raw Update and the tenant's webhook secret. */
  raw?: string;
  secret?: string;
}

const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export class AgentClient {
  private readonly pools = new Map<string, { pool: Pool; lastUsed: number }>();
  private readonly options: Required<Omit<AgentClientOptions, 'typing'>>;
  private readonly typing: TypingNotifier | undefined;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: AgentClientOptions) {
    if (options.protocol !== 'zeroclaw' && options.protocol !== 'telegram') throw new TypeError('AgentClient: protocol must be zeroclaw or telegram');
    if (!Number.isInteger(options.timeoutMs) || options.timeoutMs < 1) throw new TypeError('AgentClient: timeoutMs must be a positive integer');
    const { typing, ...rest } = options;
    this.options = { connectionsPerEndpoint: 8, idlePoolMs: 60_000, ...rest };
    this.typing = typing;
    this.sweeper = setInterval(() => this.closeIdlePools(), 15_000);
    this.sweeper.unref();
  }

  private poolFor(address: string): Pool {
    let entry = this.pools.get(address);
    if (!entry) {
      entry = {
        pool: new Pool(`http://${address}`, {
          connections: this.options.connectionsPerEndpoint,
          headersTimeout: this.options.timeoutMs,
          bodyTimeout: this.options.timeoutMs,
          connectTimeout: Math.min(5000, this.options.timeoutMs),
          keepAliveTimeout: 30_000,
        }),
        lastUsed: Date.now(),
      };
      this.pools.set(address, entry);
    }
    entry.lastUsed = Date.now();
    return entry.pool;
  }

  /** Forgets a stale endpoint's connections. */
  drop(address: string): void {
    const entry = this.pools.get(address);
    if (!entry) return;
    this.pools.delete(address);
    void entry.pool.destroy().catch(() => undefined);
  }

  private closeIdlePools(): void {
    const cutoff = Date.now() - this.options.idlePoolMs;
    for (const [address, entry] of this.pools) if (entry.lastUsed < cutoff) this.drop(address);
  }

  async deliver(req: DeliverRequest): Promise<DeliveryOutcome> {
    // The telegram protocol's agent talks to Telegram itself (its own chat actions, if any).
    const typing = this.options.protocol === 'zeroclaw' && req.chatId !== undefined
      ? this.typing?.start(req.tenantId, req.chatId, { maxDurationMs: this.options.timeoutMs })
      : undefined;
    try {
      return await this.exchange(req);
    } finally {
      typing?.stop();
    }
  }

  private async exchange(req: DeliverRequest): Promise<DeliveryOutcome> {
    const zeroclaw = this.options.protocol === 'zeroclaw';
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-idempotency-key': idempotencyKey(req.tenantId, req.updateId, req.failedTurns) };
    if (zeroclaw && req.bearer) headers.authorization = `Bearer ${req.bearer}`;
    if (!zeroclaw && req.secret) headers['x-telegram-bot-api-secret-token'] = req.secret;
    let res;
    try {
      res = await this.poolFor(req.address).request({
        method: 'POST',
        path: zeroclaw ? '/webhook' : '/telegram-webhook',
        headers,
        body: zeroclaw ? JSON.stringify({ message: req.text ?? '' }) : (req.raw ?? ''),
      });
    } catch (err) {
      return { kind: 'unreachable', reason: describe(err) };
    }
    let body: string;
    try {
      body = await readCapped(res.body, MAX_RESPONSE_BYTES);
    } catch (err) {
      return { kind: 'unreachable', reason: `reading the answer: ${describe(err)}` };
    }
    return classify(res.statusCode, res.headers, body, this.options.protocol);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(pools.map((p) => p.pool.close()));
  }
}

/** What an agent's HTTP answer means (exported for the tests of each status). */
export function classify(status: number, headers: IncomingHttpHeaders, body: string, protocol: AgentProtocol): DeliveryOutcome {
  const zeroclaw = protocol === 'zeroclaw';
  const json = parseObject(body);
  if (status === 429) {
    const retryAfterMs = retryAfterOf(headers, json);
    const wait = retryAfterMs === undefined ? '' : `, retry after ${retryAfterMs / 1000}s`;
    // ZeroClaw checks its rate limit before it records the idempotency key: the same key is fine.
    return { kind: 'retry', status, error: 'rate_limited', reason: `agent rate limit (429)${wait}`, ...(retryAfterMs === undefined ? {} : { retryAfterMs }), turnEnded: false };
  }
  if (status === 408) return { kind: 'retry', status, error: 'timeout', reason: 'agent request timeout (408)', turnEnded: zeroclaw };
  if (status === 413) return { kind: 'refused', status, error: 'too_large', reason: AGENT_REFUSAL_REASONS.tooLarge };
  // Every delivery carries the tenant's own credential (per incarnation): a 401 means whoever
  // answers at this endpoint is not this tenant's agent, in either protocol.
  if (status === 401) {
    return { kind: 'stale-endpoint', status, reason: zeroclaw ? STALE_ENDPOINT_REASONS.bearer : STALE_ENDPOINT_REASONS.webhookSecret };
  }
  if (status === 503 && json?.error === 'needs_quickstart') {
    return { kind: 'refused', status, error: 'needs_quickstart', reason: AGENT_REFUSAL_REASONS.needsQuickstart };
  }
  if (status >= 500) return { kind: 'retry', status, error: 'server_error', reason: `agent answered ${status}`, turnEnded: zeroclaw };
  if (status >= 400) return { kind: 'rejected', status, reason: `agent answered ${status}: ${body.slice(0, 200)}` };
  // The telegram protocol's agent answers Telegram itself; its 200 (OpenClaw: empty, with
  // `x-openclaw-delivery-accepted: durable`) only says it took the update.
  if (!zeroclaw) return { kind: 'answered', response: undefined, status };
  if (!json) return { kind: 'retry', status, error: 'server_error', reason: 'agent answered with a body that is not a JSON object', turnEnded: true };
  if (typeof json.response === 'string') return { kind: 'answered', response: json.response, status };
  if (json.status === 'duplicate') return { kind: 'duplicate', status };
  return { kind: 'answered', response: undefined, status };
}

function parseObject(body: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(body);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A 429's wait: the larger of the body's `retry_after` (s) and `Retry-After` (s or HTTP date), capped. */
function retryAfterOf(headers: IncomingHttpHeaders, json: Record<string, unknown> | undefined): number | undefined {
  const waits: number[] = [];
  const fromBody = json?.retry_after;
  if (typeof fromBody === 'number' && Number.isFinite(fromBody) && fromBody >= 0) waits.push(fromBody * 1000);
  const header = headers['retry-after'];
  const value = Array.isArray(header) ? header[0] : header;
  if (value !== undefined) {
    if (/^\s*\d+\s*$/.test(value)) waits.push(Number(value) * 1000);
    else if (Number.isFinite(Date.parse(value))) waits.push(Math.max(0, Date.parse(value) - Date.now()));
  }
  if (!waits.length) return undefined;
  return Math.min(MAX_AGENT_RETRY_AFTER_S * 1000, Math.round(Math.max(...waits)));
}

async function readCapped(body: AsyncIterable<Buffer> & { destroy?: () => void }, cap: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > cap) {
      body.destroy?.();
      throw new Error(`answer larger than ${cap} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describe(err: unknown): string {
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) return 'timed out waiting for the agent';
  const e = err as { code?: string; message?: string };
  return e.code ? `${e.code}` : (e.message ?? String(err)).slice(0, 200);
}
