/**
 * The janitor: runs `ztm`'s admin commands, and with a runtime also idle shutdown and the
 * reconciler (lifecycle-worker.ts). Built from clients passed in, so tests run it against their
 * own servers.
 */
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { PlatformClients } from '../../lib/platform/clients.js';
import type { Closeable } from '../../lib/platform/run-service.js';
import type { Runtime } from '../../lib/runtime/runtime.js';
import { TenantAdmin } from '../../lib/tenants/tenant-admin.js';
import type { RuntimeLifecycle } from '../../lib/tenants/tenant-lifecycle.js';
import { AdminWorker, type ExtraAdminHandlers } from './admin-worker.js';
import { LifecycleWorker } from './lifecycle-worker.js';

export interface JanitorOptions {
  config: Config;
  log: Logger;
  clients: Pick<PlatformClients, 'redis' | 'bull' | 'registry' | 'telegram' | 'state'>;
  webhookSecret: string;
  /** With both, the janitor also runs idle shutdown and the reconciler. */
  runtime?: Runtime;
  lifecycle?: RuntimeLifecycle;
  handlers?: ExtraAdminHandlers;
}

export interface Janitor extends Closeable {
  admin: TenantAdmin;
  adminWorker: AdminWorker;
  lifecycleWorker?: LifecycleWorker;
}

export async function createJanitor(o: JanitorOptions): Promise<Janitor> {
  const admin = new TenantAdmin({
    registry: o.clients.registry,
    telegram: o.clients.telegram,
    redis: o.clients.redis,
    log: o.log,
    webhookSecret: o.webhookSecret,
    routerPublicUrl: o.config.routerPublicUrl,
    ...(o.lifecycle ? { lifecycle: o.lifecycle } : {}),
  });
  const handlers: ExtraAdminHandlers = { ...o.handlers };
  if (o.lifecycle) {
    const lifecycle = o.lifecycle;
    handlers['tenant.wake'] ??= (a, progress) => lifecycle.wake(a.tenant_id, progress);
    handlers['tenant.sleep'] ??= (a) => lifecycle.sleep(a.tenant_id);
  }
  const adminWorker = new AdminWorker({ connection: o.clients.bull, log: o.log.child({ worker: 'admin' }), admin, handlers });
  let lifecycleWorker: LifecycleWorker | undefined;
  if (o.runtime && o.lifecycle) {
    lifecycleWorker = new LifecycleWorker({
      config: o.config, log: o.log.child({ worker: 'lifecycle' }), redis: o.clients.redis, bull: o.clients.bull,
      registry: o.clients.registry, runtime: o.runtime, lifecycle: o.lifecycle, state: o.clients.state,
    });
    await lifecycleWorker.start();
  }
  return {
    admin,
    adminWorker,
    ...(lifecycleWorker ? { lifecycleWorker } : {}),
    async close() {
      await adminWorker.close();
      await lifecycleWorker?.close();
    },
  };
}
