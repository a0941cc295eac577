/**
 * What the Kubernetes runtime asks a pod's shim directly (on the pod IP): `/readyz` (is its agent
 * ready) and the signed `POST /claim` that hands it its tenant. Signed with the pod's own control
 * secret (pod-secrets.ts); the claim's body carries the token and state URLs and is never logged.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { request } from 'undici';
import { redactSecrets } from '../../redact.js';
import type { Tenant } from '../../registry/tenant.js';
import type { PresignedState } from '../../state/state-store.js';
import { controlSecretOf } from '../pod-secrets.js';
import { claimBody, postToShim, shimAccepted, stateUrlsBody } from '../shim-admin.js';
import type { TenantInstance } from '../runtime.js';
import { podLive } from '../kube-client.js';

export type ClaimOutcome = { ok: true } | { ok: false; status?: number; reason: string };

/** IPv6 pod IPs need brackets in a URL and in `ip:port`. */
export function hostOf(ip: string): string {
  return ip.includes(':') ? `[${ip}]` : ip;
}

export class ShimClient {
  constructor(private readonly o: { shimPort: number; agentPort: number; warmPoolSecret: string; webhookSecret: string | undefined }) {}

  private base(pod: V1Pod): string {
    return `http://${hostOf(pod.status?.podIP ?? '')}:${this.o.shimPort}`;
  }

  instanceOf(pod: V1Pod, tenantId: string): TenantInstance {
    const ip = pod.status?.podIP ?? '';
    return { tenantId, podName: pod.metadata?.name ?? '?', ip, address: ip ? `${hostOf(ip)}:${this.o.agentPort}` : '' };
  }

  /**
   * Live: Running, Ready, not deleting, and its agent ready. A pod's Ready condition is the shim's
   * /healthz (pod-spec.ts), so its agent's readiness is asked from the shim directly.
   */
  async isLive(pod: V1Pod): Promise<boolean> {
    if (!podLive(pod)) return false;
    try {
      const res = await request(`${this.base(pod)}/readyz`, { headersTimeout: 2000, bodyTimeout: 2000 });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  /** `POST /claim`: 200 once the agent restored its state and is ready. */
  async claim(pod: V1Pod, tenant: Tenant, state: PresignedState, timeoutMs: number): Promise<ClaimOutcome> {
    if (!pod.status?.podIP) return { ok: false, reason: 'pod has no IP' };
    try {
      const res = await postToShim(this.base(pod), '/claim', controlSecretOf(this.o.warmPoolSecret, pod), claimBody(tenant, state, this.o.webhookSecret), Math.max(1000, timeoutMs));
      if (res.status === 200) return { ok: true };
      let detail = '';
      try {
        const parsed = JSON.parse(res.text) as { error?: unknown };
        if (typeof parsed.error === 'string') detail = `: ${parsed.error.slice(0, 200)}`;
      } catch {
        // not JSON: status only
      }
      return { ok: false, status: res.status, reason: redactSecrets(`HTTP ${res.status}${detail}`) };
    } catch (err) {
      return { ok: false, reason: redactSecrets(`${(err as Error).name}: ${(err as Error).message}`.slice(0, 200)) };
    }
  }

  /** `POST /state-urls`: fresh presigned URLs; false when the shim did not take them. */
  refreshState(pod: V1Pod, state: PresignedState): Promise<boolean> {
    return shimAccepted(this.base(pod), '/state-urls', controlSecretOf(this.o.warmPoolSecret, pod), stateUrlsBody(state), 5000);
  }
}
