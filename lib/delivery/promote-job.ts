/**
 * Moves a delayed job to the front of its queue now. A drain that decided to wait a moment ago may
 * still be `active` (between its decision and `moveToDelayed`): retried briefly until it is delayed.
 */
import type { Queue } from 'bullmq';

const ATTEMPTS = 20;
const PAUSE_MS = 25;

/** True when the job was promoted; false when it is gone, already waiting or still active after ~0.5 s. */
export async function promoteWhenDelayed(queue: Queue, jobId: string): Promise<boolean> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const job = await queue.getJob(jobId);
    if (!job) return false;
    const state = await job.getState();
    if (state === 'delayed') return job.promote().then(() => true, () => false);
    if (state !== 'active') return false;
    await new Promise((r) => setTimeout(r, PAUSE_MS));
  }
  return false;
}
