/**
 * The shim's authenticated admin calls (`POST /claim`, `POST /state-urls`), made by both runtimes:
 * bearer WARM_POOL_SECRET, a JSON body, the answer's status and text. Throws on transport errors.
 */
import { request } from 'undici';

export type ShimAdminPath = '/claim' | '/state-urls';

export async function postToShim(base: string, route: ShimAdminPath, secret: string, body: Record<string, unknown>, timeoutMs: number): Promise<{ status: number; text: string }> {
  const res = await request(`${base}${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
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
