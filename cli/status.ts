/**
 * `ztm status`: jobs per queue and state, connected workers, tenants awake, the warm pool as the
 * pool-keeper last counted it, dead letters. Computed here from Redis (lib/ops/queue-stats.ts), not
 * by an admin job: it must answer when the janitor is down, which is when it is wanted. In cluster
 * mode without a Redis URL it runs inside the janitor pod through `kubectl exec`, like every command.
 */
import { assertRedisReachable, closeRedis, createRedis, type RedisClient } from '../lib/redis.js';
import { QueueStats, type PlatformStatus, type ShardDepth, type WarmPoolReport } from '../lib/ops/queue-stats.js';
import { printFailure, printJson, printTable, type Printer } from './output.js';

/**
 * Connects to `url` or throws one clear line within 3 s. `cluster` undefined: a cluster client when
 * the node at `url` is a cluster node (any node's address works). The caller closes the client.
 */
export async function connectRedis(url: string, name: string, cluster?: boolean): Promise<RedisClient> {
  const asCluster = await assertRedisReachable(url, { cluster, name });
  const redis = createRedis({ url, cluster: asCluster, name });
  redis.on('error', () => undefined);
  return redis;
}

function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

function warmLine(w: WarmPoolReport, now: number): string {
  if (w.size === null || w.reported_at === null) return 'unknown: no pool-keeper has reported (is it running?)';
  const starting = w.members !== null && w.members > w.size ? `, ${w.members - w.size} starting` : '';
  const base = `${w.size} ready (target ${w.target}${starting}, counted ${ago(w.reported_at, now)})`;
  return w.stale ? `${base}: STALE, is the pool-keeper running?` : base;
}

/** The pool-keeper's sizing: bounds, demand, modelled and seen hit rates, and the last change with its reason. */
function sizingRows(w: WarmPoolReport, now: number): Array<[string, string]> {
  const z = w.sizing;
  if (!z) return [];
  const seen = z.observed_warm + z.observed_cold;
  const hits = seen > 0 ? `${Math.round((100 * z.observed_warm) / seen)}% of ${seen} wakes warm in ${Math.round(z.window_s / 60)}m` : `no wakes in ${Math.round(z.window_s / 60)}m`;
  const bounds = z.min === z.max ? `fixed ${z.min}` : `${z.min}-${z.max} by demand`;
  const rows: Array<[string, string]> = [[
    'warm pool sizing',
    `${bounds}: ${z.rate_per_s.toFixed(3)} wakes/s, ${z.start_s.toFixed(1)} s replenish, P(hit) ${z.probability.toFixed(3)} (target ${z.hit_target}); ${hits}`,
  ]];
  if (z.last_change) rows.push(['warm pool resized', `${z.last_change}${z.changed_at ? ` (${ago(z.changed_at, now)})` : ''}`]);
  return rows;
}

/** The shards in one line (the `forward` row is their sum): count, spread of the backlog, the busiest. `--json` has each. */
function shardLine(shards: ShardDepth[]): string {
  const backlogOf = (d: ShardDepth): number => d.waiting + d.prioritized + d.delayed;
  const busiest = shards.reduce((a, b) => (backlogOf(b) > backlogOf(a) ? b : a));
  const min = Math.min(...shards.map(backlogOf));
  const active = shards.reduce((n, d) => n + d.active, 0);
  return `${shards.length} (drains waiting per shard, ready chats included, ${min}-${backlogOf(busiest)}${backlogOf(busiest) > 0 ? `, busiest ${busiest.queue}` : ''}; ${active} active; per shard: ztm status --json)`;
}

export function renderStatus(p: Printer, s: PlatformStatus, now = Date.now()): void {
  printTable(p, s.queues.map((q) => ({
    queue: q.queue,
    // "waiting" for an operator: the wait list and the prioritized set (BullMQ keeps them apart).
    waiting: q.waiting + q.prioritized,
    delayed: q.delayed,
    active: q.active,
    failed: q.failed,
    paused: q.paused,
    workers: q.workers ?? '-',
  })), ['queue', 'waiting', 'delayed', 'active', 'failed', 'paused', 'workers']);
  p.out('');
  const rows: Array<[string, string]> = [
    ['tenants awake', String(s.tenants_awake)],
    ['warm pool', warmLine(s.warm_pool, now)],
    ...sizingRows(s.warm_pool, now),
    ...(s.shards?.length ? [['delivery shards', shardLine(s.shards)] as [string, string]] : []),
    ['dead letters', s.dead_letters > 0 ? `${s.dead_letters}  (ztm dead list; ztm dead retry --all)` : '0'],
    // What `npm start` printed at its start (local agents sandboxed or not); absent on Kubernetes.
    ...(s.isolation ? [['isolation', s.isolation.line] as [string, string]] : []),
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) p.out(`${k.padEnd(width)}  ${v}`);
}

export async function runStatus(url: string, p: Printer, cluster?: boolean): Promise<number> {
  let redis: RedisClient | undefined;
  let stats: QueueStats | undefined;
  try {
    redis = await connectRedis(url, 'ztm-status', cluster);
    stats = new QueueStats(redis);
    const status = await stats.status({ workers: true });
    if (p.json) printJson(p, status);
    else renderStatus(p, status);
    return 0;
  } catch (err) {
    printFailure(p, err);
    return 1;
  } finally {
    await stats?.close();
    await closeRedis(redis);
  }
}
