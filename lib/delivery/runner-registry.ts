/**
 * The shard runners' registry: each shard's ready list (chats opened and waiting for a runner) and
 * its runners set (a zset of runner ids scored by lease expiry). The accept script registers a
 * runner when its shard needs one (mailbox-scripts.ts ENSURE_RUNNER); this class holds the other
 * side, what a runner (services/forwarder/shard-runner.ts) does with its registration and its list.
 * See docs/architecture.md ("Shard runners").
 */
import type { Queue } from 'bullmq';
import type { RedisClient } from '../redis.js';
import { drainSeqKey, readyKey, runnersKey } from '../keys.js';
import { callScript } from '../redis-scripts.js';
import { RUN_JOB_NAME, runJobOpts } from './drain-contract.js';
import type { DeliveryLayout, DeliveryShard } from './shards.js';
import type { ShardQueues } from './shard-queues.js';

/** Defaults of the runner settings (config.ts RUNNER_*). */
export const DEFAULT_RUNNER_TTL_MS = 15_000;
export const DEFAULT_RUNNER_BACKLOG = 8;
export const DEFAULT_MAX_RUNNERS = 4;

/** The Mailbox options of the runner settings from the configuration (the ingress's and forwarders' must agree). */
export const runnerSettings = (c: { shardRunnerLeaseMs: number; shardRunnerBacklog: number; shardRunnerMax: number; tenantConcurrency: number; deliveryOpeningLeases: boolean }):
{ runnerTtlMs: number; runnerBacklog: number; maxRunners: number; openingLeaseLimit: number } => ({
  runnerTtlMs: c.shardRunnerLeaseMs, runnerBacklog: c.shardRunnerBacklog, maxRunners: c.shardRunnerMax,
  openingLeaseLimit: c.deliveryOpeningLeases ? c.tenantConcurrency : 0,
});

export interface RunnerRegistryOptions {
  redis: RedisClient;
  queues: ShardQueues;
  layout: DeliveryLayout;
  /** A runner's lease in the shard's runners set; it renews it every third of this while it runs. */
  ttlMs?: number;
  /** Ready chats per live runner past which the accept starts another runner (they are all busy). */
  backlog?: number;
  /** Most runners one shard gets from the accept (past that, waiting chats wait for a free slot). */
  maxRunners?: number;
}

export class RunnerRegistry {
  readonly ttlMs: number;
  readonly backlog: number;
  readonly maxRunners: number;
  private readonly redis: RedisClient;
  private readonly queues: ShardQueues;
  private readonly layout: DeliveryLayout;

  constructor(o: RunnerRegistryOptions) {
    if (!o.redis || !o.queues || !o.layout) throw new TypeError('RunnerRegistry: redis, queues and layout are required');
    this.redis = o.redis;
    this.queues = o.queues;
    this.layout = o.layout;
    this.ttlMs = o.ttlMs ?? DEFAULT_RUNNER_TTL_MS;
    this.backlog = o.backlog ?? DEFAULT_RUNNER_BACKLOG;
    this.maxRunners = o.maxRunners ?? DEFAULT_MAX_RUNNERS;
    for (const [k, v] of [['ttlMs', this.ttlMs], ['backlog', this.backlog], ['maxRunners', this.maxRunners]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new TypeError(`RunnerRegistry: ${k} must be a positive integer`);
    }
  }

  /**
   * Adds a registered runner's job (an existing job id is a no-op: idempotent re-add). When the add
   * fails its registration is withdrawn (best effort), so the next opening or Telegram's retry of
   * the update registers another instead of trusting a runner that will never run.
   */
  async start(queue: Queue, runnerId: string): Promise<unknown> {
    try {
      return await queue.add(RUN_JOB_NAME, {}, runJobOpts(runnerId));
    } catch (err) {
      const shard = this.layout.shardOfQueue(queue.name);
      if (shard) await this.redis.zrem(runnersKey(shard.tag), runnerId).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Takes the oldest chat of the shard's ready list, waiting up to `timeoutS` for one (undefined:
   * none came). `conn` must be a connection of its own: BLPOP blocks it.
   */
  async take(conn: RedisClient, shard: DeliveryShard, timeoutS: number): Promise<string | undefined> {
    const got = await conn.blpop(readyKey(shard.tag), timeoutS);
    return got?.[1];
  }

  /** Puts a taken chat back at the front of the ready list (a runner that took it while closing). */
  async giveBack(shard: DeliveryShard, entry: string): Promise<void> {
    await this.redis.lpush(readyKey(shard.tag), entry);
  }

  /**
   * Renews a running runner's lease. XX unless `register`: a renewal still in flight never puts
   * back a runner that retired or exited; `register` is the runner's own (re-)registration when it
   * starts serving and when a busy runner has a free slot again.
   */
  async renew(shard: DeliveryShard, runnerId: string, o: { register?: boolean } = {}): Promise<void> {
    const expiry = Date.now() + this.ttlMs;
    await (o.register ? this.redis.zadd(runnersKey(shard.tag), expiry, runnerId) : this.redis.zadd(runnersKey(shard.tag), 'XX', expiry, runnerId));
  }

  /** A runner with every slot busy: its lease is ended (not counted as live) until it renews with register. */
  async markBusy(shard: DeliveryShard, runnerId: string): Promise<void> {
    await this.redis.zadd(runnersKey(shard.tag), 'XX', 0, runnerId);
  }

  /** Removes the runner if other live runners serve its shard (true); the last one stays (false). */
  async retire(shard: DeliveryShard, runnerId: string): Promise<boolean> {
    return (await callScript(this.redis, 'mbRunnerRetire', runnersKey(shard.tag), runnerId, Date.now())) === 1;
  }

  /** Removes a runner that ends; starts its successor when chats wait and no runner is left. Returns the successor's id. */
  async exit(shard: DeliveryShard, runnerId: string): Promise<string | undefined> {
    const next = (await callScript(this.redis, 'mbRunnerExit', runnersKey(shard.tag), readyKey(shard.tag), drainSeqKey(shard.tag), runnerId, Date.now(), this.ttlMs)) as string;
    if (!next) return undefined;
    await this.start(this.queues.forShard(shard), next);
    return next;
  }
}
