/**
 * The admin queue's wire format: what `ztm` enqueues and what the janitor's admin worker returns.
 * Payloads are validated again on the worker side: a queue is a boundary like any other.
 */
import { ValidationError } from '../errors.js';
import { assertBotToken, assertIdleTimeout, assertTenantId } from '../validate.js';

export const ADMIN_COMMANDS = [
  'tenant.create',
  'tenant.get',
  'tenant.list',
  'tenant.update',
  'tenant.delete',
  'tenant.wake',
  'tenant.sleep',
  'webhook.register',
  'webhook.info',
  'dead.list',
  'dead.retry',
] as const;
export type AdminCommand = (typeof ADMIN_COMMANDS)[number];

export interface AdminArgs {
  'tenant.create': { tenant_id: string; bot_token: string; idle_timeout_s?: number };
  'tenant.get': { tenant_id: string };
  'tenant.list': { limit?: number; cursor?: string };
  'tenant.update': { tenant_id: string; bot_token?: string; idle_timeout_s?: number };
  'tenant.delete': { tenant_id: string; purge_state?: boolean };
  'tenant.wake': { tenant_id: string };
  'tenant.sleep': { tenant_id: string };
  'webhook.register': { tenant_id: string };
  'webhook.info': { tenant_id: string };
  'dead.list': { tenant_id?: string; limit?: number };
  'dead.retry': { job_id?: string; all?: boolean };
}

/** What a finished admin job returns: a result, or a typed error that crossed the queue. */
export type AdminReply = { ok: true; result: unknown } | { ok: false; code: string; message: string };

/** Commands that do not name one tenant (the rest require a valid tenant_id). */
const TENANTLESS: ReadonlySet<AdminCommand> = new Set(['tenant.list', 'dead.list', 'dead.retry']);

export function isAdminCommand(name: string): name is AdminCommand {
  return (ADMIN_COMMANDS as readonly string[]).includes(name);
}

function obj(data: unknown): Record<string, unknown> {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new ValidationError('admin payload must be an object');
  return data as Record<string, unknown>;
}

function optionalInt(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new ValidationError(`${name} must be a whole number from ${min} to ${max}`);
  return v;
}

/** Validates a payload for `command`; throws ValidationError with a one-line reason. */
export function parseAdminArgs<C extends AdminCommand>(command: C, data: unknown): AdminArgs[C] {
  const d = obj(data);
  const out: Record<string, unknown> = {};
  if (!TENANTLESS.has(command) || d.tenant_id !== undefined) out.tenant_id = assertTenantId(d.tenant_id);
  if (d.bot_token !== undefined) out.bot_token = assertBotToken(d.bot_token);
  if (command === 'tenant.create') out.bot_token = assertBotToken(d.bot_token);
  if (d.idle_timeout_s !== undefined) out.idle_timeout_s = assertIdleTimeout(d.idle_timeout_s);
  if (command === 'tenant.update' && out.bot_token === undefined && out.idle_timeout_s === undefined) {
    throw new ValidationError('nothing to update: give --bot-token and/or --idle-timeout');
  }
  if (d.limit !== undefined) out.limit = optionalInt(d.limit, 'limit', 1, 1000);
  if (d.cursor !== undefined) {
    if (typeof d.cursor !== 'string' || d.cursor.length > 2048) throw new ValidationError('cursor must be a string');
    out.cursor = d.cursor;
  }
  if (d.purge_state !== undefined) out.purge_state = d.purge_state === true;
  if (d.job_id !== undefined) {
    if (typeof d.job_id !== 'string' || d.job_id.length === 0 || d.job_id.length > 200) throw new ValidationError('job id must be a non-empty string');
    out.job_id = d.job_id;
  }
  if (d.all !== undefined) out.all = d.all === true;
  if (command === 'dead.retry' && out.job_id === undefined && out.all !== true) throw new ValidationError('give a dead-letter job id or --all');
  return out as unknown as AdminArgs[C];
}
