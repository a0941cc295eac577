/**
 * The shim's guard of where the tenant's state goes: a presigned URL is accepted only for this
 * tenant's own object (`…/tenants/<id>/state.tar.gz`, or `…/brain.db` for the older form's GET),
 * and once the first URLs are bound (from the pod's environment or the authenticated claim), later
 * ones (POST /state-urls) must name the very same object: same origin, same path, only a fresh
 * signature. Whoever learns a control secret still cannot point the checkpoints at a collector or
 * at another tenant's key. Errors name what is wrong, never the URL (its query is a credential).
 */
import { ValidationError } from '../lib/errors.js';

export type StateUrlKind = 'state' | 'legacy';

const OBJECT: Record<StateUrlKind, string> = { state: 'state.tar.gz', legacy: 'brain.db' };

/** `origin + pathname` of a URL: the object it names, without the signature. */
export function objectOf(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

export function assertOwnObject(name: string, url: string | undefined, tenantId: string, kind: StateUrlKind): void {
  if (url === undefined) return;
  let path: string;
  try {
    path = decodeURIComponent(new URL(url).pathname);
  } catch {
    throw new ValidationError(`${name}: not a URL`);
  }
  if (!path.endsWith(`/tenants/${tenantId}/${OBJECT[kind]}`)) {
    throw new ValidationError(`${name}: must name this tenant's own state object (tenants/${tenantId}/${OBJECT[kind]})`);
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
