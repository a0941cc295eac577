/**
 * Queue names and the shared BullMQ options. Each queue name carries its own hash tag so BullMQ
 * works on a Redis Cluster (all of one queue's keys in one slot).
 */
export const QUEUE_PREFIX = 'ztm';

export const QUEUES = {
  /** Drain jobs: one per chat with pending updates; processed by the forwarder. */
  forward: '{forward}',
  /** Wake requests: processed by the waker. */
  wake: '{wake}',
  /** Admin commands from `ztm`: processed by the janitor's admin worker. */
  admin: '{admin}',
  /** Lifecycle ticks (idle check, reconciler) from BullMQ job schedulers: one replica runs each tick. */
  lifecycle: '{lifecycle}',
} as const;

export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];
