/**
 * The admin HTTP API, built once for its own Deployment (main.ts) and `npm start` with
 * ADMIN_API_PORT (services/platform/platform.ts). It holds no registry, runtime or cloud
 * credentials: every command runs as an admin job in the janitor, as `ztm`'s do, so the API's pods
 * need Redis alone and a compromise of them reaches no further than `ztm` would.
 */
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { RedisClient } from '../../lib/redis.js';
import { AdminClient } from '../../lib/admin/admin-client.js';
import { ApiTokenStore } from '../../lib/admin-api/api-tokens.js';
import { RateLimiter } from '../../lib/admin-api/rate-limiter.js';
import { AdminApiServer } from '../../lib/admin-api/admin-api-server.js';
import { OPENAPI_DOCUMENT } from '../../lib/admin-api/openapi.js';
import { CloseChain, startedPart, type BuiltService } from '../../lib/platform/service-parts.js';

/** The Deployment's port when ADMIN_API_PORT is not set (`npm start` serves the API only when it is). */
export const DEFAULT_ADMIN_API_PORT = 8090;

export interface AdminApiDeps {
  config: Pick<Config, 'redisCluster' | 'adminApiRatePerMin' | 'adminApiBurst'>;
  log: Logger;
  /** A non-blocking client for tokens and rate limits; the caller's (never closed here). */
  redis: RedisClient;
  /** Where the admin queue is: the AdminClient opens its own (blocking) connections there. */
  redisUrl: string;
  port: number;
  host: string;
  /** How long a command may wait for an admin worker to pick it up (default 5 s, then 503). */
  pickupTimeoutMs?: number;
  stepTimeoutMs?: number;
  /** Where requests are counted (ztm_admin_api_requests_total); served on ADMIN_PORT by main.ts, or npm start's registry. */
  metrics?: Pick<Metrics, 'adminApiRequests'>;
}

export interface BuiltAdminApi extends BuiltService {
  /** `http://host:port`; after start(). */
  readonly url: string;
  readonly server: AdminApiServer;
}

export function buildAdminApi(d: AdminApiDeps): Promise<BuiltAdminApi> {
  const chain = new CloseChain(d.log, d.stepTimeoutMs);
  const client = () => new AdminClient({ redisUrl: d.redisUrl, cluster: d.config.redisCluster, pickupTimeoutMs: d.pickupTimeoutMs ?? 5000 });
  // Two clients: the long commands (a wake: minutes) in a lane of their own (lib/admin-api/command-lane.ts).
  const backend = client();
  const longBackend = client();
  const server = new AdminApiServer({
    backend,
    longBackend,
    tokens: new ApiTokenStore(d.redis),
    limiter: new RateLimiter(d.redis),
    log: d.log,
    defaultLimit: { perMin: d.config.adminApiRatePerMin, burst: d.config.adminApiBurst },
    openapi: OPENAPI_DOCUMENT,
    ready: () => d.redis.status === 'ready',
    ...(d.metrics ? { metrics: d.metrics } : {}),
  });
  let url: string | undefined;
  return Promise.resolve({
    server,
    get url() {
      return startedPart('admin-api', 'the listener', url);
    },
    async start() {
      chain.add('admin client', () => backend.close());
      chain.add('admin client (long commands)', () => longBackend.close());
      await Promise.all([backend.connect(), longBackend.connect()]);
      chain.add('listener', () => server.close());
      url = await server.listen(d.port, d.host);
    },
    close: () => chain.close(),
  });
}
