/**
 * The tenant record as stored in the registry, its operator-safe projection, and the status
 * machine every status write must respect. Pure: no I/O, so the API layer, the reconciler and
 * the registry share one definition of what a legal state change is.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { ValidationError, ZtmError } from '../errors.js';
import { maskToken } from '../redact.js';
import { assertBotToken, assertIdleTimeout, assertTenantId } from '../validate.js';

export const TENANT_STATUSES = ['idle', 'provisioning', 'running', 'stopping', 'terminated'] as const;
export type TenantStatus = (typeof TENANT_STATUSES)[number];

export interface Tenant {
  tenant_id: string;
  /** Secret: never log or print it; use toPublicTenant() for anything leaving the process. */
  bot_token: string;
  status: TenantStatus;
  pod_name?: string;
  pod_ip?: string;
  idle_timeout_s: number;
  /** ISO-8601 UTC (`Date#toISOString()` form), so string order is time order. */
  created_at: string;
  updated_at: string;
  last_active_at?: string;
  /** Incremented by every versioned write; the basis of optimistic concurrency. */
  version: number;
  /**
   * Random, set once at create, never patched: tells apart two tenants that had the same id one
   * after the other. Secrets derived for the tenant and its state key include it. Absent on
   * records created before it existed (those keep the id-only derivations).
   */
  incarnation?: string;
}

/** base64url of at least 16 random bytes (128 bits); what newIncarnation makes is 22 characters. */
export const INCARNATION_PATTERN = /^[A-Za-z0-9_-]{22,86}$/;

/** A fresh incarnation: 128 random bits, base64url. */
export function newIncarnation(): string {
  return randomBytes(16).toString('base64url');
}

/** A tenant safe to print, log or return over HTTP: the token reduced to its public bot id. */
export type PublicTenant = Omit<Tenant, 'bot_token'> & { bot_token: string };

export function toPublicTenant(t: Tenant): PublicTenant {
  return { ...t, bot_token: maskToken(t.bot_token) };
}

const STATUS_SET: ReadonlySet<string> = new Set(TENANT_STATUSES);

export function isTenantStatus(value: unknown): value is TenantStatus {
  return typeof value === 'string' && STATUS_SET.has(value);
}

export function assertTenantStatus(value: unknown): TenantStatus {
  if (!isTenantStatus(value)) {
    const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : typeof value;
    throw new ValidationError(`invalid tenant status ${shown}: expected one of ${TENANT_STATUSES.join('|')}`);
  }
  return value;
}

/**
 * Allowed status changes (self-transitions are not listed; callers treat them as no-ops).
 *
 * - idle → provisioning: the first message wakes the tenant.
 * - provisioning → running: the pod is ready; → idle: provisioning failed or was abandoned;
 *   → stopping: the tenant was stopped or deleted while its pod was starting.
 * - running → stopping: idle timeout or operator stop; → idle: the reconciler found the pod gone
 *   (crash, node loss), so there is nothing left to stop.
 * - stopping → idle: the pod is gone. stopping → running is deliberately refused: a message that
 *   arrives mid-stop waits for idle and provisions afresh rather than resurrecting a dying pod.
 * - any non-terminal → terminated: delete. terminated is final (the record is removed next).
 */
export const TENANT_TRANSITIONS: Readonly<Record<TenantStatus, readonly TenantStatus[]>> = {
  idle: ['provisioning', 'terminated'],
  provisioning: ['running', 'idle', 'stopping', 'terminated'],
  running: ['stopping', 'idle', 'terminated'],
  stopping: ['idle', 'terminated'],
  terminated: [],
};

export function canTransition(from: TenantStatus, to: TenantStatus): boolean {
  return TENANT_TRANSITIONS[from].includes(to);
}

/** Throws ValidationError unless `from → to` is in TENANT_TRANSITIONS. */
export function assertTransition(from: TenantStatus, to: TenantStatus): void {
  assertTenantStatus(from);
  assertTenantStatus(to);
  if (canTransition(from, to)) return;
  const allowed = TENANT_TRANSITIONS[from];
  throw new ValidationError(
    `invalid status transition ${from} -> ${to}: from ${from} only ${allowed.length ? allowed.join('|') : 'nothing (final)'} is allowed`,
  );
}

/**
 * Fields a write may change. `null` removes pod_name/pod_ip (the pod is gone); `undefined` or an
 * absent key leaves a field alone. tenant_id, created_at, incarnation and version are never patchable.
 */
export interface TenantPatch {
  bot_token?: string;
  idle_timeout_s?: number;
  status?: TenantStatus;
  pod_name?: string | null;
  pod_ip?: string | null;
  last_active_at?: string;
}

const PATCH_KEYS: ReadonlySet<string> = new Set([
  'bot_token', 'idle_timeout_s', 'status', 'pod_name', 'pod_ip', 'last_active_at',
]);
/** Kubernetes object name (DNS-1123 subdomain). */
const POD_NAME_PATTERN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const ISO_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Canonical `toISOString()` form of a timestamp. Stored timestamps are compared as strings by
 * conditional writes (touchLastActive), which is only time order if every writer uses one form.
 */
export function assertIsoTimestamp(value: unknown, field = 'timestamp'): string {
  const ms = value instanceof Date ? value.getTime()
    : typeof value === 'string' && ISO_PATTERN.test(value) ? Date.parse(value) : Number.NaN;
  if (!Number.isFinite(ms)) {
    throw new ValidationError(`invalid ${field}: expected an ISO-8601 date-time such as 2024-01-31T12:00:00.000Z`);
  }
  return new Date(ms).toISOString();
}

function assertPodName(value: unknown): string {
  if (typeof value !== 'string' || !POD_NAME_PATTERN.test(value)) {
    throw new ValidationError('invalid pod_name: expected a Kubernetes object name (lowercase letters, digits, \'-\', \'.\')');
  }
  return value;
}

function assertPodIp(value: unknown): string {
  if (typeof value !== 'string' || isIP(value) === 0) {
    throw new ValidationError('invalid pod_ip: expected an IPv4 or IPv6 address');
  }
  return value;
}

/** Validates and normalises a patch; unknown keys are refused so a typo cannot be a silent no-op. */
export function validateTenantPatch(patch: unknown): TenantPatch {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
    throw new ValidationError('invalid tenant patch: expected an object');
  }
  const out: TenantPatch = {};
  for (const [key, value] of Object.entries(patch)) {
    if (!PATCH_KEYS.has(key)) {
      throw new ValidationError(`invalid tenant patch: field ${JSON.stringify(key.slice(0, 40))} cannot be changed`);
    }
    if (value === undefined) continue;
    switch (key) {
      case 'bot_token': out.bot_token = assertBotToken(value); break;
      case 'idle_timeout_s': out.idle_timeout_s = assertIdleTimeout(value); break;
      case 'status': out.status = assertTenantStatus(value); break;
      case 'pod_name': out.pod_name = value === null ? null : assertPodName(value); break;
      case 'pod_ip': out.pod_ip = value === null ? null : assertPodIp(value); break;
      case 'last_active_at': out.last_active_at = assertIsoTimestamp(value, 'last_active_at'); break;
    }
  }
  return out;
}

/**
 * Decodes a stored item. A malformed record is a storage fault, not caller input, hence
 * E_INTERNAL; the message names the field but never its value (it could be the token).
 * Numbers go through Number() so a document client configured with wrapNumbers still works.
 */
export function tenantFromItem(item: Record<string, unknown>): Tenant {
  const id = typeof item.tenant_id === 'string' ? item.tenant_id : '?';
  const bad = (field: string): never => {
    throw new ZtmError('E_INTERNAL', `tenant record ${id} is malformed: field ${field}`);
  };
  const str = (field: string): string => {
    const v = item[field];
    return typeof v === 'string' && v !== '' ? v : bad(field);
  };
  const optStr = (field: string): string | undefined => (item[field] === undefined ? undefined : str(field));
  const num = (field: string): number => {
    const v = item[field];
    const n = typeof v === 'number' ? v : v !== null && typeof v === 'object' ? Number(String(v)) : Number.NaN;
    return Number.isSafeInteger(n) ? n : bad(field);
  };
  try {
    assertTenantId(item.tenant_id);
  } catch {
    bad('tenant_id');
  }
  const status = item.status;
  if (!isTenantStatus(status)) bad('status');
  const t: Tenant = {
    tenant_id: id,
    bot_token: str('bot_token'),
    status: status as TenantStatus,
    idle_timeout_s: num('idle_timeout_s'),
    created_at: str('created_at'),
    updated_at: str('updated_at'),
    version: num('version'),
  };
  const podName = optStr('pod_name');
  const podIp = optStr('pod_ip');
  const lastActive = optStr('last_active_at');
  if (podName !== undefined) t.pod_name = podName;
  if (podIp !== undefined) t.pod_ip = podIp;
  if (lastActive !== undefined) t.last_active_at = lastActive;
  const incarnation = optStr('incarnation');
  if (incarnation !== undefined) {
    if (!INCARNATION_PATTERN.test(incarnation)) bad('incarnation');
    t.incarnation = incarnation;
  }
  return t;
}
