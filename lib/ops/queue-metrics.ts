/**
 * Cluster-wide gauges every service exports on `/metrics`, read from Redis on each scrape:
 * `ztm_queue_jobs{queue,state}`, `ztm_dead_letters`, `ztm_warm_pool_size`, `ztm_tenants_awake`.
 * Every replica exports the same values, so dashboards and the KEDA trigger aggregate them with
 * `max by (queue, state)` (never `sum` across replicas).
 *
 * A scrape that cannot read Redis (2 s) exports no `ztm_queue_jobs` samples and NaN for the other
 * three, so a dead Redis never looks like an empty queue to an autoscaler.
 */
import type { Metrics } from '../metrics.js';
import type { RedisClient } from '../redis.js';
import { QueueStats, QUEUE_STATES } from './queue-stats.js';

const SCRAPE_TIMEOUT_MS = 2000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis did not answer within ${ms} ms`)), ms);
    timer.unref();
    p.then((v) => (clearTimeout(timer), resolve(v)), (e: unknown) => (clearTimeout(timer), reject(e)));
  });
}

export interface QueueMetrics {
  /** One refresh now (what a scrape does); resolves false when Redis could not be read. */
  refresh(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Makes `metrics` read the queue figures from Redis on each scrape. `redis` is a non-blocking
 * client owned by the caller (the service's general client, or the ingress's queue client).
 */
export function instrumentQueueMetrics(metrics: Metrics, redis: RedisClient): QueueMetrics {
  const stats = new QueueStats(redis);
  const refresh = async (): Promise<boolean> => {
    try {
      const status = await withTimeout(stats.status(), SCRAPE_TIMEOUT_MS);
      metrics.queueDepth.reset();
      for (const q of status.queues) {
        for (const state of QUEUE_STATES) metrics.queueDepth.labels(q.queue, state).set(q[state]);
      }
      metrics.deadLetters.set(status.dead_letters);
      metrics.tenantsAwake.set(status.tenants_awake);
      const warm = status.warm_pool;
      metrics.warmPoolSize.set(warm.size === null || warm.stale ? Number.NaN : warm.size);
      return true;
    } catch {
      metrics.queueDepth.reset();
      metrics.deadLetters.set(Number.NaN);
      metrics.tenantsAwake.set(Number.NaN);
      metrics.warmPoolSize.set(Number.NaN);
      return false;
    }
  };
  metrics.setCollector(async () => void (await refresh()));
  return {
    refresh,
    async close() {
      metrics.setCollector(undefined);
      await stats.close();
    },
  };
}
