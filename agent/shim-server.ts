/**
 * The shim's HTTP surface (probes, warm-pool claim, operator/waker controls). Routing, bearer
 * checks and body parsing only; what each endpoint does lives in the Shim behind ShimHandlers.
 *
 *   GET  /healthz      200 while the process lives, with the lifecycle phase
 *   GET  /readyz       200 once the agent passed its readiness probes and the shim is not stopping
 *   POST /claim        warm pods only; signed; 200 once the agent is ready
 *   POST /checkpoint   signed; { uploaded, bytes, sha256 }
 *   POST /state-urls   signed; replaces the presigned URLs
 *
 * "Signed": `x-shim-auth` made with this shim's own control secret, fresh and never seen before
 * (lib/runtime/shim-auth.ts). Without a configured secret the control routes refuse every call.
 */
import http from 'node:http';
import { ZtmError } from '../lib/errors.js';
import { readBoundedBody } from '../lib/util/bounded-body.js';
import { SHIM_AUTH_HEADER, ShimCallVerifier } from '../lib/runtime/shim-auth.js';
import type { Logger } from '../lib/logger.js';
import type { CheckpointResult } from './checkpoint.js';
import { parseClaim, parseStateUrls, type TenantBinding } from './shim-config.js';

export type Phase = 'warm' | 'restoring' | 'starting' | 'ready' | 'stopping';

export interface ShimHandlers {
  readonly warm: boolean;
  /** This shim's control secret: every control call must be signed with it; none, no control calls. */
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

async function readBody(req: http.IncomingMessage): Promise<{ ok: true; text: string } | { ok: false; reply: Reply }> {
  const raw = await readBoundedBody(req, MAX_BODY);
  if (raw === undefined) return { ok: false, reply: { status: 413, body: { error: `body larger than ${MAX_BODY} bytes` } } };
  return { ok: true, text: raw.toString('utf8') };
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false; reply: Reply } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, reply: { status: 400, body: { error: 'body is not JSON' } } };
  }
}

function errorReply(err: unknown, fallback: number): Reply {
  const code = err instanceof ZtmError ? err.code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  return { status: code === 'E_VALIDATION' ? 400 : fallback, body: { error: message, code } };
}

async function route(req: http.IncomingMessage, h: ShimHandlers, verifier: ShimCallVerifier | undefined, log: Logger): Promise<Reply> {
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
  if (!verifier) {
    log.warn({ path: url }, 'control request refused: this shim has no control secret');
    return { status: 403, body: { error: 'control calls are disabled: no control secret configured' } };
  }
  const raw = await readBody(req);
  if (!raw.ok) return raw.reply;
  const auth = req.headers[SHIM_AUTH_HEADER];
  const verdict = verifier.verify(Array.isArray(auth) ? auth[0] : auth, method, url ?? '', raw.text);
  if (verdict !== 'ok') {
    log.warn({ path: url, verdict }, 'control request rejected: not signed with this shim\'s secret');
    return { status: 401, body: { error: 'unauthorized', reason: verdict } };
  }

  if (url === '/claim') {
    if (h.hasTenant()) return { status: 409, body: { error: 'already claimed' } };
    const body = parseJson(raw.text);
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
    try {
      const result = await h.checkpoint();
      if (result === undefined) return { status: 409, body: { error: 'no tenant state yet' } };
      return { status: 200, body: result };
    } catch (err) {
      return errorReply(err, 502);
    }
  }

  // /state-urls
  const body = parseJson(raw.text);
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
  const verifier = handlers.secret === undefined ? undefined : new ShimCallVerifier(handlers.secret);
  return http.createServer((req, res) => {
    route(req, handlers, verifier, log).then(
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
