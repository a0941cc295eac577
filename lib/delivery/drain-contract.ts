/**
 * The drain job on the `{forward}` queue, in one place: its name, payload, job id and options (what
 * the ingress's mailbox adds) and the parser the forwarder reads it with. A job from anywhere else
 * (an older version, a hand-made one) that does not parse is dropped with one error line, never
 * half-processed.
 */
import { TENANT_ID_PATTERN } from '../validate.js';

export const DRAIN_JOB_NAME = 'drain';

/** Payload: the tenant and the chat whose mailbox the job drains (short names: one per update). */
export interface DrainJobData {
  t: string;
  c: string;
}

/** Job id of a drain generation `<tenant>.<chat>.<gen>`: unique per responsibility period, stable for idempotent re-adds. */
export const drainJobId = (tenantId: string, chatId: string, gen: string): string => `${tenantId}.${chatId}.${gen}`;

/**
 * Options of every drain job (schedule() and the batched adds of accept). Attempts only matter for
 * unexpected errors (a lost lease, Redis hiccups): parking does not count.
 */
export const drainJobOpts = (jobId: string) => ({
  jobId, removeOnComplete: true, removeOnFail: 1000, attempts: 1000, backoff: { type: 'fixed' as const, delay: 1000 },
});

/** Telegram chat ids (negative for groups), or `_` for updates without a chat. */
const CHAT_ID_PATTERN = /^(-?[0-9]{1,20}|_)$/;

export interface DrainJob {
  tenantId: string;
  chatId: string;
  gen: string;
}

/** The drain a job stands for, or undefined when its payload or id is not one the mailbox makes. */
export function parseDrainJob(jobId: string | undefined, data: unknown): DrainJob | undefined {
  const d = (data ?? {}) as { t?: unknown; c?: unknown };
  const gen = String(jobId ?? '').split('.').pop() ?? '';
  if (typeof d.t !== 'string' || !TENANT_ID_PATTERN.test(d.t) || typeof d.c !== 'string' || !CHAT_ID_PATTERN.test(d.c) || !/^[0-9]+$/.test(gen)) return undefined;
  if (jobId !== drainJobId(d.t, d.c, gen)) return undefined;
  return { tenantId: d.t, chatId: d.c, gen };
}

/**
 * A runner job: serves its shard's ready list (keys.ts readyKey) for a while, draining chats as they
 * open, so a chat opening costs a list entry instead of a BullMQ job (services/forwarder/shard-runner.ts).
 * Its id is `run.<id>`, the id the accept script gave it in the shard's runners set.
 */
export const RUN_JOB_NAME = 'run';
export const runJobId = (runnerId: string): string => `run.${runnerId}`;
/** A runner that fails unexpectedly is retried; completed ones leave nothing behind. */
export const runJobOpts = (runnerId: string) => ({
  jobId: runJobId(runnerId), removeOnComplete: true, removeOnFail: 100, attempts: 1000, backoff: { type: 'fixed' as const, delay: 1000 },
});

/** The runner id of a run job, or undefined when the job is not one the mailbox makes. */
export function parseRunJob(jobId: string | undefined, name: string): string | undefined {
  const m = name === RUN_JOB_NAME ? /^run\.(r[0-9]{1,20})$/.exec(String(jobId ?? '')) : null;
  return m?.[1];
}

/** A ready-list entry: the chat opened and the generation responsible for it (and the token of the lease taken for its runner). */
export const readyEntry = (tenantId: string, chatId: string, gen: string, leaseToken?: string): string =>
  `${tenantId}\n${chatId}\n${gen}${leaseToken ? `\n${leaseToken}` : ''}`;

/** A drain a ready-list entry stands for. */
export interface ReadyDrain extends DrainJob {
  /** The token of the chat lease the accept took for the runner (mailbox-scripts.ts ACCEPT), if it did. */
  leaseToken?: string;
}

const LEASE_TOKEN_PATTERN = /^o[0-9a-f-]{36}\.[0-9]{1,6}$/;

/** The drain a ready-list entry stands for, or undefined when it is not one the accept script writes. */
export function parseReadyEntry(entry: string): ReadyDrain | undefined {
  const fields = entry.split('\n');
  if (fields.length !== 3 && fields.length !== 4) return undefined;
  const [t, c, gen, token] = fields as [string, string, string, string?];
  if (!t || !c || !gen) return undefined;
  const drain = parseDrainJob(drainJobId(t, c, gen), { t, c });
  if (!drain || token === undefined) return drain;
  return LEASE_TOKEN_PATTERN.test(token) ? { ...drain, leaseToken: token } : undefined;
}
