/**
 * Talks to tenants' agents over HTTP with one undici Pool per endpoint (kept alive, closed when idle),
 * in either protocol of the brief, and classifies every outcome for the drainer.
 */
import { Pool, errors as undiciErrors } from 'undici';
import type { AgentProtocol } from '../../lib/config.js';

export type DeliveryOutcome =
  | { kind: 'answered'; response: string | undefined; status: number }
  /** Connection refused/reset or timeout before an answer: the endpoint is stale. */
  | { kind: 'unreachable'; reason: string }
  /** 5xx: retry with backoff. */
  | { kind: 'server-error'; status: number; reason: string }
  /** 4xx: the agent refused this update; do not retry. */
  | { kind: 'rejected'; status: number; reason: string };

export interface AgentClientOptions {
  protocol: AgentProtocol;
  timeoutMs: number;
  /** Connections per endpoint: a tenant's concurrent chats share them. */
  connectionsPerEndpoint?: number;
  idlePoolMs?: number;
}

export interface DeliverRequest {
  address: string;
  tenantId: string;
  updateId: number;
  /** zeroclaw: the text to forward. */
  text?: string;
  /** telegram: the raw Update and the tenant's webhook secret. */
  raw?: string;
  secret?: string;
}

const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export class AgentClient {
  private readonly pools = new Map<string, { pool: Pool; lastUsed: number }>();
  private readonly options: Required<AgentClientOptions>;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: AgentClientOptions) {
    if (options.protocol !== 'zeroclaw' && options.protocol !== 'telegram') throw new TypeError('AgentClient: protocol must be zeroclaw or telegram');
    if (!Number.isInteger(options.timeoutMs) || options.timeoutMs < 1) throw new TypeError('AgentClient: timeoutMs must be a positive integer');
    this.options = { connectionsPerEndpoint: 8, idlePoolMs: 60_000, ...options };
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
    const zeroclaw = this.options.protocol === 'zeroclaw';
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-idempotency-key': `${req.tenantId}:${req.updateId}` };
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
    if (res.statusCode >= 500) return { kind: 'server-error', status: res.statusCode, reason: `agent answered ${res.statusCode}` };
    if (res.statusCode >= 400) return { kind: 'rejected', status: res.statusCode, reason: `agent answered ${res.statusCode}: ${body.slice(0, 200)}` };
    if (!zeroclaw) return { kind: 'answered', response: undefined, status: res.statusCode };
    let response: string | undefined;
    try {
      const parsed = JSON.parse(body) as { response?: unknown };
      if (typeof parsed.response === 'string') response = parsed.response;
    } catch {
      return { kind: 'server-error', status: res.statusCode, reason: 'agent answered with a body that is not JSON' };
    }
    return { kind: 'answered', response, status: res.statusCode };
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(pools.map((p) => p.pool.close()));
  }
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
