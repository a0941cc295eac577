/**
 * The wake benchmark's demand workload (bench/wake.ts --modes demand): wakes of sleeping tenants
 * arriving as a Poisson process whose rate changes by phase (steady, burst, quiet, burst, steady),
 * the same arrival times against each pool in the same run: fixed sizes (WARM_POOL_TARGET) and the
 * pool that follows demand (WARM_POOL_MIN..WARM_POOL_MAX). Per pool: the share of wakes that found
 * a warm member, the wake latency (update sent → the agent has it) p50/p99, and the cost: the
 * member-seconds of warm members held (starting or ready, sampled every 200 ms), what a warm pool
 * costs while nobody claims it.
 *
 * Time is compressed to fit a few minutes: the phases last seconds, not hours, so the pool-keeper
 * runs with its time constants scaled alike (rate 5 s / 30 s instead of 20 s / 180 s, shrink hold
 * 15 s instead of 120 s); the model and the code are the production ones.
 */
import { mulberry32 } from './mulberry32.js';
import { readFileSync } from 'node:fs';
import type { Pool } from 'undici';
import type { Logger } from '../../lib/logger.js';
import type { Platform } from '../../services/platform/platform.js';
import type { PlatformClients } from '../../lib/platform/clients.js';
import { PoolKeeper } from '../../services/pool-keeper/pool-keeper.js';
import { WARM_POOL_COLD_STARTS_KEY, WARM_POOL_WAKES_KEY, warmPoolKey } from '../../lib/keys.js';
import { deriveWebhookSecret } from '../../lib/webhook-secret.js';
import { IncarnationIndex } from '../../lib/tenants/incarnation-index.js';
import { fmt, sleep, table } from './common.js';

export interface DemandPhase {
  name: string;
  seconds: number;
  ratePerS: number;
}

/** 70 s, ~35 wakes: a steady trickle, a burst, a lull longer than the shrink hold, a second burst, the trickle again. */
export const DEFAULT_PHASES: DemandPhase[] = [
  { name: 'steady', seconds: 12, ratePerS: 0.15 },
  { name: 'burst', seconds: 10, ratePerS: 1.0 },
  { name: 'quiet', seconds: 26, ratePerS: 0.05 },
  { name: 'burst', seconds: 10, ratePerS: 1.0 },
  { name: 'steady', seconds: 12, ratePerS: 0.15 },
];

export type PoolVariant = { kind: 'fixed'; size: number } | { kind: 'adaptive'; min: number; max: number; hitTarget: number };

export interface DemandContext {
  platform: Platform;
  clients: PlatformClients;
  ingress: Pool;
  webhookSecret: string;
  log: Logger;
  platformLog: string;
  makeUpdate: (updateId: number, chatId: number, text?: string) => string;
  nextUpdateId: () => number;
  /** First message per tenant the agents received (bench/wake-agent.mjs results). */
  received: () => Map<string, { sent: number; arrival: number; born: number; listening: number }>;
  now: () => number;
  timeoutMs: number;
}

export interface VariantResult {
  label: string;
  wakes: number;
  warm: number;
  cold: number;
  p50: number;
  p99: number;
  memberSeconds: number;
  seconds: number;
  /** Size changes the keeper logged (adaptive). */
  resizes: number;
  peak: number;
}

/** Seeded arrivals (ms offsets from the start): the same workload for every pool. */
export function arrivals(phases: DemandPhase[], seed: number): Array<{ at: number; phase: string }> {
  const rand = mulberry32(seed);
  const out: Array<{ at: number; phase: string }> = [];
  let start = 0;
  for (const p of phases) {
    let t = 0;
    for (;;) {
      t += -Math.log(1 - rand()) / p.ratePerS;
      if (t >= p.seconds) break;
      out.push({ at: Math.round((start + t) * 1000), phase: p.name });
    }
    start += p.seconds;
  }
  return out;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? (sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number) : Number.NaN;
}

/** Each wake's path as the waker logged it (`tenant awake: agent ready`, path warm|cold). */
function pathsFromLog(file: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.includes('tenant awake')) continue;
    try {
      const l = JSON.parse(line) as { msg?: string; tenant?: string; path?: string };
      if (l.msg?.startsWith('tenant awake') && l.tenant && l.path) out.set(l.tenant, l.path);
    } catch {
      // a partial line
    }
  }
  return out;
}

export async function runDemand(ctx: DemandContext, variants: PoolVariant[], phases: DemandPhase[], seed: number): Promise<VariantResult[]> {
  const { platform, clients } = ctx;
  const schedule = arrivals(phases, seed);
  const total = phases.reduce((a, p) => a + p.seconds, 0);
  console.log(`# demand workload: ${schedule.length} wakes in ${total} s (${phases.map((p) => `${p.name} ${p.ratePerS}/s × ${p.seconds} s`).join(', ')}), seed ${seed}, the same for each pool`);
  // The platform's keeper is replaced by one with the bench's compressed time constants.
  await platform.poolKeeper.close();
  const keeper = new PoolKeeper({
    pool: platform.runtime, redis: clients.redis, log: ctx.log.child({ component: 'bench-pool-keeper' }), target: 0, intervalMs: 1000,
    defaultStartS: 5, sizing: { fastTauS: 5, slowTauS: 30, shrinkHoldS: 15 },
  });
  keeper.start();
  const results: VariantResult[] = [];
  try {
    for (const [vi, v] of variants.entries()) {
      const label = v.kind === 'fixed' ? `fixed ${v.size}` : `adaptive ${v.min}-${v.max} (P ${v.hitTarget})`;
      // Each pool starts from nothing it learned from the last one.
      await clients.redis.del(WARM_POOL_WAKES_KEY, WARM_POOL_COLD_STARTS_KEY);
      await clients.redis.hdel(warmPoolKey, 'target', 'low_since', 'low_max');
      const start = v.kind === 'fixed' ? v.size : v.min;
      if (v.kind === 'fixed') keeper.setTarget(v.size);
      else keeper.setBounds({ min: v.min, max: v.max }, v.hitTarget);
      const ready = Date.now() + ctx.timeoutMs;
      while ((await platform.runtime.countReadyWarm()) < start || (await platform.runtime.countWarm()) !== start) {
        if (Date.now() > ready) throw new Error(`${label}: the pool did not settle at ${start}`);
        await sleep(100);
      }
      const tenants = schedule.map((_, i) => `dm-${vi}-${String(i).padStart(3, '0')}`);
      // The secret the ingress verifies against: from the identity it reads (the incarnation index).
      const index = new IncarnationIndex(clients.redis);
      const secrets = await Promise.all(tenants.map(async (t) => deriveWebhookSecret(ctx.webhookSecret, await index.identity(t))));
      // Pool occupancy, integrated while the workload runs and until the last wake is served.
      let memberMs = 0;
      let peak = 0;
      let last = ctx.now();
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const n = await platform.runtime.countWarm();
          const t = ctx.now();
          memberMs += n * (t - last);
          last = t;
          peak = Math.max(peak, n);
          await sleep(200);
        }
      })();
      const resizesBefore = (readFileSync(ctx.platformLog, 'utf8').match(/warm pool: size /g) ?? []).length;
      const t0 = ctx.now();
      const sleeps: Array<Promise<unknown>> = [];
      const served = new Set<string>();
      const watcher = setInterval(() => {
        const got = ctx.received();
        for (const t of tenants) {
          if (!served.has(t) && got.has(t)) {
            served.add(t);
            // Back to sleep once served, as an idle tenant would be: the processes are freed.
            sleeps.push(platform.lifecycle.sleep(t).catch(() => undefined));
          }
        }
      }, 100);
      await Promise.all(schedule.map(async (a, i) => {
        await sleep(Math.max(0, t0 + a.at - ctx.now()));
        const tenant = tenants[i] as string;
        const body = ctx.makeUpdate(ctx.nextUpdateId(), 9000 + i, `s${ctx.now().toFixed(3)};`);
        // A 503 (the ingress could not reach Redis in time, on an overloaded machine) is retried as
        // Telegram retries: the same update, its send stamp unchanged (the wait counts).
        for (let attempt = 1; ; attempt++) {
          const res = await ctx.ingress.request({
            method: 'POST', path: `/tg/${tenant}`, body,
            headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secrets[i] as string },
          });
          await res.body.dump();
          if (res.statusCode === 200) break;
          if (res.statusCode !== 503 || attempt >= 20) throw new Error(`ingress answered ${res.statusCode} for ${tenant}`);
          await sleep(500);
        }
      }));
      const deadline = Date.now() + ctx.timeoutMs;
      while (served.size < tenants.length && Date.now() < deadline) await sleep(50);
      // The workload's length at least, so that every pool is charged over the same span.
      await sleep(Math.max(0, t0 + total * 1000 - ctx.now()));
      const seconds = (ctx.now() - t0) / 1000;
      sampling = false;
      await sampler;
      clearInterval(watcher);
      await Promise.all(sleeps);
      if (served.size < tenants.length) throw new Error(`${label}: ${tenants.length - served.size} wakes never reached their agent`);
      const got = ctx.received();
      const paths = pathsFromLog(ctx.platformLog);
      const latencies = tenants.map((t) => {
        const r = got.get(t)!;
        return r.arrival - r.sent;
      });
      const warm = tenants.filter((t) => paths.get(t) === 'warm').length;
      const cold = tenants.filter((t) => paths.get(t) === 'cold').length;
      const resizes = (readFileSync(ctx.platformLog, 'utf8').match(/warm pool: size /g) ?? []).length - resizesBefore;
      const r: VariantResult = { label, wakes: tenants.length, warm, cold, p50: percentile(latencies, 50), p99: percentile(latencies, 99), memberSeconds: memberMs / 1000, seconds, resizes, peak };
      console.log(`${label}: ${warm}/${r.wakes} warm, p50 ${fmt.ms(r.p50)} ms, p99 ${fmt.ms(r.p99)} ms, ${r.memberSeconds.toFixed(0)} member-s over ${seconds.toFixed(0)} s (peak ${peak}, ${resizes} resizes)`);
      results.push(r);
    }
  } finally {
    await keeper.close();
  }
  return results;
}

export function printDemandTable(results: VariantResult[]): void {
  console.log(`\n${table(['pool', 'wakes', 'warm hits', 'wake p50 ms', 'wake p99 ms', 'member-s held', 'mean members', 'peak', 'resizes'],
    results.map((r) => [r.label, r.wakes, `${r.warm} (${Math.round((100 * r.warm) / r.wakes)}%)`, fmt.ms(r.p50), fmt.ms(r.p99), r.memberSeconds.toFixed(0), (r.memberSeconds / r.seconds).toFixed(2), r.peak, r.resizes]))}`);
  const fixed = results.filter((r) => r.label.startsWith('fixed'));
  const adaptive = results.find((r) => r.label.startsWith('adaptive'));
  if (adaptive) {
    for (const f of fixed) {
      console.log(`adaptive vs ${f.label}: hit rate ${Math.round((100 * adaptive.warm) / adaptive.wakes)}% vs ${Math.round((100 * f.warm) / f.wakes)}%, `
        + `p99 ${fmt.ratio(adaptive.p99 / f.p99)}, cost ${fmt.ratio(adaptive.memberSeconds / f.memberSeconds)}`);
    }
  }
}
