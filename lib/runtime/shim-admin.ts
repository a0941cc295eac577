/**
 * The shim's authenticated admin calls (`POST /claim`, `/state-urls`, `/checkpoint`), made by both
 * runtimes: signed with the shim's control secret (shim-auth.ts), a JSON body, the answer's status
 * and text. Throws on transport errors.
 */
import { request } from 'undici';
import { SHIM_AUTH_HEADER, signShimCall } from './shim-auth.js';

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
