/**
 * The wake queue's contract, in one place: who asks for a wake (the drainer, `ztm tenant wake`),
 * who runs it (the waker) and who inspects it (the reconciler) all go through this module. It
 * holds the request (job name, payload type and parser, the per-tenant deduplication id and the
 * job options) and the failure a wake leaves behind for the drains waiting on it (a stable code
 * plus the operator-facing reason). Nobody matches on message text: switch on `code`.
 */
import type { Job, JobsOptions, Queue } from 'bullmq';
import { ZtmError, type ErrorCode } from '../errors.js';
import { TENANT_ID_PATTERN } from '../validate.js';
import { START_FAILURE_REASONS, type StartFailureReason } from '../runtime/runtime.js';

/** The BullMQ job name of a wake request (the queue is QUEUES.wake). */
export const WAKE_JOB_NAME = 'wake';

/** A wake job's payload. */
export interface WakeJobData {
  /** The tenant to wake. */
  t: string;
}

/**
 * One pending wake per tenant: requests made while one is waiting or running fold into it. The
 * waker releases the id (releaseWakeRequest) before it announces the wake's end, so a request made
 * after the announcement always starts a new wake; the job id itself is BullMQ's, new per wake
 * (a fixed `wake.<t>` job id outlived the announcement and swallowed the next request).
 */
export const wakeDedupId = (tenantId: string): string => `wake.${tenantId}`;

export function wakeJobOptions(tenantId: string): JobsOptions {
  return { deduplication: { id: wakeDedupId(tenantId) }, removeOnComplete: true, removeOnFail: true };
}

/** Asks the waker to wake the tenant (no-op while a wake of it is pending). */
export async function requestWake(queue: Queue, tenantId: string): Promise<void> {
  if (!TENANT_ID_PATTERN.test(tenantId)) throw new ZtmError('E_VALIDATION', 'requestWake: invalid tenant id');
  const data: WakeJobData = { t: tenantId };
  await queue.add(WAKE_JOB_NAME, data, wakeJobOptions(tenantId));
}

/** The id of the tenant's pending (waiting, delayed or running) wake job, if any. */
export async function pendingWakeJobId(queue: Queue, tenantId: string): Promise<string | undefined> {
  return (await queue.getDeduplicationJobId(wakeDedupId(tenantId))) ?? undefined;
}

/** Ends this job's hold on its tenant's wake requests (only if it still holds them). */
export async function releaseWakeRequest(job: Job): Promise<void> {
  await job.removeDeduplicationKey();
}

/** The payload of a wake job, or undefined when it is not one (dropped with a log line). */
export function parseWakeJob(data: unknown): WakeJobData | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const t = (data as { t?: unknown }).t;
  return typeof t === 'string' && TENANT_ID_PATTERN.test(t) ? { t } : undefined;
}

/**
 * Why a wake failed, as its readers act on it:
 * - unknown-tenant: no registry record (the drainer re-reads the registry once, then dead-letters);
 * - start-failed: the runtime could not start the agent or it never got ready (retried per update);
 * - state-unavailable: fresh state URLs could not be made (the state store is down);
 * - internal: anything else (the registry, Redis).
 */
export const WAKE_FAILURE_CODES = ['unknown-tenant', 'start-failed', 'state-unavailable', 'internal'] as const;
export type WakeFailureCode = (typeof WAKE_FAILURE_CODES)[number];

export interface WakeFailure {
  code: WakeFailureCode;
  /** One line for operators, no secret (an error's message). */
  reason: string;
  /**
   * start-failed only: why the runtime's start failed (RuntimeError.reason: image_pull_failed,
   * unschedulable, crash_loop, start_timeout, api_refused, api_unavailable, pod_lost), when it said.
   */
  start_reason?: StartFailureReason;
  /** When the wake failed (epoch ms); set by the waker. */
  at?: number;
}

/**
 * The operator-facing text of a failed wake (dead letters, `ztm`): `wake failed: <reason>`, or
 * `wake failed: <start_reason>: <reason>` when the runtime said why its start failed.
 */
export const WAKE_FAILED_PREFIX = 'wake failed: ';
export const wakeFailedText = (f: WakeFailure | undefined): string =>
  `${WAKE_FAILED_PREFIX}${f?.start_reason ? `${f.start_reason}: ` : ''}${f?.reason ?? 'unknown'}`;

const MAX_REASON = 300;
const CODES: ReadonlySet<string> = new Set(WAKE_FAILURE_CODES);
const START_REASONS: ReadonlySet<string> = new Set(START_FAILURE_REASONS);

/** A RuntimeError's `reason`, if `err` carries one of the contract's (lib/runtime/runtime.ts). */
export function startFailureReasonOf(err: unknown): StartFailureReason | undefined {
  const reason = (err as { reason?: unknown } | null | undefined)?.reason;
  return typeof reason === 'string' && START_REASONS.has(reason) ? (reason as StartFailureReason) : undefined;
}

/** As stored beside the tenant (Endpoints.recordWakeFailure, WakeProgress.recordFailure). */
export function encodeWakeFailure(f: WakeFailure): string {
  return JSON.stringify({
    code: f.code, reason: f.reason.slice(0, MAX_REASON),
    ...(f.start_reason ? { start_reason: f.start_reason } : {}), ...(f.at !== undefined ? { at: f.at } : {}),
  });
}

/** Reads a stored failure; a value of an older platform (plain text) reads as `internal`. */
export function decodeWakeFailure(stored: string | null | undefined): WakeFailure | undefined {
  if (stored === null || stored === undefined) return undefined;
  try {
    const v = JSON.parse(stored) as { code?: unknown; reason?: unknown; start_reason?: unknown; at?: unknown };
    if (typeof v === 'object' && v !== null && typeof v.code === 'string' && CODES.has(v.code) && typeof v.reason === 'string') {
      const startReason = startFailureReasonOf(v.start_reason === undefined ? undefined : { reason: v.start_reason });
      const at = typeof v.at === 'number' && Number.isFinite(v.at) && v.at > 0 ? v.at : undefined;
      return { code: v.code as WakeFailureCode, reason: v.reason, ...(startReason ? { start_reason: startReason } : {}), ...(at !== undefined ? { at } : {}) };
    }
  } catch {
    /* plain text below */
  }
  return { code: 'internal', reason: stored.slice(0, MAX_REASON) };
}

/** A wake that failed: thrown by the waker (its job fails with it), carrying the typed failure. */
export class WakeFailedError extends ZtmError {
  readonly failure: WakeFailure;
  constructor(failure: WakeFailure, options?: { cause?: unknown }) {
    super(errorCodeOf(failure.code), wakeFailedText(failure), options);
    this.failure = failure;
  }
}

function errorCodeOf(code: WakeFailureCode): ErrorCode {
  switch (code) {
    case 'unknown-tenant': return 'E_NOT_FOUND';
    case 'start-failed': return 'E_RUNTIME';
    case 'state-unavailable': return 'E_RUNTIME';
    case 'internal': return 'E_INTERNAL';
  }
}
