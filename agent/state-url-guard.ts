/**
 * The shim's guard of where the tenant's state goes: a presigned URL is accepted only for this
 * tenant's own object, and once the first URLs are bound (from the pod's environment or the
 * authenticated claim), later ones (POST /state-urls) must name the very same object: same origin,
 * same path (and for a POST form the same key), only a fresh signature. Whoever learns a control
 * secret still cannot point the checkpoints at a collector or at another tenant's key.
 *
 * The object: `tenants/<id>/<incarnation>/state.tar.gz`. A binding that names its incarnation (a
 * claim) accepts that incarnation's object only, so a URL of an earlier tenant of the same id is
 * refused; one that does not (a cold start from the environment) accepts the incarnation-less forms
 * of records from before incarnations: `tenants/<id>/state.tar.gz` and the older `brain.db` GET.
 * The object of a presigned POST form (state-transfer.ts) is its `key` field. Errors name what is
 * wrong, never the URL (its query is a credential).
 */
import { ValidationError } from '../lib/errors.js';

export type StateUrlKind = 'state' | 'legacy';

const SEGMENT = /^[A-Za-z0-9_-]{1,128}$/;

/** The form fields of a presigned POST encoded in a URL's query (`Policy` marks one), else undefined. */
export function postFormOf(url: URL): Map<string, string> | undefined {
  if (!url.searchParams.has('Policy') && !url.searchParams.has('policy')) return undefined;
  return new Map(url.searchParams);
}

/** What a URL names: `origin + pathname` (plus `#key` for a POST form), without the signature. */
export function objectOf(url: string): string {
  const u = new URL(url);
  const form = postFormOf(u);
  return `${u.origin}${u.pathname}${form ? `#${form.get('key') ?? ''}` : ''}`;
}

/** The object key a URL names: a POST form's `key` field, else the path (after the bucket, when path-style). */
function keyOf(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ValidationError('not a URL');
  }
  const form = postFormOf(u);
  if (form) return form.get('key') ?? '';
  try {
    return decodeURIComponent(u.pathname);
  } catch {
    throw new ValidationError('undecodable path');
  }
}

function accepted(key: string, tenantId: string, kind: StateUrlKind, incarnation: string | undefined): boolean {
  const parts = key.split('/');
  // The key is the path's tail: `…/tenants/<id>/[<incarnation>/]<object>`.
  const at = parts.lastIndexOf('tenants', parts.length - 3);
  if (at < 0 || parts[at + 1] !== tenantId) return false;
  const rest = parts.slice(at + 2);
  if (kind === 'legacy') return incarnation === undefined && rest.length === 1 && rest[0] === 'brain.db';
  if (incarnation !== undefined) return rest.length === 2 && rest[0] === incarnation && rest[1] === 'state.tar.gz';
  return rest.length === 1 ? rest[0] === 'state.tar.gz' : rest.length === 2 && SEGMENT.test(rest[0] ?? '') && rest[1] === 'state.tar.gz';
}

export function assertOwnObject(name: string, url: string | undefined, tenantId: string, kind: StateUrlKind, incarnation?: string): void {
  if (url === undefined) return;
  let key: string;
  try {
    key = keyOf(url);
  } catch (err) {
    throw new ValidationError(`${name}: ${(err as Error).message}`);
  }
  if (!accepted(key, tenantId, kind, incarnation)) {
    const expected = kind === 'legacy' ? `tenants/${tenantId}/brain.db` : `tenants/${tenantId}/${incarnation ?? '[<incarnation>/]'}${incarnation ? '/' : ''}state.tar.gz`;
    throw new ValidationError(`${name}: must name this tenant's own state object (${expected})`);
  }
}

/** The objects the first URLs named: replacements must name the same ones. */
export class StateUrlPins {
  private readonly pinned = new Map<string, string>();

  /** Pins (first time) or checks (later) the object of each given URL. */
  check(name: string, url: string | undefined): void {
    if (url === undefined) return;
    const object = objectOf(url);
    const before = this.pinned.get(name);
    if (before === undefined) this.pinned.set(name, object);
    else if (before !== object) throw new ValidationError(`${name}: must name the same object as the URL this shim was started with`);
  }
}
