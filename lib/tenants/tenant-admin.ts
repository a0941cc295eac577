/**
 * What the admin commands do, with the Go system's semantics: create and a token change register
 * the webhook when ROUTER_PUBLIC_URL is set; delete removes everything the tenant left behind.
 * Called by the janitor's admin worker; the CLI never touches the registry directly.
 */
import type { Logger } from '../logger.js';
import type { RedisClient } from '../redis.js';
import { ZtmError, NotFoundError, ValidationError } from '../errors.js';
import { endpointKey, wakeLockKey, startingNoticeKey } from '../keys.js';
import { Activity } from './activity.js';
import { deriveWebhookSecret, type TenantIdentity } from '../webhook-secret.js';
import { IncarnationIndex } from './incarnation-index.js';
import { redactSecrets } from '../redact.js';
import type { TelegramClient } from '../telegram-client.js';
import type { TenantRegistry } from '../registry/tenant-registry.js';
import { toPublicTenant, type PublicTenant, type Tenant } from '../registry/tenant.js';
import { wakeFailedText } from '../wake/wake-contract.js';
import { WakeProgress, wakePhaseLine } from '../wake/wake-progress.js';

/** Updates Telegram should send us (the agent handles text, captions and button presses). */
export const ALLOWED_UPDATES = ['message', 'edited_message', 'channel_post', 'callback_query'];
export const WEBHOOK_MAX_CONNECTIONS = 40;

/** Lifecycle hooks supplied by the services that own pods (waker, janitor); optional here. */
export interface TenantLifecycle {
  wake?(tenantId: string): Promise<unknown>;
  sleep?(tenantId: string): Promise<unknown>;
  /** Stops and removes the tenant's pod, Secret and volume; with purge also its saved state. */
  remove?(tenantId: string, options: { purgeState: boolean }): Promise<void>;
  /** Rotates the runtime's copy of the bot token (Kubernetes: the tenant's Secret). */
  tokenChanged?(who: TenantIdentity, token: string): Promise<void>;
}

export interface TenantAdminOptions {
  registry: TenantRegistry;
  telegram: TelegramClient;
  redis: RedisClient;
  log: Logger;
  webhookSecret: string;
  routerPublicUrl?: string | undefined;
  lifecycle?: TenantLifecycle;
}

/**
 * `ztm tenant get`: the record plus what its wakes left: the phase of a wake in progress, and the
 * last failed wake (`wake failed: <start reason>: <message>`, and when), kept for days.
 */
export type TenantView = PublicTenant & { wake_phase?: string; last_wake_failure?: string; last_wake_failure_at?: string };

export interface WebhookOutcome {
  registered: boolean;
  url?: string;
  /** Why registration was skipped or failed (never contains a secret). */
  reason?: string;
}

export class TenantAdmin {
  private readonly o: TenantAdminOptions;

  constructor(options: TenantAdminOptions) {
    for (const k of ['registry', 'telegram', 'redis', 'log', 'webhookSecret'] as const) {
      if (!options[k]) throw new TypeError(`TenantAdmin: ${k} is required`);
    }
    this.o = options;
  }

  webhookUrl(tenantId: string): string | undefined {
    return this.o.routerPublicUrl ? `${this.o.routerPublicUrl}/tg/${tenantId}` : undefined;
  }

  async create(args: { tenant_id: string; bot_token: string; idle_timeout_s?: number }): Promise<{ tenant: PublicTenant; webhook: WebhookOutcome }> {
    const tenant = await this.o.registry.create(args);
    // Before the webhook is set: the ingress finds which secret is current (incarnation-index.ts).
    await new IncarnationIndex(this.o.redis).publish(tenant);
    this.o.log.info({ tenant: tenant.tenant_id }, 'tenant created');
    const webhook = this.o.routerPublicUrl ? await this.registerWebhookFor(tenant) : { registered: false, reason: 'ROUTER_PUBLIC_URL is not set' };
    return { tenant: toPublicTenant(tenant), webhook };
  }

  async get(tenantId: string): Promise<TenantView> {
    const progress = new WakeProgress(this.o.redis);
    const [tenant, wake, failure] = await Promise.all([this.o.registry.require(tenantId), progress.read(tenantId), progress.lastFailure(tenantId)]);
    const view: TenantView = toPublicTenant(tenant);
    // Redacted like every free text shown: a phase's detail and a reason come from APIs' messages.
    if (wake?.phase && wake.phase !== 'ready' && wake.phase !== 'failed') view.wake_phase = redactSecrets(wakePhaseLine(wake.phase, wake.detail));
    if (failure) {
      view.last_wake_failure = redactSecrets(wakeFailedText(failure));
      if (failure.at !== undefined) view.last_wake_failure_at = new Date(failure.at).toISOString();
    }
    return view;
  }

  async list(args: { limit?: number; cursor?: string }): Promise<{ items: PublicTenant[]; cursor?: string }> {
    const page = await this.o.registry.list({ limit: args.limit ?? 100, cursor: args.cursor });
    return { items: page.items.map(toPublicTenant), ...(page.cursor ? { cursor: page.cursor } : {}) };
  }

  async update(args: { tenant_id: string; bot_token?: string; idle_timeout_s?: number }): Promise<{ tenant: PublicTenant; webhook?: WebhookOutcome }> {
    const before = await this.o.registry.require(args.tenant_id);
    const patch: { bot_token?: string; idle_timeout_s?: number } = {};
    if (args.bot_token !== undefined) patch.bot_token = args.bot_token;
    if (args.idle_timeout_s !== undefined) patch.idle_timeout_s = args.idle_timeout_s;
    const after = await this.o.registry.update(args.tenant_id, patch, { expectedVersion: before.version });
    this.o.log.info({ tenant: after.tenant_id, fields: Object.keys(patch) }, 'tenant updated');
    if (patch.idle_timeout_s !== undefined) await new Activity(this.o.redis).retime(after.tenant_id, patch.idle_timeout_s);
    const tokenChanged = args.bot_token !== undefined && args.bot_token !== before.bot_token;
    if (!tokenChanged) return { tenant: toPublicTenant(after) };
    await this.o.lifecycle?.tokenChanged?.(after, after.bot_token);
    // The old bot must stop calling us; best effort, since a rotated token is usually revoked already.
    await this.o.telegram.deleteWebhook(before.bot_token).catch((err: unknown) =>
      this.o.log.warn({ tenant: after.tenant_id, err }, 'deleteWebhook on the old token failed (ignored)'),
    );
    const webhook = this.o.routerPublicUrl ? await this.registerWebhookFor(after) : { registered: false, reason: 'ROUTER_PUBLIC_URL is not set' };
    return { tenant: toPublicTenant(after), webhook };
  }

  /** Registers the tenant's webhook; throws a typed error when Telegram refuses. */
  async registerWebhook(tenantId: string): Promise<WebhookOutcome> {
    if (!this.o.routerPublicUrl) throw new ValidationError('ROUTER_PUBLIC_URL is not set on the platform: it is the public base URL Telegram calls (e.g. https://bots.example.com)');
    const tenant = await this.o.registry.require(tenantId);
    const outcome = await this.registerWebhookFor(tenant);
    if (!outcome.registered) throw new ZtmError('E_TELEGRAM', `webhook registration for ${tenantId} failed: ${outcome.reason ?? 'unknown reason'}`);
    return outcome;
  }

  async webhookInfo(tenantId: string): Promise<unknown> {
    const tenant = await this.o.registry.require(tenantId);
    return this.o.telegram.getWebhookInfo(tenant.bot_token);
  }

  /**
   * Removes the tenant and everything it left behind. The record goes last, so a delete that
   * crashed half-way is finished by running it again.
   */
  async delete(args: { tenant_id: string; purge_state?: boolean }): Promise<{ deleted: boolean; steps: string[] }> {
    const id = args.tenant_id;
    const tenant = await this.o.registry.get(id);
    const steps: string[] = [];
    if (tenant) {
      await this.o.telegram.deleteWebhook(tenant.bot_token).then(
        () => steps.push('webhook deleted'),
        (err: unknown) => {
          this.o.log.warn({ tenant: id, err }, 'deleteWebhook failed (continuing delete)');
          steps.push(`webhook not deleted: ${redactSecrets(err instanceof Error ? err.message : String(err))}`);
        },
      );
    }
    if (this.o.lifecycle?.remove) {
      await this.o.lifecycle.remove(id, { purgeState: args.purge_state === true });
      steps.push(args.purge_state ? 'pod, secret and saved state removed' : 'pod and secret removed');
    }
    await this.clearRedisLeftovers(id);
    await new IncarnationIndex(this.o.redis).remove(id);
    steps.push('endpoint cache and wake lock cleared');
    const existed = await this.o.registry.delete(id);
    if (!existed && !tenant) throw new NotFoundError(`tenant ${id} not found (leftovers, if any, were cleaned up)`);
    steps.push('record deleted');
    this.o.log.info({ tenant: id, purge_state: args.purge_state === true }, 'tenant deleted');
    return { deleted: true, steps };
  }

  /**
   * The tenant's Redis keys, one single-key command each: they hash to different slots on a Redis
   * Cluster, where one MULTI over them is refused. Every command is idempotent and the record is
   * deleted only after all of them succeeded, so a delete that failed here is completed by the next.
   * The activity indexes go first: the idle check and the reconciler then leave the tenant alone.
   */
  private async clearRedisLeftovers(id: string): Promise<void> {
    await new Activity(this.o.redis).clear(id);
    await Promise.all([this.o.redis.del(endpointKey(id)), this.o.redis.del(wakeLockKey(id)), this.o.redis.del(startingNoticeKey(id)), new WakeProgress(this.o.redis).forget(id)]);
  }

  private async registerWebhookFor(tenant: Tenant): Promise<WebhookOutcome> {
    const url = this.webhookUrl(tenant.tenant_id) as string;
    try {
      await this.o.telegram.setWebhook(tenant.bot_token, {
        url,
        secret_token: deriveWebhookSecret(this.o.webhookSecret, tenant),
        allowed_updates: ALLOWED_UPDATES,
        max_connections: WEBHOOK_MAX_CONNECTIONS,
      });
    } catch (err) {
      const reason = redactSecrets(err instanceof Error ? err.message : String(err));
      this.o.log.error({ tenant: tenant.tenant_id, err }, 'webhook registration failed');
      return { registered: false, url, reason };
    }
    this.o.log.info({ tenant: tenant.tenant_id, url }, 'webhook registered');
    return { registered: true, url };
  }
}
