/**
 * The Secrets and volumes the runtime keeps per tenant and for the pool:
 * - `zeroclaw-<id>-token` (BOT_TOKEN, and the tenant's derived webhook secret), created or rotated
 *   in place (a merge patch of the keys that differ);
 * - `zeroclaw-warm-pool` (only the model provider's key), made exactly that: a master control
 *   secret an older version kept there is removed;
 * - the tenant's PVCs (label tenant=<id>), deleted with it.
 * Values are never logged nor put in an error.
 */
import { PatchStrategy, setHeaderOptions, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from '../../logger.js';
import { assertTenantId } from '../../validate.js';
import type { TenantIdentity } from '../../webhook-secret.js';
import { isConflict, isNotFound } from '../kube-client.js';
import { LABEL_TENANT, secretUpdatePatch, tokenSecretManifest, tokenSecretName, warmPoolSecretManifest, type Ownership } from '../pod-spec.js';
import { tenantAgentSecrets } from '../tenant-agent-secrets.js';
import { apiError, type CallContext, type KubeApi } from './kube-api.js';

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface TenantSecretsOptions {
  api: KubeApi;
  namespace: string;
  log: Logger;
  webhookSecret: string | undefined;
  llmApiKey: string | undefined;
  /** The release's owner for what is created (pod-owner.ts), read once. */
  ownership: () => Promise<Ownership>;
}

export class TenantSecrets {
  private warmSecret: Promise<void> | undefined;

  constructor(private readonly o: TenantSecretsOptions) {}

  /** Creates or rotates `zeroclaw-<id>-token` (data BOT_TOKEN). */
  async ensureToken(who: TenantIdentity, botToken: string, ctx?: CallContext): Promise<void> {
    const id = assertTenantId(who.tenant_id);
    const webhookSecret = this.o.webhookSecret ? tenantAgentSecrets(this.o.webhookSecret, who).webhookSecret : undefined;
    await this.upsert(tokenSecretManifest(this.o.namespace, id, botToken, webhookSecret, await this.o.ownership()), `token secret ${tokenSecretName(id)}`, {}, ctx);
  }

  /** `zeroclaw-warm-pool`, once per process (again after a failure). */
  ensureWarmPool(ctx?: CallContext): Promise<void> {
    this.warmSecret ??= this.o.ownership()
      .then((ownership) => this.upsert(warmPoolSecretManifest(this.o.namespace, this.o.llmApiKey, ownership), 'warm pool secret', { exact: true }, ctx))
      .catch((err: unknown) => {
        this.warmSecret = undefined;
        throw err;
      });
    return this.warmSecret;
  }

  /** Deletes `zeroclaw-<id>-token`; false when there was none. */
  async deleteToken(tenantId: string): Promise<boolean> {
    const name = tokenSecretName(assertTenantId(tenantId));
    try {
      await this.o.api.call({ verb: 'delete', object: `secret ${name}` }, (opts) => this.o.api.core.deleteNamespacedSecret({ name, namespace: this.o.namespace }, opts));
      this.o.log.info({ tenant: tenantId, secret: name }, 'tenant token secret deleted');
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw apiError(`delete secret ${name}`, err);
    }
  }

  /** Deletes the PVCs labelled tenant=<id>; how many were deleted. */
  async deleteVolumes(tenantId: string): Promise<number> {
    const id = assertTenantId(tenantId);
    let claims: string[] = [];
    try {
      const res = await this.o.api.call({ verb: 'list', object: `persistentvolumeclaims ${LABEL_TENANT}=${id}` },
        (opts) => this.o.api.core.listNamespacedPersistentVolumeClaim({ namespace: this.o.namespace, labelSelector: `${LABEL_TENANT}=${id}` }, opts));
      claims = res.items.map((c) => c.metadata?.name ?? '').filter((name) => name !== '');
    } catch (err) {
      if (!isNotFound(err)) throw apiError(`list PVCs of ${id}`, err);
    }
    let deleted = 0;
    for (const name of claims) {
      try {
        await this.o.api.call({ verb: 'delete', object: `persistentvolumeclaim ${name}` },
          (opts) => this.o.api.core.deleteNamespacedPersistentVolumeClaim({ name, namespace: this.o.namespace }, opts));
        deleted++;
      } catch (err) {
        if (!isNotFound(err)) throw apiError(`delete PVC ${name}`, err);
      }
    }
    return deleted;
  }

  /**
   * Creates the Secret, or brings every key of `manifest.data`, its labels and owner up to date in
   * the existing one; `exact`: also removes the keys the manifest does not have.
   */
  private async upsert(manifest: V1Secret, what: string, options: { exact?: boolean }, ctx?: CallContext, depth = 0): Promise<void> {
    const name = manifest.metadata?.name ?? '';
    const api = this.o.api;
    try {
      await api.call({ verb: 'create', object: `secret ${name}` }, (opts) => api.core.createNamespacedSecret({ namespace: this.o.namespace, body: manifest }, opts), ctx);
      return;
    } catch (err) {
      if (!isConflict(err)) throw apiError(`create ${what}`, err);
    }
    let existing: V1Secret;
    try {
      existing = await api.call({ verb: 'get', object: `secret ${name}` }, (opts) => api.core.readNamespacedSecret({ name, namespace: this.o.namespace }, opts), ctx);
    } catch (err) {
      if (isNotFound(err) && depth < 3) return this.upsert(manifest, what, options, ctx, depth + 1); // deleted meanwhile
      throw apiError(`read ${what}`, err);
    }
    // A merge patch of what differs (data, removed keys, labels, the owner); none when nothing does.
    const body = secretUpdatePatch(manifest, existing, options);
    if (body === undefined) return;
    try {
      await api.call({ verb: 'patch', object: `secret ${name}` }, (opts) => api.core.patchNamespacedSecret({ name, namespace: this.o.namespace, body }, opts), ctx, MERGE_PATCH);
      this.o.log.info({ secret: name }, `${what} updated`);
    } catch (err) {
      throw apiError(`update ${what}`, err);
    }
  }
}
