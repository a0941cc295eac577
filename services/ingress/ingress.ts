/**
 * The webhook ingress: Telegram's `POST /tg/<tenant>` in, a durable mailbox write, 200 out.
 *
 * Written against uWebSockets.js, whose rules shape this file:
 * - `req` is stack allocated: everything needed from it (parameter, headers) is copied out before
 *   the handler returns.
 * - a handler that does not answer synchronously must call `res.onAborted` before returning, and
 *   `res` must never be touched after the abort fired.
 * - `onData` chunks are neutered when the callback returns, so they are copied (or decoded) inside it.
 * - writes from async callbacks go through `res.cork` (one syscall per response).
 * - an exception thrown from a handler kills the process, so every handler catches.
 * The hot path allocates little per request: secrets are verified against a per-tenant cache of
 * derived secrets, the Redis write is batched by the mailbox with the others of the same event-loop
 * turn, and the 2 s bound on a write is one timer for all requests (a sweep over the in-flight
 * requests in arrival order), not a timer and a Promise.race per request.
 * The order of checks is deliberate: tenant id and secret are verified before a single body byte is
 * read, with no I/O for a tenant verified recently; a secret of the wrong shape costs nothing, and
 * any other costs at most one bounded Redis read of the tenant's incarnation (webhook-verifier.ts).
 */
import { assertNativeUws } from '../../lib/util/uws-native.js';
import uWS, { type HttpRequest, type HttpResponse, type TemplatedApp, type us_listen_socket } from '@trufflesuite/uws-js-unofficial';
import type { Counter } from 'prom-client';
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { RedisClient } from '../../lib/redis.js';
import type { Mailbox } from '../../lib/delivery/mailbox.js';
import { chatIdOf, parseUpdate } from '../../lib/delivery/update.js';
import { TENANT_ID_PATTERN } from '../../lib/validate.js';
import type { RedisClient as Redis } from '../../lib/redis.js';
import { IncarnationIndex } from '../../lib/tenants/incarnation-index.js';
import { WebhookVerifier, type Verdict } from './webhook-verifier.js';
import { LegacyLayoutPendingError } from './legacy-gate.js';

export interface IngressOptions {
  config: Pick<Config, 'ingressPort' | 'ingressHost' | 'ingressBodyLimit'>;
  log: Logger;
  /**
   * Read for /readyz and for tenants' incarnations (lib/tenants/incarnation-index.ts); the mailbox
   * does the writes. Owned by the caller (never closed here).
   */
  redis: Pick<RedisClient, 'status' | 'get'>;
  mailbox: Pick<Mailbox, 'accept'>;
  /** Master secret; each tenant's webhook secret is derived from it (lib/webhook-secret.ts). */
  webhookSecret: string;
  /** Overrides the verifier's cache bounds (tests). */
  verifier?: Omit<ConstructorParameters<typeof WebhookVerifier>[0], 'masterSecret' | 'lookup'>;
  metrics: Pick<Metrics, 'registry' | 'ingressRequests' | 'ingressAccepted'>;
  /** Upper bound of one durable write; past it the answer is 503 so Telegram retries. */
  redisTimeoutMs?: number;
  /** How long close() waits for in-flight writes to settle. */
  closeGraceMs?: number;
  /**
   * Serve GET /metrics on the webhook port too (default true: `npm start`). The ingress Deployment
   * turns it off and serves its metrics on ADMIN_PORT: the webhook port faces the internet.
   */
  metricsOnWebhookPort?: boolean;
}

export interface Ingress {
  /** The port actually listened on (config port 0 picks a free one). */
  port: number;
  close(): Promise<void>;
}

const SECRET_HEADER = 'x-telegram-bot-api-secret-token';
const JSON_TYPE = 'application/json';
const TEXT_TYPE = 'text/plain; charset=utf-8';

/** A canned answer: built once, so the hot path only writes bytes and bumps a pre-bound counter. */
interface Answer {
  status: string;
  code: string;
  type: string;
  body: string;
  headers: ReadonlyArray<readonly [string, string]>;
  /** Close the connection after answering: the rest of the body is never read. */
  close: boolean;
}

const answer = (status: string, body: string, extra: Partial<Pick<Answer, 'type' | 'headers' | 'close'>> = {}): Answer => ({
  status, code: status.slice(0, 3), body, type: extra.type ?? JSON_TYPE, headers: extra.headers ?? [], close: extra.close ?? false,
});
const fail = (error: string): string => JSON.stringify({ ok: false, error });

const A = {
  ok: answer('200 OK', '{"ok":true}'),
  badUpdate: answer('400 Bad Request', fail('body is not a Telegram Update (JSON object with an integer update_id)')),
  unauthorized: answer('401 Unauthorized', fail('missing or wrong X-Telegram-Bot-Api-Secret-Token'), { close: true }),
  notFound: answer('404 Not Found', fail('not found')),
  tgMethod: answer('405 Method Not Allowed', fail('method not allowed'), { headers: [['Allow', 'POST']] }),
  getMethod: answer('405 Method Not Allowed', fail('method not allowed'), { headers: [['Allow', 'GET']] }),
  tooLarge: answer('413 Payload Too Large', fail('body too large'), { close: true }),
  internal: answer('500 Internal Server Error', fail('internal error'), { close: true }),
  unavailable: answer('503 Service Unavailable', fail('storage unavailable, retry later'), { headers: [['Retry-After', '5']] }),
  migrating: answer('503 Service Unavailable', fail('delivery layout upgrade in progress, retry later'), { headers: [['Retry-After', '5']] }),
  closing: answer('503 Service Unavailable', fail('shutting down, retry later'), { headers: [['Retry-After', '5']], close: true }),
  healthy: answer('200 OK', 'ok', { type: TEXT_TYPE }),
  ready: answer('200 OK', 'ready', { type: TEXT_TYPE }),
  notReady: answer('503 Service Unavailable', 'redis not ready', { type: TEXT_TYPE, headers: [['Retry-After', '5']] }),
} as const;

class RedisTimeoutError extends Error {
  constructor(ms: number) {
    super(`redis did not answer within ${ms} ms`);
  }
}

function write(res: HttpResponse, a: Answer): void {
  res.writeStatus(a.status).writeHeader('Content-Type', a.type);
  for (const [k, v] of a.headers) res.writeHeader(k, v);
  res.end(a.body, a.close);
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new TypeError(`createIngress: ${what}`);
}

export async function createIngress(options: IngressOptions): Promise<Ingress> {
  // Before anything else: on a Node without the native addon the package serves another server.
  assertNativeUws(uWS);
  const { config, log, redis, mailbox, webhookSecret, metrics } = options;
  check(typeof config === 'object' && config !== null, 'config is required');
  check(Number.isInteger(config.ingressPort) && config.ingressPort >= 0 && config.ingressPort <= 65_535, 'config.ingressPort must be 0-65535');
  check(typeof config.ingressHost === 'string' && config.ingressHost.length > 0, 'config.ingressHost is required');
  check(Number.isInteger(config.ingressBodyLimit) && config.ingressBodyLimit > 0, 'config.ingressBodyLimit must be a positive integer');
  check(typeof log?.warn === 'function' && typeof log.debug === 'function', 'log must be a pino logger');
  check(typeof redis === 'object' && redis !== null && 'status' in redis && typeof redis.get === 'function', 'redis client is required');
  check(typeof mailbox?.accept === 'function', 'mailbox is required');
  check(typeof webhookSecret === 'string' && webhookSecret.length > 0, 'webhookSecret is required');
  check(Boolean(metrics?.registry && metrics.ingressRequests && metrics.ingressAccepted), 'metrics are required');
  const redisTimeoutMs = options.redisTimeoutMs ?? 2000;
  const closeGraceMs = options.closeGraceMs ?? 10_000;
  check(Number.isInteger(redisTimeoutMs) && redisTimeoutMs > 0, 'redisTimeoutMs must be a positive integer');
  check(Number.isInteger(closeGraceMs) && closeGraceMs >= 0, 'closeGraceMs must be a non-negative integer');
  const bodyLimit = config.ingressBodyLimit;

  // Pre-bound counter children: labels() hashes its arguments on every call.
  const byStatus = new Map<string, ReturnType<Counter<'status'>['labels']>>();
  const countStatus = (code: string): void => {
    let child = byStatus.get(code);
    if (!child) byStatus.set(code, (child = metrics.ingressRequests.labels(code)));
    child.inc();
  };
  const acceptedFresh = metrics.ingressAccepted.labels('false');
  const acceptedDuplicate = metrics.ingressAccepted.labels('true');
  // Decided once: building a debug object per request is wasted work at 25k req/s when off.
  const debug = log.isLevelEnabled('debug');

  /** Answers a webhook request: counted by status; debug-logged only when debug is on. */
  const reply = (res: HttpResponse, a: Answer, tenant: string): void => {
    write(res, a);
    countStatus(a.code);
    if (debug) log.debug({ tenant, status: a.code }, 'webhook answered');
  };

  // Outage bookkeeping: one warn when writes start failing, one info when they work again.
  let redisDown = false;
  const redisFailed = (err: unknown): void => {
    if (redisDown) return;
    redisDown = true;
    // Only the message: an ioredis error may carry the command's arguments (the update body).
    const reason = (err instanceof Error ? err.message : String(err)).slice(0, 200);
    log.warn({ reason }, 'redis unavailable: answering webhooks with 503 until it is back');
  };
  const redisOk = (): void => {
    if (!redisDown) return;
    redisDown = false;
    log.info('redis available again: accepting webhooks');
  };

  const incarnations = new IncarnationIndex(redis as Pick<Redis, 'get' | 'set' | 'del'>);
  const verifier = new WebhookVerifier({ ...options.verifier, masterSecret: webhookSecret, lookup: (id) => incarnations.identity(id), onLookupError: redisFailed });

  let closing = false;
  let inflight = 0;
  let drained: (() => void) | undefined;

  /** A webhook whose durable write is in flight: answered once, by the write or by the deadline. */
  interface Pending {
    res: HttpResponse;
    state: { aborted: boolean };
    tenant: string;
    deadline: number;
    answered: boolean;
  }
  // In arrival order, hence in deadline order (one bound for all): the sweep only looks at the head.
  let pending: Array<Pending | undefined> = [];
  let pendingHead = 0;

  const settle = (p: Pending, a: Answer): void => {
    if (p.answered) return;
    p.answered = true;
    try {
      // Aborted: Telegram will retry and a completed write is then acknowledged as a duplicate.
      if (p.state.aborted) countStatus('aborted');
      else p.res.cork(() => reply(p.res, a, p.tenant));
    } catch (err) {
      log.error({ err }, 'webhook answer failed');
    }
    inflight--;
    if (inflight === 0 && drained) drained();
  };

  /** A hung Redis must yield 503 (Telegram retries), not a hung request: answers writes past the bound. */
  const sweep = (): void => {
    const now = Date.now();
    while (pendingHead < pending.length) {
      const p = pending[pendingHead] as Pending;
      if (!p.answered) {
        if (p.deadline > now) break;
        const err = new RedisTimeoutError(redisTimeoutMs);
        redisFailed(err);
        if (debug) log.debug({ tenant: p.tenant, reason: err.message }, 'webhook write failed');
        settle(p, A.unavailable);
      }
      pending[pendingHead++] = undefined;
    }
    if (pendingHead === pending.length) {
      pending = [];
      pendingHead = 0;
    } else if (pendingHead > 1024 && pendingHead * 2 > pending.length) {
      pending = pending.slice(pendingHead);
      pendingHead = 0;
    }
  };
  const sweeper = setInterval(sweep, Math.min(100, Math.max(5, Math.floor(redisTimeoutMs / 10))));
  // Only bounds waits: must not keep a closed ingress's process alive.
  sweeper.unref();

  /** The body is complete and within the limit: validate, write durably, answer. */
  const handleBody = (res: HttpResponse, state: { aborted: boolean }, tenant: string, body: string): void => {
    const update = parseUpdate(body);
    if (!update) return reply(res, A.badUpdate, tenant);
    const p: Pending = { res, state, tenant, deadline: Date.now() + redisTimeoutMs, answered: false };
    inflight++;
    pending.push(p);
    mailbox.accept(tenant, chatIdOf(update), update.update_id as number, body).then(
      ({ duplicate }) => {
        redisOk();
        (duplicate ? acceptedDuplicate : acceptedFresh).inc();
        settle(p, A.ok);
      },
      (err: unknown) => {
        if (err instanceof LegacyLayoutPendingError) return settle(p, A.migrating);
        redisFailed(err);
        if (debug) log.debug({ tenant, reason: err instanceof Error ? err.message : String(err) }, 'webhook write failed');
        settle(p, A.unavailable);
      },
    );
  };

  const onWebhook = (res: HttpResponse, req: HttpRequest): void => {
    const tenant = req.getParameter(0) ?? '';
    if (closing) return reply(res, A.closing, tenant);
    if (!TENANT_ID_PATTERN.test(tenant)) return reply(res, A.notFound, '');
    // Before the body: a wrong secret of a known tenant (or of the wrong shape) closes the connection unread.
    const verdict = verifier.verify(tenant, req.getHeader(SECRET_HEADER));
    if (verdict === 'bad') return reply(res, A.unauthorized, tenant);
    if (verdict === 'unavailable') return reply(res, A.unavailable, tenant);
    const declared = req.getHeader('content-length');
    if (declared !== '' && Number(declared) > bodyLimit) return reply(res, A.tooLarge, tenant);

    const state = { aborted: false, done: false };
    res.onAborted(() => {
      state.aborted = true;
      if (!state.done) countStatus('aborted');
      state.done = true;
    });
    // Not known yet (the tenant's incarnation is being read): the body is read meanwhile (bounded
    // by the limit) and handled once the secret is decided; answers then go through cork.
    const decided: Promise<Verdict> | undefined = typeof verdict === 'string' ? undefined : verdict;
    const afterVerdict = (body: string): void => {
      if (!decided) return handleBody(res, state, tenant, body);
      decided.then((v) => {
        if (state.aborted) return;
        res.cork(() => {
          if (v === 'ok') handleBody(res, state, tenant, body);
          else reply(res, v === 'bad' ? A.unauthorized : A.unavailable, tenant);
        });
      }, (err: unknown) => {
        log.error({ err, tenant }, 'webhook verification failed');
        if (!state.aborted) res.cork(() => reply(res, A.internal, tenant));
      });
    };
    let parts: Buffer[] | undefined;
    let size = 0;
    res.onData((chunk, isLast) => {
      // uWS keeps delivering the rest of a read batch after we answered (e.g. 413): ignore it.
      if (state.done) return;
      try {
        size += chunk.byteLength;
        if (size > bodyLimit) {
          state.done = true;
          parts = undefined;
          return reply(res, A.tooLarge, tenant);
        }
        if (!isLast) {
          // slice() copies: uWS neuters the ArrayBuffer when this callback returns.
          (parts ??= []).push(Buffer.from(chunk.slice(0)));
          return;
        }
        state.done = true;
        // The common single-chunk body is decoded in place, with no copy (still inside the callback).
        const body = parts ? Buffer.concat([...parts, Buffer.from(chunk)], size).toString('utf8') : Buffer.from(chunk).toString('utf8');
        parts = undefined;
        afterVerdict(body);
      } catch (err) {
        state.done = true;
        log.error({ err, tenant }, 'webhook handler failed');
        if (!state.aborted) reply(res, A.internal, tenant);
      }
    });
  };

  /** uWS terminates the process on a throwing handler; answer 500 instead. */
  const guarded = (name: string, handler: (res: HttpResponse, req: HttpRequest) => void) => (res: HttpResponse, req: HttpRequest): void => {
    try {
      handler(res, req);
    } catch (err) {
      log.error({ err, route: name }, 'ingress handler failed');
      try {
        write(res, A.internal);
      } catch {
        /* already answered or aborted */
      }
    }
  };

  const onMetrics = (res: HttpResponse): void => {
    let aborted = false;
    res.onAborted(() => (aborted = true));
    metrics.registry.metrics().then(
      (text) => {
        if (!aborted) res.cork(() => write(res, answer('200 OK', text, { type: metrics.registry.contentType })));
      },
      (err: unknown) => {
        log.error({ err }, 'metrics collection failed');
        if (!aborted) res.cork(() => write(res, A.internal));
      },
    );
  };

  // Specific methods win over any() in uWS's router, whatever the registration order; static
  // paths win over parameters, parameters over the /* catch-all.
  const app: TemplatedApp = uWS.App()
    .post('/tg/:tenant', guarded('webhook', onWebhook))
    .any('/tg/:tenant', guarded('webhook', (res, req) => {
      const tenant = req.getParameter(0) ?? '';
      reply(res, TENANT_ID_PATTERN.test(tenant) ? A.tgMethod : A.notFound, '');
    }))
    .get('/healthz', guarded('healthz', (res) => write(res, A.healthy)))
    .get('/readyz', guarded('readyz', (res) => write(res, !closing && redis.status === 'ready' ? A.ready : A.notReady)));
  const probes = ['/healthz', '/readyz'];
  if (options.metricsOnWebhookPort !== false) {
    app.get('/metrics', guarded('metrics', onMetrics));
    probes.push('/metrics');
  }
  for (const path of probes) app.any(path, guarded(path, (res) => write(res, A.getMethod)));
  app.any('/*', guarded('other', (res) => write(res, A.notFound)));

  // listen() calls back synchronously; false means the address could not be bound.
  let listenSocket: us_listen_socket | false = false;
  app.listen(config.ingressHost, config.ingressPort, (token) => {
    listenSocket = token;
  });
  const socket = listenSocket as us_listen_socket | false;
  if (!socket) {
    clearInterval(sweeper);
    closeApp(app);
    throw new Error(`ingress could not listen on ${config.ingressHost}:${config.ingressPort} (address in use or not available)`);
  }
  const port = uWS.us_socket_local_port(socket);
  log.info({ host: config.ingressHost, port, bodyLimit }, 'ingress listening');

  let closed: Promise<void> | undefined;
  return {
    port,
    close() {
      closed ??= (async () => {
        closing = true;
        uWS.us_listen_socket_close(socket);
        if (inflight > 0) {
          // Answers to writes already in flight still go out; bounded so shutdown cannot hang.
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, closeGraceMs);
            drained = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          if (inflight > 0) log.warn({ inflight }, 'ingress closed with webhook writes still in flight');
        }
        clearInterval(sweeper);
        // Keep-alive connections outlive the listen socket and keep the event loop alive.
        closeApp(app);
        log.info('ingress closed');
      })();
      return closed;
    },
  };
}

/** app.close() (closes every socket) exists in the binary but not in the package's typings. */
function closeApp(app: TemplatedApp): void {
  const close = (app as unknown as { close?: () => void }).close;
  if (typeof close === 'function') close.call(app);
}
