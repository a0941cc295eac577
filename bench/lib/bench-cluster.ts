/**
 * A local Redis Cluster for the benchmarks: the test suite's 6 real redis-servers (3 masters, 3
 * replicas; test/support/redis-cluster.ts), with the masters persisting as the single-node
 * benchmark's server does (appendonly, fsync every second), and the figures the benchmarks read:
 * CPU and command calls summed over the masters and per master.
 */
import { Redis } from 'ioredis';
import { startRedisCluster, type TestRedisCluster } from '../../test/support/redis-cluster.js';

export interface MasterFigures {
  port: number;
  cpuSeconds: number;
  calls: number;
}

export interface BenchCluster {
  url: string;
  cluster: TestRedisCluster;
  /** CPU seconds (user + sys) of every master together. */
  cpuSeconds(): Promise<number>;
  /** Calls per command over every master (INFO commandstats). */
  commandCalls(): Promise<Record<string, number>>;
  /** CPU seconds and command calls of each master. */
  perMaster(): Promise<MasterFigures[]>;
  close(): Promise<void>;
}

const num = (info: string, k: string): number => Number(new RegExp(`^${k}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 'NaN');

export async function startBenchCluster(): Promise<BenchCluster> {
  const cluster = await startRedisCluster();
  const masters = (await cluster.topology()).filter((n) => n.role === 'master').map((n) => n.port).sort((a, b) => a - b);
  const probes = masters.map((port) => new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 3 }));
  for (const p of probes) {
    p.on('error', () => undefined);
    await p.config('SET', 'appendonly', 'yes');
    await p.config('SET', 'appendfsync', 'everysec');
  }
  const calls = async (p: Redis): Promise<Record<string, number>> => {
    const out: Record<string, number> = {};
    for (const m of (await p.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1] as string] = Number(m[2]);
    return out;
  };
  return {
    url: cluster.url,
    cluster,
    async cpuSeconds() {
      let s = 0;
      for (const p of probes) {
        const info = await p.info('cpu');
        s += num(info, 'used_cpu_user') + num(info, 'used_cpu_sys');
      }
      return s;
    },
    async commandCalls() {
      const out: Record<string, number> = {};
      for (const p of probes) for (const [k, v] of Object.entries(await calls(p))) out[k] = (out[k] ?? 0) + v;
      return out;
    },
    async perMaster() {
      return Promise.all(probes.map(async (p, i) => {
        const info = await p.info('cpu');
        const c = await calls(p);
        const delivery = Object.entries(c).filter(([k]) => !/^(cluster|info|ping|config|client|command|hello|readonly)/.test(k)).reduce((a, [, v]) => a + v, 0);
        return { port: masters[i] as number, cpuSeconds: num(info, 'used_cpu_user') + num(info, 'used_cpu_sys'), calls: delivery };
      }));
    },
    async close() {
      for (const p of probes) p.disconnect();
      await cluster.stop();
    },
  };
}
