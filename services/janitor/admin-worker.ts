/**
 * Executes `ztm` admin jobs. Every job completes with an AdminReply: typed errors cross the queue as
 * `{ ok: false, code, message }` so the CLI can print one line and exit non-zero.
 */
import { Worker, type Job } from 'bullmq';
import type { Logger } from '../../lib/logger.js';
import { QUEUES, QUEUE_PREFIX } from '../../lib/queues.js';
import type { RedisClient } from '../../lib/redis.js';
import { ZtmError, ValidationError } from '../../lib/errors.js';
import { redactSecrets } from '../../lib/redact.js';
import { isAdminCommand, parseAdminArgs, type AdminArgs, type AdminCommand, type AdminReply } from '../../lib/admin/admin-protocol.js';
import type { TenantAdmin } from '../../lib/tenants/tenant-admin.js';
import { closeWorker } from '../../lib/platform/close-worker.js';

/** Commands served by other components (dead letters by the forwarder's store, wake/sleep by lifecycle). */
/** Reports a step of a long command (e.g. a wake) to the waiting `ztm`. */
export type ProgressReporter = (message: string) => void;
export type ExtraAdminHandlers = Partial<{ [C in AdminCommand]: (args: AdminArgs[C], progress: ProgressReporter) => Promise<unknown> }>;

export interface AdminWorkerOptions {
  connection: RedisClient;
  log: Logger;
  admin: TenantAdmin;
  handlers?: ExtraAdminHandlers;
  concurrency?: number;
}

export class AdminWorker {
  readonly worker: Worker;
  private readonly log: Logger;
  private readonly admin: TenantAdmin;
  private readonly handlers: ExtraAdminHandlers;

  constructor(options: AdminWorkerOptions) {
    if (!options.connection || !options.log || !options.admin) throw new TypeError('AdminWorker: connection, log and admin are required');
    this.log = options.log;
    this.admin = options.admin;
    this.handlers = options.handlers ?? {};
    this.worker = new Worker(QUEUES.admin, (job) => this.process(job), {
      connection: options.connection,
      prefix: QUEUE_PREFIX,
      concurrency: options.concurrency ?? 4,
      // Admin commands are not idempotent enough to replay silently after a crash.
      maxStalledCount: 0,
    });
    this.worker.on('error', (err) => this.log.error({ err }, 'admin worker error'));
  }

  private async process(job: Job): Promise<AdminReply> {
    const log = this.log.child({ job: job.id, command: job.name });
    const started = Date.now();
    try {
      if (!isAdminCommand(job.name)) throw new ValidationError(`unknown admin command ${JSON.stringify(job.name.slice(0, 40))}`);
      const progress: ProgressReporter = (message) => void job.updateProgress({ message: redactSecrets(message).slice(0, 300) }).catch(() => undefined);
      const result = await this.dispatch(job.name, job.data, progress);
      log.info({ ms: Date.now() - started }, 'admin command done');
      return { ok: true, result };
    } catch (err) {
      if (err instanceof ZtmError) {
        log.info({ code: err.code, ms: Date.now() - started }, `admin command refused: ${err.message}`);
        return { ok: false, code: err.code, message: redactSecrets(err.message) };
      }
      log.error({ err }, 'admin command failed');
      return { ok: false, code: 'E_INTERNAL', message: redactSecrets(err instanceof Error ? err.message : String(err)) };
    }
  }

  private async dispatch(command: AdminCommand, data: unknown, progress: ProgressReporter): Promise<unknown> {
    const args = parseAdminArgs(command, data);
    const extra = this.handlers[command] as ((a: typeof args, p: ProgressReporter) => Promise<unknown>) | undefined;
    if (extra) return extra(args, progress);
    switch (command) {
      case 'tenant.create': return this.admin.create(args as AdminArgs['tenant.create']);
      case 'tenant.get': return this.admin.get((args as AdminArgs['tenant.get']).tenant_id);
      case 'tenant.list': return this.admin.list(args as AdminArgs['tenant.list']);
      case 'tenant.update': return this.admin.update(args as AdminArgs['tenant.update']);
      case 'tenant.delete': return this.admin.delete(args as AdminArgs['tenant.delete']);
      case 'webhook.register': return this.admin.registerWebhook((args as AdminArgs['webhook.register']).tenant_id);
      case 'webhook.info': return this.admin.webhookInfo((args as AdminArgs['webhook.info']).tenant_id);
      default: throw new ValidationError(`${command} is not available on this platform yet`);
    }
  }

  /** Stops taking jobs and waits for the running ones to finish. */
  async close(): Promise<void> {
    await closeWorker(this.worker);
  }
}
