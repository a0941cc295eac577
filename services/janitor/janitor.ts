/**
 * The janitor: runs `ztm`'s admin commands (and, with the lifecycle issue, idle shutdown and the
 * reconciler). Built from clients passed in, so tests run it against their own servers.
 */
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { PlatformClients } from '../../lib/platform/clients.js';
import type { Closeable } from '../../lib/platform/run-service.js';
import { TenantAdmin, type TenantLifecycle } from '../../lib/tenants/tenant-admin.js';
import { AdminWorker, type ExtraAdminHandlers } from './admin-worker.js';

export interface JanitorOptions {
  config: Config;
  log: Logger;
  clients: Pick<PlatformClients, 'redis' | 'bull' | 'registry' | 'telegram'>;
  webhookSecret: string;
  lifecycle?: TenantLifecycle;
  handlers?: ExtraAdminHandlers;
}

export interface Janitor extends Closeable {
  admin: TenantAdmin;
  adminWorker: AdminWorker;
}

export function createJanitor(o: JanitorOptions): Janitor {
  const admin = new TenantAdmin({
    registry: o.clients.registry,
    telegram: o.clients.telegram,
    redis: o.clients.redis,
    log: o.log,
    webhookSecret: o.webhookSecret,
    routerPublicUrl: o.config.routerPublicUrl,
    ...(o.lifecycle ? { lifecycle: o.lifecycle } : {}),
  });
  const adminWorker = new AdminWorker({ connection: o.clients.bull, log: o.log.child({ component: 'admin' }), admin, ...(o.handlers ? { handlers: o.handlers } : {}) });
  return {
    admin,
    adminWorker,
    async close() {
      await adminWorker.close();
    },
  };
}
