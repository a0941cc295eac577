/**
 * Bull Board and the tenants view, built once for its own Deployment (main.ts) and `npm start` with
 * DASHBOARD_PORT (services/platform/main.ts). `/healthz`, `/readyz` (and `/metrics` when it owns a registry) on the
 * same port, outside the auth.
 */
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { RedisClient } from '../../lib/redis.js';
import { serveDashboard, type DashboardAuth, type DashboardOptions, type ServedDashboard } from '../../lib/ops/dashboard.js';
import { CloseChain, serviceMetrics, startedPart, type BuiltService } from '../../lib/platform/service-parts.js';

export interface DashboardDeps {
  log: Logger;
  /** A non-blocking client; the caller's (never closed here). */
  redis: RedisClient;
  port: number;
  host: string;
  auth?: DashboardAuth;
  /** Where the tenants view reads the registry (a lister, or the admin queue's Redis URL); absent: the view answers 503. */
  tenants?: DashboardOptions['tenants'];
  /** Serve `/metrics` with its own registry and queue gauges (the Deployment); `npm start` has its own. */
  withMetrics: boolean;
  stepTimeoutMs?: number;
}

export interface BuiltDashboard extends BuiltService {
  /** The listening board; after start(). */
  readonly served: ServedDashboard;
}

export function buildDashboard(d: DashboardDeps): Promise<BuiltDashboard> {
  const chain = new CloseChain(d.log, d.stepTimeoutMs);
  const metrics: Metrics | undefined = d.withMetrics ? serviceMetrics('dashboard', undefined, d.redis, chain) : undefined;
  let served: ServedDashboard | undefined;
  return Promise.resolve({
    get served() {
      return startedPart('dashboard', 'the board', served);
    },
    async start() {
      served = await serveDashboard({
        redis: d.redis, log: d.log, port: d.port, host: d.host,
        ...(metrics ? { metrics } : {}), ...(d.auth ? { auth: d.auth } : {}), ...(d.tenants ? { tenants: d.tenants } : {}),
      });
      chain.add('board', () => served?.close());
    },
    close: () => chain.close(),
  });
}
