/**
 * Closing a BullMQ worker within a bound. `Worker.close()` first waits for the jobs in flight; one
 * that never ends (a drain on a shard whose master died, a command queued for a node that is gone)
 * holds it forever, and so does anything behind it in the same close: the worker's lock manager
 * keeps re-arming its lock-renewal timer and the process can never exit. Past the bound the jobs
 * are left to BullMQ's stall recovery (their locks expire and another worker takes them again,
 * which every job here is written to survive), the worker's connections are dropped and its lock
 * renewal stopped.
 */
import type { Worker } from 'bullmq';
import { TIMED_OUT, withTimeout } from './close-steps.js';

/** Inside the default close step (close-steps.ts DEFAULT_STEP_TIMEOUT_MS), so the fallback runs before the step is skipped. */
export const WORKER_CLOSE_MS = 8_000;

/** Returns true when the worker closed in time, false when its in-flight jobs were abandoned. */
export async function closeWorker(worker: Worker, ms = WORKER_CLOSE_MS): Promise<boolean> {
  if ((await withTimeout(() => worker.close(), ms)) !== TIMED_OUT) return true;
  await worker.disconnect().catch(() => undefined);
  // The parts of close() that disconnect() does not do: stop the lock renewal (re-armed forever)
  // and the stalled checker's wait (one more stalledInterval). BullMQ has no public call for them:
  // both are internals of Worker in bullmq 5; if a release renames them these are no-ops and the
  // stuck close() holds the timer again, which test/close-worker.test.ts catches.
  const internals = worker as unknown as { lockManager?: { close?: () => Promise<void> }; stalledCheckStopper?: () => void };
  await internals.lockManager?.close?.();
  internals.stalledCheckStopper?.();
  return false;
}
