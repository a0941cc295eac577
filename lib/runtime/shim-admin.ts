/**
 * The shim's authenticated admin calls (`POST /claim`, `/state-urls`, `/checkpoint`), made by both
 * runtimes: signed with the shim's control secret (shim-auth.ts), a JSON body, the answer's status
 * and text. Throws on transport errors.
 */
import { request } from 'undici';
import type { Tenant } from '../registry/tenant.js';
import type { PresignedState } from '../state/state-store.js';
import { SHIM_AUTH_HEADER, signShimCall } from './shim-auth.js';
import { tenantAgentSecrets } from './tenant-agent-secrets.js';

export type ShimAdminPath = '/claim' | '/state-urls' | '/checkpoint';

export async function postToShim(base: string, route: ShimAdminPath, secret: string, body: Record<string, unknown>, timeoutMs: number): Promise<{ status: number; text: string }> {
  const text = JSON.stringify(body);
  const res = await request(`${base}${route}`, {
    method: 'POST',
    headers: { [SHIM_AUTH_HEADER]: signShimCall(secret, 'POST', route, text), 'content-type': 'application/json' },
    body: text,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  return { status: res.statusCode, text: await res.body.text().catch(() => '') };
}

/** True when the shim answered 200; false on any other answer or when it could not be reached. */
export async function shimAccepted(base: string, route: ShimAdminPath, secret: string, body: Record<string, unknown>, timeoutMs: number): Promise<boolean> {
  try {
    return (await postToShim(base, route, secret, body, timeoutMs)).status === 200;
  } catch {
    return false;
  }
}

/**
 * The body of `POST /claim` (agent/shim-config.ts parseClaim), the same from both runtimes: the
 * tenant (and its incarnation), its token, its state URLs, and the secrets derived for it when the
 * master is known.
 */
export function claimBody(tenant: Tenant, state: PresignedState, webhookSecret: string | undefined): Record<string, string> {
  const body: Record<string, string> = { tenant_id: tenant.tenant_id, bot_token: tenant.bot_token };
  // The shim then accepts state URLs of this incarnation's object only (agent/state-url-guard.ts).
  if (tenant.incarnation) body.incarnation = tenant.incarnation;
  if (state.getUrl) body.state_get_url = state.getUrl;
  if (state.putUrl) body.state_put_url = state.putUrl;
  if (state.legacyGetUrl) body.state_legacy_get_url = state.legacyGetUrl;
  if (webhookSecret) {
    const derived = tenantAgentSecrets(webhookSecret, tenant);
    body.webhook_secret = derived.webhookSecret;
    body.agent_token_sha256 = derived.agentTokenSha256;
  }
  return body;
}

/** The body of `POST /state-urls`: fresh presigned URLs for the state the shim already guards. */
export function stateUrlsBody(state: PresignedState): Record<string, string> {
  return { state_get_url: state.getUrl, state_put_url: state.putUrl };
}
