/**
 * The platform's figures, read from Redis: jobs per queue and state, tenants awake, dead letters and
 * the warm pool as the pool-keeper last counted it. One reader for `ztm status`, the Prometheus
 * gauges every service exports on scrape (lib/ops/queue-metrics.ts) and the dashboard.
 *
 * Everything here is in Redis on purpose: `ztm status` must answer when the janitor is down (that
 * is when it is needed), and every replica of every service exports the same values.
 *
 * Cluster-safe on a Redis Cluster client: every read is one key, or one BullMQ script over a single
 * queue's keys (one hash tag, one slot); worker counts read CLIENT LIST on every node.
 */
import { Queue } from 'bullmq';
import type { RedisClient } from '../redis.js';
import { QUEUES, QUEUE_PREFIX } from '../queues.js';
import { activityKey, readyKey, warmPoolKey } from '../keys.js';
import { DeadLetterStore } from '../delivery/dead-letters.js';
import { deliveryLayout, type DeliveryShard } from '../delivery/shards.js';
import { readIsolation, type IsolationReport } from './isolation-report.js';

/** Queue label values: the keys of QUEUES (`forward`, not `{forward}`). */
export type QueueLabel = keyof typeof QUEUES;
export const QUEUE_LABELS = Object.keys(QUEUES) as QueueLabel[];

/**
 * States counted per queue. BullMQ keeps `prioritized` and `delayed` jobs in sorted sets, not in the
 * wait list, so work waiting for a worker is waiting + prioritized + delayed (what KEDA scales on).
 */
export const QUEUE_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'failed', 'paused', 'waiting-children'] as const;
export type QueueState = (typeof QUEUE_STATES)[number];

export type QueueCounts = Record<QueueState, number>;

export interface QueueDepth extends QueueCounts {
  queue: QueueLabel;
  /** Redis-side name of the queue (`ztm:{forward}`). */
  key: string;
  /** Connected workers (CLIENT LIST); null when Redis refuses CLIENT LIST. */
  workers: number | null;
}

export interface WarmPoolReport {
  /** Warm members ready to be claimed at the pool-keeper's last tick; null when never reported. */
  size: number | null;
  /** Warm members counted toward the target, starting ones included. */
  members: number | null;
  target: number | null;
  reported_at: string | null;
  /** No report within WARM_POOL_STALE_MS: the pool-keeper is not running (or cannot reach Redis). */
  stale: boolean;
  /** How the pool-keeper sized the pool (services/pool-keeper/pool-sizer.ts); absent from older keepers. */
  sizing?: WarmPoolSizingReport;
}

export interface WarmPoolSizingReport {
  min: number;
  max: number;
  /** Smoothed wakes per second that needed a member; replenish time (s); modelled P(hit) at the target. */
  rate_per_s: number;
  start_s: number;
  probability: number;
  hit_target: number;
  /** Warm claims and cold starts recorded in the last `window_s`. */
  observed_warm: number;
  observed_cold: number;
  window_s: number;
  reason: string;
  /** The last change of the size: `old → new` and when. */
  last_change: string | null;
  changed_at: string | null;
}

/** What the pool-keeper's sizing reports (a subset of services/pool-keeper/pool-sizer.ts Sizing). */
export interface SizingInput {
  min: number;
  max: number;
  size: number;
  previous: number;
  change?: 'grow' | 'shrink';
  ratePerS: number;
  startS: number;
  probability: number;
  hitTarget: number;
  observed: { warm: number; cold: number; windowS: number };
  reason: string;
}

/** One delivery shard's drain queue (the `forward` row of `queues` is their sum with the legacy `{forward}`). */
export interface ShardDepth extends QueueCounts {
  shard: number;
  /** The shard's queue (`{forward-3.5}`). */
  queue: string;
  /** Chats opened and waiting on the shard's ready list for a runner (also counted in `waiting`). */
  ready: number;
}

export interface PlatformStatus {
  at: string;
  queues: QueueDepth[];
  /** Per delivery shard (DELIVERY_SHARDS): drain jobs by state. */
  shards?: ShardDepth[];
  /** Tenants with an awake agent (entries of the activity index `ztm:activity`). */
  tenants_awake: number;
  dead_letters: number;
  warm_pool: WarmPoolReport;
  /** Whether `npm start` found it could sandbox its agents (lib/ops/isolation-report.ts); null: not reported. */
  isolation?: IsolationReport | null;
}

/** A pool-keeper report older than this is shown as stale (keepers tick every 1-5 s). */
export const WARM_POOL_STALE_MS = 60_000;

/** Written by the pool-keeper after each count: what `ztm status` and `ztm_warm_pool_size` show. */
export async function reportWarmPool(redis: RedisClient, r: { ready: number; members: number; target: number; sizing?: SizingInput }, now = Date.now()): Promise<void> {
  const z = r.sizing;
  const sizing = z ? {
    min: String(z.min), max: String(z.max), rate_per_s: String(z.ratePerS), start_s: String(z.startS), probability: String(z.probability),
    hit_target: String(z.hitTarget), observed_warm: String(z.observed.warm), observed_cold: String(z.observed.cold), window_s: String(z.observed.windowS), reason: z.reason,
    ...(z.change ? { last_change: `${z.previous} → ${z.size}: ${z.reason}`, changed_at: String(now) } : {}),
  } : {};
  await redis.hset(warmPoolKey, { size: String(r.ready), members: String(r.members), target: String(r.target), at: String(now), ...sizing });
}

function sizingOf(h: Record<string, string>): WarmPoolSizingReport | undefined {
  if (h.min === undefined || h.max === undefined || h.reason === undefined) return undefined;
  const n = (v: string | undefined): number => (v === undefined || v === '' ? Number.NaN : Number(v));
  const changedAt = n(h.changed_at);
  return {
    min: n(h.min), max: n(h.max), rate_per_s: n(h.rate_per_s), start_s: n(h.start_s), probability: n(h.probability), hit_target: n(h.hit_target),
    observed_warm: n(h.observed_warm), observed_cold: n(h.observed_cold), window_s: n(h.window_s), reason: h.reason,
    last_change: h.last_change ?? null, changed_at: Number.isFinite(changedAt) ? new Date(changedAt).toISOString() : null,
  };
}

export async function readWarmPool(redis: RedisClient, now = Date.now()): Promise<WarmPoolReport> {
  const h = await redis.hgetall(warmPoolKey);
  const at = Number(h.at);
  if (!h.at || !Number.isFinite(at)) return { size: null, members: null, target: null, reported_at: null, stale: true };
  return {
    size: Number(h.size),
    members: h.members === undefined ? null : Number(h.members),
    target: Number(h.target),
    reported_at: new Date(at).toISOString(),
    stale: now - at > WARM_POOL_STALE_MS,
    ...(sizingOf(h) ? { sizing: sizingOf(h) } : {}),
  };
}

export class QueueStats {
  private readonly queues: Array<{ label: QueueLabel; queue: Queue }>;
  /** The delivery shards' drain queues (the process's layout, DELIVERY_SHARDS). */
  private readonly shards: Array<{ shard: DeliveryShard; queue: Queue }>;

  /**
   * `connection` is any non-blocking client; queues opened on it share it (closing them leaves it
   * open). The caller owns the connection.
   */
  constructor(private readonly connection: RedisClient) {
    if (!connection) throw new TypeError('QueueStats: connection is required');
    this.queues = QUEUE_LABELS.map((label) => {
      const queue = new Queue(QUEUES[label], { connection, prefix: QUEUE_PREFIX });
      queue.on('error', () => undefined); // surfaced by the calls that fail
      return { label, queue };
    });
    this.shards = deliveryLayout().shards.map((shard) => {
      const queue = new Queue(shard.queue, { connection, prefix: QUEUE_PREFIX });
      queue.on('error', () => undefined);
      return { shard, queue };
    });
  }

  private static async counts(queue: Queue): Promise<QueueCounts> {
    const raw = await queue.getJobCounts(...QUEUE_STATES);
    return Object.fromEntries(QUEUE_STATES.map((s) => [s, Number(raw[s] ?? 0)])) as QueueCounts;
  }

  /**
   * Drains per shard (one round trip per shard queue): its jobs (drain jobs of chats and runners)
   * by state, `waiting` including the chats on its ready list (what waits for a forwarder's slot).
   */
  async shardDepths(): Promise<ShardDepth[]> {
    return Promise.all(this.shards.map(async ({ shard, queue }) => {
      const [counts, ready] = await Promise.all([QueueStats.counts(queue), this.connection.llen(readyKey(shard.tag))]);
      return { shard: shard.index, queue: shard.queue, ...counts, waiting: counts.waiting + ready, ready };
    }));
  }

  /**
   * Jobs per queue and state (one round trip per queue). The `forward` row sums the legacy
   * `{forward}` queue and every shard's (what KEDA scales the forwarders on); its workers are the
   * legacy queue's, which every forwarder also serves (one per replica).
   */
  async depths(options: { workers?: boolean; shards?: ShardDepth[] } = {}): Promise<QueueDepth[]> {
    const shards = options.shards ?? (await this.shardDepths());
    return Promise.all(this.queues.map(async ({ label, queue }) => {
      const counts = await QueueStats.counts(queue);
      if (label === 'forward') for (const d of shards) for (const s of QUEUE_STATES) counts[s] += d[s];
      const workers = options.workers ? await queue.getWorkersCount().catch(() => null) : null;
      return { queue: label, key: `${QUEUE_PREFIX}:${QUEUES[label]}`, ...counts, workers };
    }));
  }

  async tenantsAwake(): Promise<number> {
    return this.connection.zcard(activityKey);
  }

  /** Every shard's dead letters and the legacy layout's. */
  async deadLetters(): Promise<number> {
    return new DeadLetterStore({ redis: this.connection }).count();
  }

  async warmPool(): Promise<WarmPoolReport> {
    return readWarmPool(this.connection);
  }

  async status(options: { workers?: boolean } = {}): Promise<PlatformStatus> {
    const shards = await this.shardDepths();
    const [queues, tenants_awake, dead_letters, warm_pool, isolation] = await Promise.all([
      this.depths({ ...options, shards }), this.tenantsAwake(), this.deadLetters(), this.warmPool(), readIsolation(this.connection),
    ]);
    return { at: new Date().toISOString(), queues, shards, tenants_awake, dead_letters, warm_pool, isolation };
  }

  /** The BullMQ queues (for the dashboard). */
  get bullQueues(): ReadonlyArray<{ label: QueueLabel; queue: Queue }> {
    return this.queues;
  }

  /** The delivery shards' drain queues (the dashboard shows them beside `{forward}`). */
  get shardQueues(): ReadonlyArray<{ shard: DeliveryShard; queue: Queue }> {
    return this.shards;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues, ...this.shards].map(({ queue }) => queue.close()));
  }
}

/** Work that waits for a worker: what the autoscaler and the status table call "backlog". */
export function backlog(d: QueueCounts): number {
  return d.waiting + d.prioritized + d.delayed;
}
