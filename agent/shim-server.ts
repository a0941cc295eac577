/**
 * The shim's HTTP surface (probes, warm-pool claim, operator/waker controls). Routing, bearer
 * checks and body parsing only; what each endpoint does lives in the Shim behind ShimHandlers.
 *
 *   GET  /healthz      200 while the process lives, with the lifecycle phase
 *   GET  /readyz       200 once the agent answered its health check and the shim is not stopping
 *   POST /claim        warm pods only; Bearer WARM_POOL_SECRET; 200 once the agent is ready
 *   POST /checkpoint   Bearer (when a secret is set); { uploaded, bytes, sha256 }
 *   POST /state-urls   Bearer (when a secret is set); replaces the presigned URLs
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { ZtmError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { CheckpointResult } from './checkpoint.js';
import { parseClaim, parseStateUrls, type TenantBinding } from './shim-config.js';

export type Phase = 'warm' | 'restoring' | 'starting' | 'ready' | 'stopping';

export interface ShimHandlers {
  readonly warm: boolean;
  /** When set, every control endpoint needs `Authorization: Bearer <secret>`. */
  readonly secret: string | undefined;
  phase(): Phase;
  /** A tenant is bound (cold start, or claimed): a second claim is a conflict. */
  hasTenant(): boolean;
  /** Binds synchronously, then resolves once the agent is ready; rejects if the start failed. */
  claim(binding: TenantBinding): Promise<void>;
  /** Forces a checkpoint; undefined while no tenant state exists yet (warm, or restoring). */
  checkpoint(): Promise<CheckpointResult | undefined>;
  /** False while no tenant is bound. */
  setStateUrls(urls: { getUrl: string | undefined; putUrl: string | undefined }): boolean;
}

const MAX_BODY = 1024 * 1024;

type Reply = { status: number; body: unknown };

/** Constant-time comparison of the presented bearer token (hashes equalise the lengths). */
export function bearerMatches(header: string | undefined, secret: string): boolean {
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  const given = createHash('sha256').update(m?.[1] ?? '').digest();
  const want = createHash('sha256').update(secret).digest();
  return timingSafeEqual(given, want) && m !== null;
}

async function readJson(req: http.IncomingMessage): Promise<{ ok: true; value: unknown } | { ok: false; reply: Reply }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) {
      req.destroy();
      return { ok: false, reply: { status: 413, body: { error: `body larger than ${MAX_BODY} bytes` } } };
    }
    chunks.push(chunk);
  }
  try {
    return { ok: true, value: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
  } catch {
    return { ok: false, reply: { status: 400, body: { error: 'body is not JSON' } } };
  }
}

function errorReply(err: unknown, fallback: number): Reply {
  const code = err instanceof ZtmError ? err.code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  return { status: code === 'E_VALIDATION' ? 400 : fallback, body: { error: message, code } };
}

async function route(req: http.IncomingMessage, h: ShimHandlers, log: Logger): Promise<Reply> {
  const url = (req.url ?? '/').split('?', 1)[0];
  const method = req.method ?? 'GET';
  if (url === '/healthz' && (method === 'GET' || method === 'HEAD')) return { status: 200, body: { status: 'ok', phase: h.phase() } };
  if (url === '/readyz' && (method === 'GET' || method === 'HEAD')) {
    const ready = h.phase() === 'ready';
    return { status: ready ? 200 : 503, body: { ready, phase: h.phase() } };
  }
  const controls = ['/claim', '/checkpoint', '/state-urls'];
  if (!controls.includes(url ?? '') || (url === '/claim' && !h.warm)) return { status: 404, body: { error: 'not found' } };
  if (method !== 'POST') return { status: 405, body: { error: 'method not allowed' } };
  if (h.secret !== undefined && !bearerMatches(req.headers.authorization, h.secret)) {
    log.warn({ path: url }, 'control request rejected: bad or missing bearer token');
    return { status: 401, body: { error: 'unauthorized' } };
  }

  if (url === '/claim') {
    if (h.hasTenant()) return { status: 409, body: { error: 'already claimed' } };
    const body = await readJson(req);
    if (!body.ok) return body.reply;
    let binding: TenantBinding;
    try {
      binding = parseClaim(body.value);
    } catch (err) {
      return errorReply(err, 400);
    }
    // Checked again after the body arrived: of two concurrent claims exactly one binds.
    if (h.hasTenant()) return { status: 409, body: { error: 'already claimed' } };
    if (h.phase() === 'stopping') return { status: 503, body: { error: 'shim is stopping' } };
    try {
      await h.claim(binding);
      return { status: 200, body: { status: 'ready', tenant_id: binding.tenantId } };
    } catch (err) {
      return errorReply(err, h.phase() === 'stopping' ? 503 : 500);
    }
  }

  if (url === '/checkpoint') {
    await readJson(req).catch(() => undefined); // body ignored; drained so keep-alive works
    try {
      const result = await h.checkpoint();
      if (result === undefined) return { status: 409, body: { error: 'no tenant state yet' } };
      return { status: 200, body: result };
    } catch (err) {
      return errorReply(err, 502);
    }
  }

  // /state-urls
  const body = await readJson(req);
  if (!body.ok) return body.reply;
  try {
    const urls = parseStateUrls(body.value);
    if (!h.setStateUrls(urls)) return { status: 409, body: { error: 'no tenant bound yet' } };
    return { status: 200, body: { ok: true } };
  } catch (err) {
    return errorReply(err, 400);
  }
}

export function createShimServer(handlers: ShimHandlers, log: Logger): http.Server {
  return http.createServer((req, res) => {
    route(req, handlers, log).then(
      (reply) => send(res, reply),
      (err: unknown) => {
        log.error({ err }, 'shim request failed');
        send(res, { status: 500, body: { error: 'internal error' } });
      },
    );
  });
}

function send(res: http.ServerResponse, reply: Reply): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
