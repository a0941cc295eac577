/**
 * What the waker, janitor and delete path need from where agents run. Two implementations: the
 * local runtime (child processes on 127.0.0.1, the embedded default) and Kubernetes pods.
 */
import type { Tenant } from '../registry/tenant.js';
import type { TenantIdentity } from '../webhook-secret.js';
import type { PresignedState } from '../state/state-store.js';

export interface TenantInstance {
  tenantId: string;
  /** `zeroclaw-<id>`: the pod name (local runtime: the same name for the child process). */
  podName: string;
  /** Where the forwarder reaches the agent: `ip:port`. */
  address: string;
  ip: string;
}

export interface StartResult {
  instance: TenantInstance;
  /** How it was started: a claimed warm pod, or a cold start. */
  path: 'warm' | 'cold';
}

/** Where a start is; reported as it changes (never with secrets). */
export type StartPhase = 'scheduling' | 'waiting-for-node' | 'pulling-image' | 'starting' | 'restoring-state' | 'ready';

export interface StartProgress {
  phase: StartPhase;
  /** E.g. the Pending reason or the scheduler's message, redacted. */
  detail?: string;
}

export interface StartOptions {
  /** Called on every phase change (and may be called again with the same phase as a heartbeat, at most every few s). */
  onProgress?: (p: StartProgress) => void;
  /** Absolute deadline (epoch ms) for the whole start; the runtime also applies its own bound (COLD_START_TIMEOUT_S). */
  deadlineMs?: number;
}

/** Why a start failed, carried by RuntimeError.reason (stable codes: the waker maps them to wake failure codes). */
export type StartFailureReason =
  | 'image_pull_failed'
  | 'unschedulable'
  | 'crash_loop'
  | 'start_timeout'
  /** 403/422 from the API: the message names the verb, the object and the API's own message. */
  | 'api_refused'
  /** Timeouts, 5xx, 429 or connection errors after the retries. */
  | 'api_unavailable'
  | 'pod_lost';

export const START_FAILURE_REASONS: readonly StartFailureReason[] = [
  'image_pull_failed', 'unschedulable', 'crash_loop', 'start_timeout', 'api_refused', 'api_unavailable', 'pod_lost',
];

export interface StopOptions {
  /** Grace for the final checkpoint; 0 kills at once (the runbook's force kill). */
  graceS?: number;
}

/**
 * The warm pool: pre-started shims waiting for an authenticated claim. The pool-keeper keeps its
 * size at WARM_POOL_TARGET; `Runtime.start` claims from it first (atomically: no two wakers get the
 * same member) and falls back to a cold start.
 */
export interface WarmPool {
  /** Members counted toward the target, including those still starting. */
  countWarm(): Promise<number>;
  /** Members ready to be claimed now (the warm pool size operators care about). */
  countReadyWarm(): Promise<number>;
  /** Starts `n` new members; resolves once they are created (not necessarily ready). */
  addWarm(n: number): Promise<void>;
  /** Removes `n` surplus members, not-ready ones first. */
  removeWarm(n: number): Promise<void>;
}

export interface Runtime extends WarmPool {
  readonly kind: 'local' | 'kubernetes';
  /**
   * Starts the tenant's agent and resolves once it is ready (not merely running): claims a warm
   * member when one is ready (logs `warm pool hit: reusing node`), else starts cold (logs
   * `warm pool miss: cold start`). Waits for a stop of the same tenant still in progress first, so
   * the new agent restores the state the old one saved. Reports its phases through
   * `options.onProgress`; a failure is a RuntimeError whose `reason` says why (StartFailureReason).
   */
  start(tenant: Tenant, state: PresignedState, options?: StartOptions): Promise<StartResult>;
  /** The tenant's live and ready instance, if any. */
  find(tenantId: string): Promise<TenantInstance | undefined>;
  /** Gracefully stops the tenant's agent (state checkpointed) and resolves once it is gone. */
  stop(tenantId: string, options?: StopOptions): Promise<boolean>;
  /**
   * The delete path: stops the agent and removes everything the runtime holds for the tenant (pod,
   * token Secret, volumes; local: its workspace). Idempotent.
   */
  removeTenant(tenantId: string): Promise<void>;
  /**
   * Hands the tenant's running shim fresh presigned state URLs (`POST /state-urls`, authenticated),
   * before the ones it got at wake expire. False when no live agent runs for the tenant.
   */
  refreshState(tenantId: string, state: PresignedState): Promise<boolean>;
  /** A token change: the runtime's copy (Kubernetes: the tenant's Secret) is rotated now; a running agent keeps the old token until restarted. */
  updateToken(who: TenantIdentity, token: string): Promise<void>;
  /** Every tenant instance this runtime knows of (for the reconciler). */
  list(): Promise<TenantInstance[]>;
  /** Called when an instance dies on its own (crash): the platform drops its endpoint. */
  onExit(listener: (tenantId: string, podName: string) => void): void;
  close(): Promise<void>;
}

export const podNameOf = (tenantId: string): string => `zeroclaw-${tenantId}`;
