/**
 * The janitor: runs `ztm`'s admin commands (dead letters included), and with a runtime also idle shutdown and the
 * reconciler (lifecycle-worker.ts). Built from clients passed in, so tests run it against their
 * own servers.
 */
import { Queue } from 'bullmq';
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { PlatformClients } from '../../lib/platform/clients.js';
import type { Closeable } from '../../lib/platform/run-service.js';
import type { Runtime } from '../../lib/runtime/runtime.js';
import { TenantAdmin } from '../../lib/tenants/tenant-admin.js';
import { QUEUES, QUEUE_PREFIX } from '../../lib/queues.js';
import { DeadLetterStore } from '../../lib/delivery/dead-letters.js';
import { Mailbox } from '../../lib/delivery/mailbox.js';
import type { RuntimeLifecycle } from '../../lib/tenants/tenant-lifecycle.js';
import { AdminWorker, type ExtraAdminHandlers } from './admin-worker.js';
import { LifecycleWorker } from './lifecycle-worker.js';
import { closeInOrder, type CloseStep } from '../../lib/platform/close-steps.js';

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
  /** What `ztm dead list` reads and `ztm dead retry` moves back into its chat's mailbox. */
  deadLetters: DeadLetterStore;
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
  // Dead letters are served here, not by the forwarder: the janitor answers them on its own
  // (a retried letter re-enters its mailbox, whose drain job any forwarder replica then runs).
  const deadLetters = new DeadLetterStore({ redis: o.clients.redis });
  const forwardQueue = new Queue(QUEUES.forward, { connection: o.clients.bull, prefix: QUEUE_PREFIX });
  forwardQueue.on('error', (err) => o.log.warn({ err }, 'forward queue error'));
  const mailbox = new Mailbox({ redis: o.clients.redis, forwardQueue });
  const handlers: ExtraAdminHandlers = {
    'dead.list': async (a) => ({ items: await deadLetters.list({ ...(a.tenant_id ? { tenantId: a.tenant_id } : {}), ...(a.limit ? { limit: a.limit } : {}) }) }),
    'dead.retry': async (a) => (a.all ? deadLetters.retryAll(mailbox) : deadLetters.retry(mailbox, a.job_id as string)),
    ...o.handlers,
  };
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
  const steps: CloseStep[] = [
    ['janitor: admin worker', () => adminWorker.close()],
    ['janitor: lifecycle worker', () => lifecycleWorker?.close()],
    ['janitor: forward queue', () => forwardQueue.close()],
  ];
  return {
    admin,
    adminWorker,
    deadLetters,
    ...(lifecycleWorker ? { lifecycleWorker } : {}),
    // In order, each step on its own and bounded: one that fails or hangs is logged, the rest still close.
    close: () => closeInOrder(steps, o.log),
  };
}
