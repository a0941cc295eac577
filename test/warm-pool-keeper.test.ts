/**
 * The pool-keeper following demand, on a real Redis and the local runtime (real shim processes),
 * with wakes through the whole platform (ingress → forwarder → waker → claim or cold start): a
 * burst of wakes into an empty pool grows it (the waker's record of the cold starts is what the
 * keeper sizes from), the next wakes find warm members, and once idle the pool shrinks back to
 * WARM_POOL_MIN. Every change is logged with its reason and shown by `ztm status`.
 *
 * The platform's own keeper is replaced by one with short time constants (5 s rate, 8 s shrink
 * hold) so that the test takes seconds, not the production minutes; the model and the code are
 * the same.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestPlatform, ROOT } from './support/platform.js';
import { waitUntil } from './support/wait.js';
import { PoolKeeper } from '../services/pool-keeper/pool-keeper.js';
import { readWakeStats } from '../lib/warm-pool/wake-stats.js';
import { createMetrics } from '../lib/metrics.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-warm-keeper-'));
const results = path.join(dir, 'agent-results.jsonl');
writeFileSync(results, '');
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const p = await startTestPlatform({
  full: true,
  env: {
    WARM_POOL_MIN: '0', WARM_POOL_MAX: '3', WARM_POOL_HIT_TARGET: '0.9', AGENT_SANDBOX: 'off',
    AGENT_COMMAND: `${process.execPath} ${path.join(ROOT, 'bench/wake-agent.mjs')} ${results}`,
  },
});
t.teardown(() => p.close());
const platform = p.platform!;
await platform.poolKeeper.close();

const log = p.logs.logger('pool-keeper');
const metrics = createMetrics({ service: 'pool-keeper', defaultMetrics: false });
const keeper = new PoolKeeper({
  pool: platform.runtime, redis: p.clients.redis, log, metrics, bounds: p.config.warmPool, hitTarget: p.config.warmPool.hitTarget,
  intervalMs: 300, defaultStartS: 30, sizing: { fastTauS: 5, slowTauS: 5, shrinkHoldS: 8 },
});
t.teardown(() => keeper.close());

let updateId = 1;
async function wake(tenants: string[]): Promise<void> {
  await Promise.all(tenants.map(async (id, i) => {
    const r = await p.postUpdate(id, { update_id: updateId++, message: { message_id: i + 1, date: 1, chat: { id: 7000 + i, type: 'private' }, from: { id: 7000 + i, is_bot: false, first_name: 'u' }, text: 'hello' } });
    if (r.status !== 200) throw new Error(`ingress answered ${r.status}`);
  }));
}
const resizes = (): Array<Record<string, unknown>> => p.logs.find('warm pool: size');

t.test('a burst of wakes grows the pool, the next wakes are warm, idle shrinks it back; each change logged with its reason', async (t) => {
  const burst = ['wb-0', 'wb-1', 'wb-2', 'wb-3', 'wb-4'];
  const later = ['wl-0', 'wl-1'];
  for (const [i, id] of [...burst, ...later].entries()) {
    const created = await p.ztm('tenant', 'create', id, `${900_000_000 + i}:AA${'x'.repeat(33)}`);
    t.equal(created.code, 0, `tenant ${id} created (${created.stderr})`);
  }
  keeper.start();
  await waitUntil('the keeper reports an empty pool (no wakes yet: WARM_POOL_MIN 0)', async () => (await p.clients.redis.hget('ztm:warm-pool', 'reason'))?.startsWith('no recent wakes') ?? false, 10_000);
  t.equal(await platform.runtime.countWarm(), 0, 'no demand: no members');

  await wake(burst);
  await waitUntil('every burst wake recorded', async () => (await readWakeStats(p.clients.redis)).wakes.length >= burst.length, 60_000);
  const stats = await readWakeStats(p.clients.redis);
  t.equal(stats.wakes.filter((w) => w.path === 'cold').length, burst.length, 'the empty pool: every burst wake started cold, recorded by the waker');
  t.equal(stats.coldStartsMs.length, burst.length, 'with its duration');

  await waitUntil('the keeper grows the pool', () => resizes().some((l) => l.direction === 'grow'), 10_000);
  const grow = resizes().find((l) => l.direction === 'grow')!;
  t.equal(grow.from, 0);
  t.ok((grow.to as number) >= 1 && (grow.to as number) <= 3, `grown within [0, 3]: to ${String(grow.to)}`);
  t.ok((grow.rate_per_s as number) > 0, 'logged with the wake rate');
  t.equal(grow.start_measured, true, 'and the measured start time (the cold starts), not the 30 s default');
  t.ok((grow.start_s as number) < 30, `start ${String(grow.start_s)} s`);
  t.match(grow.reason as string, /wakes\/s × [0-9.]+ s replenish = load [0-9.]+: /, 'the reason says how the size was found');
  t.match(grow.msg as string, /^warm pool: size 0 → [1-3]$/);
  const size = grow.to as number;
  await waitUntil('the grown pool is ready', async () => (await platform.runtime.countReadyWarm()) >= Math.min(size, later.length), 60_000);
  t.ok(Number(await metrics.registry.getSingleMetricAsString('ztm_warm_pool_target').then((s) => /ztm_warm_pool_target\S* (\d+)/.exec(s)?.[1])) >= 1, 'ztm_warm_pool_target exported');

  const status = await p.ztm('status');
  t.match(status.stdout, /^warm pool sizing\s+0-3 by demand: [0-9.]+ wakes\/s, [0-9.]+ s replenish, P\(hit\) [0-9.]+ \(target 0.9\); 0% of 5 wakes warm in 10m$/m, 'ztm status: the sizing');
  t.match(status.stdout, /^warm pool resized\s+0 → [1-3]: .*load/m, 'ztm status: the last change with its reason');

  await wake(later.slice(0, Math.min(size, later.length)));
  await waitUntil('the later wakes recorded', async () => (await readWakeStats(p.clients.redis)).wakes.length >= burst.length + Math.min(size, later.length), 60_000);
  const after = await readWakeStats(p.clients.redis);
  t.ok(after.wakes.slice(0, Math.min(size, later.length)).every((w) => w.path === 'warm'), 'the wakes after the growth found warm members');

  // Idle: the rate decays (5 s), the hold passes (8 s: long enough that a loaded machine still has the grown pool for the later wakes), the pool goes back to WARM_POOL_MIN.
  await waitUntil('the keeper shrinks the pool back to 0', () => resizes().some((l) => l.direction === 'shrink' && l.to === 0), 60_000);
  await waitUntil('no member left', async () => (await platform.runtime.countWarm()) === 0, 30_000);
  const shrinks = resizes().filter((l) => l.direction === 'shrink');
  for (const s of shrinks) {
    t.ok((s.from as number) > (s.to as number), `shrink ${String(s.from)} → ${String(s.to)}`);
    t.match(s.reason as string, /less wanted for 8 s: down to \d/, 'each shrink logged with its reason (after the hold)');
  }
  const last = shrinks.at(-1)!;
  t.match(last.reason as string, /^(fewer than one wake per 5 s|no recent wakes)/, `the last shrink: demand gone (${String(last.reason)})`);
  const all = resizes();
  for (const l of all) t.comment(`${String(l.msg)}: ${String(l.reason)}`);
  t.ok(all.length <= 2 + 3 + 2, `no flapping: ${all.length} changes (${all.map((l) => `${String(l.from)}→${String(l.to)}`).join(', ')})`);
  const resized = /ztm_warm_pool_resizes_total\{direction="shrink"[^}]*\} (\d+)/.exec(await metrics.registry.getSingleMetricAsString('ztm_warm_pool_resizes_total'));
  t.equal(Number(resized?.[1]), shrinks.length, 'ztm_warm_pool_resizes_total counts the shrinks');
});
