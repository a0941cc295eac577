/**
 * The admin HTTP API: `ztm`'s admin commands as REST resources under /v1, behind bearer tokens
 * (api-tokens.ts) with a per-token rate limit (rate-limiter.ts). Each request is authenticated,
 * checked (route, scope, query, body), validated with the admin protocol's own parser, then run as
 * an admin job by the janitor (the `backend`: an AdminClient), exactly as `ztm` runs it. One child
 * logger per request; neither a bearer token nor a bot token is ever logged or answered.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../logger.js';
import { ForbiddenError, NotFoundError, RateLimitedError, UnauthorizedError, ValidationError, ZtmError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { redactDeep } from '../redact.js';
import { parseAdminArgs } from '../admin/admin-protocol.js';
import { listenHttp } from '../util/listen.js';
import type { ApiTokenRecord, ApiTokenStore } from './api-tokens.js';
import type { RateLimit, RateLimiter } from './rate-limiter.js';
import { Router, type Route } from './routes.js';
import { errorResponse, sendJson } from './http-errors.js';
import { readJsonBody } from './json-body.js';
import { CommandLane, type AdminBackend } from './command-lane.js';
import { FailedAuthLimiter, clientKey } from './failed-auth-limiter.js';

export type { AdminBackend };

export interface AdminApiOptions {
  /** Runs the quick commands (reads, create, update). */
  backend: AdminBackend;
  /** Runs the long ones (wake, stop, delete, retry-all: up to minutes); default `backend` (its own is better: command-lane.ts). */
  longBackend?: AdminBackend;
  tokens: ApiTokenStore;
  limiter: RateLimiter;
  log: Logger;
  /** Limits of a token created without its own. */
  defaultLimit: RateLimit;
  /** The OpenAPI document served at /v1/openapi.json. */
  openapi: unknown;
  /** `/readyz`: Redis is connected (default: always). */
  ready?: () => boolean;
  /** Largest accepted body in bytes (default 64 KiB: the largest command is a few hundred). */
  bodyLimit?: number;
  /** Commands in flight at once per lane and replica; more wait their turn (default 8, command-lane.ts). */
  concurrency?: number;
  /** Failed authentications per client address, checked before any Redis read (default: 30 at once, 30 a minute). */
  failedAuth?: FailedAuthLimiter;
  /** Counts each request as ztm_admin_api_requests_total{operation,status}. */
  metrics?: Pick<Metrics, 'adminApiRequests'>;
}

const DEFAULT_TIMEOUT_S = 60;
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;
/** Served to anyone: liveness, readiness and the OpenAPI document (nothing secret, nothing changes). */
const PLAIN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/v1/openapi.json']);

export class AdminApiServer {
  readonly server: http.Server;
  private readonly router = new Router();
  private readonly openapiText: string;
  private readonly quick: CommandLane;
  private readonly long: CommandLane;
  private readonly failedAuth: FailedAuthLimiter;

  constructor(private readonly o: AdminApiOptions) {
    for (const k of ['backend', 'tokens', 'limiter', 'log', 'defaultLimit', 'openapi'] as const) {
      if (!o[k]) throw new TypeError(`AdminApiServer: ${k} is required`);
    }
    this.openapiText = JSON.stringify(o.openapi);
    this.quick = new CommandLane(o.backend, o.concurrency);
    this.long = new CommandLane(o.longBackend ?? o.backend, o.concurrency);
    this.failedAuth = o.failedAuth ?? new FailedAuthLimiter();
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        // handle() answers every error itself; this is the last resort, so a bug cannot kill the process.
        this.o.log.error({ err }, 'admin API handler failed');
        res.destroy();
      });
    });
    // The time to receive a request (not to answer it: a wake may take minutes): a slow sender is cut off.
    this.server.requestTimeout = 30_000;
    this.server.headersTimeout = 20_000;
  }

  listen(port: number, host: string): Promise<string> {
    return listenHttp(this.server, port, host);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const given = req.headers['x-request-id'];
    const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomBytes(8).toString('hex');
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://admin-api.invalid');
    } catch {
      url = new URL('http://admin-api.invalid/.malformed');
    }
    let log = this.o.log.child({ req: id, method: req.method, path: url.pathname.slice(0, 200) });
    res.setHeader('x-request-id', id);
    let status = 500;
    let operation = 'none';
    try {
      if (PLAIN_PATHS.has(url.pathname)) {
        operation = 'plain';
        if (req.method !== 'GET') {
          res.setHeader('allow', 'GET');
          throw new ZtmError('E_METHOD_NOT_ALLOWED', `${req.method ?? '?'} is not allowed here: GET`);
        }
        this.servePlain(url.pathname, res);
        status = res.statusCode;
        return;
      }
      const match = this.router.match(req.method ?? '', url.pathname);
      if (match.kind === 'none') throw new NotFoundError(`no such route: ${req.method ?? '?'} ${url.pathname.slice(0, 100)} (see GET /v1/openapi.json)`);
      if (match.kind === 'method') {
        res.setHeader('allow', match.allow.join(', '));
        throw new ZtmError('E_METHOD_NOT_ALLOWED', `${req.method ?? '?'} is not allowed here: ${match.allow.join(', ')}`);
      }
      const { route, params } = match;
      operation = route.operationId;
      log = log.child({ op: route.operationId });
      const token = await this.authenticate(req);
      log = log.child({ api_token_id: token.id });
      // The budget before the scope: refusals cost a token its budget too (a 403 still costs a Redis read).
      const rate = await this.o.limiter.enforce(token.id, { perMin: token.rate_per_min ?? this.o.defaultLimit.perMin, burst: token.burst ?? this.o.defaultLimit.burst });
      res.setHeader('ratelimit-remaining', String(rate.remaining));
      if (!token.scopes.includes(route.scope)) throw new ForbiddenError(`this token lacks the ${route.scope} scope`);
      const unknown = [...url.searchParams.keys()].find((k) => !(route.query ?? []).includes(k));
      if (unknown !== undefined) throw new ValidationError(`unknown query parameter ${JSON.stringify(unknown.slice(0, 40))}${route.query?.length ? `: expected ${route.query.join(', ')}` : ''}`);
      const body = route.body ? await readJsonBody(req, route.body, this.o.bodyLimit ?? 65_536) : undefined;
      const args = parseAdminArgs(route.command, route.args({ params, query: url.searchParams, body }));
      const result = await this.run(route, args);
      const out = route.respond ? route.respond(result) : result;
      status = route.status ?? 200;
      const headers: Record<string, string> = {};
      if (route.operationId === 'createTenant') headers.location = `/v1/tenants/${(args as { tenant_id: string }).tenant_id}`;
      sendJson(res, status, redactDeep(out), headers);
    } catch (err) {
      const e = errorResponse(err);
      status = e.status;
      if (status >= 500) log.error({ err }, 'admin API request failed');
      if (!res.headersSent) {
        // An unread body (a 413, a refusal before reading) is not drained: close instead of reading it.
        if (!req.complete) e.headers.connection = 'close';
        sendJson(res, status, e.body, e.headers);
      } else res.destroy();
    } finally {
      log.info({ status, ms: Date.now() - started }, 'request');
      this.o.metrics?.adminApiRequests.inc({ operation, status: String(status) });
    }
  }

  private servePlain(pathname: string, res: ServerResponse): void {
    if (pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    } else if (pathname === '/readyz') {
      const ok = this.o.ready?.() ?? true;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready' : 'not ready');
    } else {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-cache' }).end(this.openapiText);
    }
  }

  private async authenticate(req: IncomingMessage): Promise<ApiTokenRecord> {
    // An address that keeps failing is refused before its credential costs a Redis read.
    const client = clientKey(req.socket.remoteAddress);
    const wait = this.failedAuth.blockedFor(client);
    if (wait > 0) throw new RateLimitedError(`too many failed authentications from this address: retry in ${wait}s`, wait);
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer +(\S+) *$/i.exec(header) : null;
    if (!m) {
      this.failedAuth.fail(client);
      throw new UnauthorizedError('missing bearer token: send Authorization: Bearer <a token from ztm api-token create>');
    }
    let record: ApiTokenRecord | undefined;
    try {
      record = await this.o.tokens.verify(m[1] as string);
    } catch (err) {
      throw new ZtmError('E_REDIS_UNAVAILABLE', 'cannot check the token: Redis is unavailable', { cause: err });
    }
    // One answer for malformed, unknown, wrong and revoked: which one it was helps only a guesser.
    if (!record) {
      this.failedAuth.fail(client);
      throw new UnauthorizedError('invalid or revoked API token');
    }
    return record;
  }

  /** Runs the route's command in its lane: a long command never holds up a quick one. */
  private run(route: Route, args: unknown): Promise<unknown> {
    const timeoutS = route.timeoutS ?? DEFAULT_TIMEOUT_S;
    return (timeoutS > DEFAULT_TIMEOUT_S ? this.long : this.quick).run(route.command, args, timeoutS * 1000);
  }
}
