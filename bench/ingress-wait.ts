/**
 * What acknowledging only after a replica has the write costs (DELIVERY_WAIT_REPLICAS): the
 * ingress's durable write (Mailbox.accept: the accept script and the drain job) on a local Redis
 * Cluster of 3 masters + 3 replicas (bench/lib/bench-cluster.ts), closed loop at --concurrency
 * accepts in flight, without WAIT and with WAIT 1, interleaved in the same run (--repeats each).
 * HTTP is left out: the ingress adds the same cost to both (docs/benchmarks.md has its figures).
 *
 *   node --import tsx bench/ingress-wait.ts [--seconds 8] [--concurrency 64] [--repeats 2] [--fresh]
 *
 * --fresh: every update the first of its chat (a drain job per accept), else 10 chats per tenant.
 */
import { parseArgs } from 'node:util';
import { createRedis, closeRedis } from '../lib/redis.js';
import { Mailbox } from '../lib/delivery/mailbox.js';
import { ShardQueues } from '../lib/delivery/shard-queues.js';
import { DeliveryLayout } from '../lib/delivery/shards.js';
import { fmt, machineInfo, printMachine, table } from './lib/common.js';
import { makeUpdateFactory } from './lib/updates.js';
import { startBenchCluster } from './lib/bench-cluster.js';

const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    concurrency: { type: 'string', default: '64' },
    repeats: { type: 'string', default: '2' },
    fresh: { type: 'boolean', default: false },
  },
});
const SECONDS = Number(opts.seconds);
const CONCURRENCY = Number(opts.concurrency);
const REPEATS = Number(opts.repeats);

printMachine(machineInfo());
console.log(`# accepts on a 3-master cluster with replicas, ${CONCURRENCY} in flight, ${SECONDS} s per run, ${REPEATS} repeats; ${opts.fresh ? 'every update opens its chat' : '10 chats per tenant'}`);
const cluster = await startBenchCluster();
const redis = createRedis({ url: cluster.url, cluster: true, failFast: true, name: 'wait-bench' });
const bull = createRedis({ url: cluster.url, cluster: true, blocking: false, name: 'wait-bench-bull' });
redis.on('error', () => undefined);
bull.on('error', () => undefined);
// The fail-fast client (the ingress's) refuses commands until it is connected.
if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
const layout = DeliveryLayout.of(24);
const queues = new ShardQueues(bull, layout);
const makeUpdate = makeUpdateFactory(1024);
let nextId = 1;
const rows: string[][] = [];
try {
  for (let r = 0; r < REPEATS; r++) {
    for (const wait of [0, 1]) {
      const mailbox = new Mailbox({ redis, queues, layout, waitReplicas: wait, waitTimeoutMs: 1000 });
      const latencies: number[] = [];
      let done = 0;
      let failed = 0;
      const cpu0 = await cluster.cpuSeconds();
      const start = performance.now();
      const end = start + SECONDS * 1000;
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (performance.now() < end) {
          const id = nextId++;
          const tenant = `w-${id % 1000}`;
          const chat = opts.fresh ? String(id) : String(id % 10);
          const t0 = performance.now();
          try {
            await mailbox.accept(tenant, chat, id, makeUpdate(id, Number(chat)));
            done++;
            latencies.push(performance.now() - t0);
          } catch {
            failed++;
          }
        }
      }));
      const seconds = (performance.now() - start) / 1000;
      const cpu = (await cluster.cpuSeconds()) - cpu0;
      latencies.sort((a, b) => a - b);
      const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] ?? Number.NaN;
      rows.push([String(r + 1), wait ? 'WAIT 1' : 'no WAIT', fmt.int(done / seconds), `${fmt.ms(pct(50))} / ${fmt.ms(pct(99))}`, String(failed), `${((cpu / done) * 1e6).toFixed(1)}`]);
      console.log(rows[rows.length - 1]?.join('  '));
    }
  }
  console.log(`\n${table(['repeat', 'mode', 'accepts/s', 'p50 / p99 ms', 'failed', 'Redis µs (masters) per accept'], rows)}`);
} finally {
  await queues.close();
  await closeRedis(redis);
  await closeRedis(bull);
  await cluster.close();
}
