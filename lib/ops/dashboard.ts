/**
 * Bull Board over every queue of the platform (`{forward}`, `{wake}`, `{admin}`, `{lifecycle}`
 * under the `ztm` prefix) plus the dead letters (a read-only view: lib/ops/dead-letter-adapter.ts).
 * Served by `ztm dashboard` (locally, against the Redis ztm talks to), by the `dashboard` service
 * in the chart, and by `npm start` when DASHBOARD_PORT is set. Beside it, `<base>/tenants`: the
 * tenants view (lib/ops/tenants-view*.ts), linked from the board's header.
 *
 * Everything the board's API answers is redacted before it reaches the browser (admin jobs carry
 * bot tokens while they run; a failed reason or a dead-lettered update can carry anything).
 * The admin and lifecycle queues are read-only on the board: replaying an admin command or a
 * lifecycle tick by hand is not something a button should do. Basic auth protects everything but
 * `/healthz` and `/readyz` when a user and password are given.
 *
 * A browser is the board's client, so the browser's attacks are refused too (boardGuards): no answer
 * may be framed (clickjacking the board's buttons), none is stored, a request that changes something
 * must come from the board's own origin (a form on another site can POST with the browser's cached
 * basic auth: Bull Board's `POST /api/queues/<q>/add` takes one), and a board without auth answers
 * only IP and `localhost` hosts (DNS rebinding turns any site into a same-origin caller of loopback).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { RedisClient } from '../redis.js';
import { redactDeep } from '../redact.js';
import { DeadLetterStore } from '../delivery/dead-letters.js';
import { QueueStats, type QueueLabel } from './queue-stats.js';
import { adminTenantLister } from './tenants-view-source.js';
import { DeadLetterAdapter } from './dead-letter-adapter.js';
import { TenantsView, type ListTenants } from './tenants-view.js';
import { tenantsRouter } from './tenants-view-routes.js';
import { FailedAuthLimiter, clientKey } from '../admin-api/failed-auth-limiter.js';

/** Port of `ztm dashboard` and of the dashboard service unless DASHBOARD_PORT / --port say otherwise. */
export { DEFAULT_DASHBOARD_PORT } from './dashboard-port.js';

export interface DashboardAuth {
  user: string;
  password: string;
}

export interface DashboardOptions {
  /** A non-blocking Redis client (queue reads, dead letters). The caller owns it. */
  redis: RedisClient;
  /** Where the board is mounted, e.g. `/` or `/queues`. */
  basePath?: string;
  auth?: DashboardAuth;
  log?: Logger;
  /** When given, `/metrics` serves this registry (the dashboard service). */
  metrics?: Metrics;
  /**
   * Where the tenants view (`<base>/tenants`, lib/ops/tenants-view.ts) reads the registry: a
   * lister, or the Redis URL of the admin queue (the janitor answers `tenant.list`; closed with
   * the board). Neither: the view answers 503 and the queues are served as before.
   */
  tenants?: ListTenants | { redisUrl: string; cluster?: boolean | undefined };
}

export interface Dashboard {
  app: express.Express;
  close(): Promise<void>;
}

const DESCRIPTIONS: Record<QueueLabel, { name: string; text: string; readOnly: boolean }> = {
  forward: { name: 'forward', text: 'Drain jobs: one per chat with pending updates (forwarder). Delayed = parked while the tenant wakes, or backing off.', readOnly: false },
  wake: { name: 'wake', text: 'Wake requests, one pending per tenant (waker).', readOnly: false },
  admin: { name: 'admin', text: 'ztm commands (janitor). Removed on completion; read-only here.', readOnly: true },
  lifecycle: { name: 'lifecycle', text: 'Idle check, reconciler and stale-lock repair ticks from job schedulers (janitor). Read-only here.', readOnly: true },
};

/**
 * Every JSON answer of the board's API, redacted on its way out (lib/redact.ts): job data, names,
 * progress, return values, failed reasons, stack traces, options, logs, flows, schedulers'
 * templates, the dead letters' updates. One place, so no view the board adds later is missed.
 */
export function redactJsonAnswers(_req: Request, res: Response, next: NextFunction): void {
  const json = res.json.bind(res);
  res.json = (body: unknown) => json(redactDeep(body));
  next();
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * Express middleware: HTTP basic auth, compared in constant time. An address that keeps sending
 * wrong credentials is refused (429) for a while (`failed`, per address); no header at all is no
 * guess (a browser's first request) and is not counted.
 */
export function basicAuth(auth: DashboardAuth, failed = new FailedAuthLimiter()): (req: Request, res: Response, next: NextFunction) => void {
  const want = digest(`${auth.user}:${auth.password}`);
  return (req, res, next) => {
    const client = clientKey(req.socket.remoteAddress);
    const wait = failed.blockedFor(client);
    if (wait > 0) return void res.set('Retry-After', String(wait)).status(429).type('text/plain').send('too many failed logins from this address: retry later\n');
    const header = req.headers.authorization ?? '';
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    const given = m?.[1] ? Buffer.from(m[1], 'base64').toString('utf8') : '';
    if (given && timingSafeEqual(digest(given), want)) return next();
    if (header) failed.fail(client);
    res.set('WWW-Authenticate', 'Basic realm="ztm dashboard", charset="UTF-8"').status(401).type('text/plain').send('authentication required\n');
  };
}

const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);
/** `127.0.0.1`, `[::1]`, `10.0.0.7`, `localhost`, `x.localhost` (with or without a port): names no DNS answer can point elsewhere. */
const LOCAL_HOST = /^(?:\[[0-9a-f:.]+\]|[0-9]{1,3}(?:\.[0-9]{1,3}){3}|(?:[a-z0-9-]+\.)*localhost)(?::[0-9]{1,5})?$/i;

/** The browser-facing guards of every answer after the probes (see the module comment). */
export function boardGuards(o: { auth: boolean }): (req: Request, res: Response, next: NextFunction) => void {
  return (req, res, next) => {
    res.set({ 'x-frame-options': 'DENY', 'content-security-policy': "frame-ancestors 'none'", 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    const host = req.headers.host ?? '';
    if (!o.auth && !LOCAL_HOST.test(host)) {
      return void res.status(421).type('text/plain').send('this board has no auth and answers only IP and localhost addresses: set DASHBOARD_USER and DASHBOARD_PASSWORD to serve it under a name\n');
    }
    if (!SAFE_METHODS.has(req.method)) {
      const site = req.headers['sec-fetch-site'];
      const origin = req.headers.origin;
      const crossSite = (typeof site === 'string' && site !== 'same-origin' && site !== 'none')
        || (origin !== undefined && (origin === 'null' || !sameHost(origin, host)));
      if (crossSite) return void res.status(403).type('text/plain').send('refused: a change to the board must come from the board\'s own page\n');
    }
    next();
  };
}

function sameHost(origin: string, host: string): boolean {
  try {
    return new URL(origin).host.toLowerCase() === host.toLowerCase();
  } catch {
    return false;
  }
}

export function createDashboard(o: DashboardOptions): Dashboard {
  if (!o.redis) throw new TypeError('createDashboard: redis is required');
  const basePath = `/${(o.basePath ?? '/').replace(/^\/+|\/+$/g, '')}`;
  const stats = new QueueStats(o.redis);
  const adapters = stats.bullQueues.map(({ label, queue }) => {
    const d = DESCRIPTIONS[label];
    return new BullMQAdapter(queue, { readOnlyMode: d.readOnly, description: d.text, displayName: d.name, prefix: '' });
  });
  // The delivery shards' drain queues, `forward <n>` (ztm status's `forward` row is their sum).
  const f = DESCRIPTIONS.forward;
  adapters.push(...stats.shardQueues.map(({ shard, queue }) => new BullMQAdapter(queue, { readOnlyMode: f.readOnly, description: f.text, displayName: `forward ${shard.index}`, prefix: '' })));
  const dead = new DeadLetterAdapter(new DeadLetterStore({ redis: o.redis }));
  const admin = o.tenants && typeof o.tenants !== 'function' ? adminTenantLister(o.tenants) : undefined;
  const list = typeof o.tenants === 'function' ? o.tenants : admin?.list;
  const tenants = list ? new TenantsView({ redis: o.redis, list }) : undefined;

  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(basePath === '/' ? '' : basePath);
  createBullBoard({
    queues: [...adapters, dead],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'Agentic Tenancy', miscLinks: [{ text: 'Tenants', url: `${basePath === '/' ? '' : basePath}/tenants` }] } },
  });

  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => void res.type('text/plain').send('ok'));
  app.get('/readyz', (_req, res) => {
    const ok = o.redis.status === 'ready';
    res.status(ok ? 200 : 503).type('text/plain').send(ok ? 'ready' : 'not ready');
  });
  if (o.metrics) {
    const registry = o.metrics.registry;
    app.get('/metrics', (_req, res) => {
      registry.metrics().then((text) => res.type(registry.contentType).send(text), () => res.status(500).end());
    });
  }
  app.use(boardGuards({ auth: Boolean(o.auth) }));
  if (o.auth) app.use(basicAuth(o.auth));
  // The tenants view before the board's router, which answers any path under the base with its own page.
  app.use(basePath, redactJsonAnswers, tenantsRouter({ view: tenants, ...(o.log ? { log: o.log } : {}) }), serverAdapter.getRouter() as express.Router);
  // Our own 404 (not Express's), so it keeps the guards' headers.
  app.use((_req: Request, res: Response) => void res.status(404).type('text/plain').send('not found\n'));
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    o.log?.warn({ err }, 'dashboard request failed');
    if (!res.headersSent) res.status(500).type('text/plain').send('dashboard error\n');
  });
  return { app, close: async () => void (await Promise.allSettled([stats.close(), admin?.close()])) };
}

export interface ServedDashboard {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Starts the board on `host:port` (port 0: a free one). */
export async function serveDashboard(o: DashboardOptions & { port: number; host?: string }): Promise<ServedDashboard> {
  const dashboard = createDashboard(o);
  const server = http.createServer(dashboard.app);
  // Every request of the board is small and quick: a slow sender is cut off (slowloris).
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;
  const host = o.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const base = (o.basePath ?? '/').replace(/^\/+|\/+$/g, '');
  return {
    url: `http://${shownHost}:${port}/${base ? `${base}/` : ''}`,
    port,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await dashboard.close();
    },
  };
}
