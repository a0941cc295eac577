/**
 * A real Redis Cluster for tests: 6 local `redis-server` processes (3 masters, 3 replicas) on free
 * ports with their data in a temp dir, joined by `redis-cli --cluster create`. Never the machine's
 * 6379. Every wait is bounded. `killMaster` SIGKILLs a master and waits for its replica to take over.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../lib/util/free-port.js';
import { waitUntil } from './wait.js';

const HOST = '127.0.0.1';
const SLOTS = 16_384;
/** How long a master may be silent before its replica fails over (2 s: a failover takes ~3-5 s). */
const NODE_TIMEOUT_MS = 2000;

export interface ClusterNode {
  port: number;
  /** The cluster bus port (given explicitly: port + 10000 need not be free). */
  busPort: number;
  url: string;
  dir: string;
  /** The redis-server process; undefined once killed or stopped. */
  child: ChildProcess | undefined;
}

export interface ClusterNodeInfo {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** Node id of its master (replicas). */
  masterId: string | undefined;
  failed: boolean;
}

export interface TestRedisCluster {
  nodes: ClusterNode[];
  /** One node's URL (the first): what a service given "any node" connects to. */
  url: string;
  /** The nodes as a live node sees them (CLUSTER NODES). */
  topology(): Promise<ClusterNodeInfo[]>;
  /** The live master that serves `key`'s slot. */
  masterFor(key: string): Promise<ClusterNode>;
  /**
   * SIGKILLs `master` (default: the one serving `{mbox}`), then waits until one of its replicas is
   * master and every live node reports cluster_state:ok with all slots covered.
   */
  killMaster(master?: ClusterNode): Promise<{ killed: ClusterNode; promoted: ClusterNode }>;
  stop(): Promise<void>;
}

async function onNode<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({ host: HOST, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false, connectTimeout: 1000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

/** CLUSTER INFO fields of a node, or undefined when it does not answer. */
async function clusterInfo(port: number): Promise<Record<string, string> | undefined> {
  try {
    const text = await onNode(port, (r) => r.call('CLUSTER', 'INFO') as Promise<string>);
    return Object.fromEntries(text.split(/\r?\n/).filter(Boolean).map((l) => l.split(':') as [string, string]));
  } catch {
    return undefined;
  }
}

function parseNodes(text: string): ClusterNodeInfo[] {
  return text.split('\n').filter(Boolean).map((line) => {
    const [id, addr, flags, master] = line.split(' ') as [string, string, string, string];
    const f = flags.split(',');
    return {
      id, port: Number(addr.split('@')[0]?.split(':')[1]),
      role: f.includes('master') ? 'master' : 'replica',
      masterId: master === '-' ? undefined : master,
      failed: f.includes('fail') || f.includes('fail?'),
    };
  });
}

/** Every live node agrees: state ok, all slots assigned and served. */
async function healthy(nodes: ClusterNode[]): Promise<boolean> {
  for (const n of nodes.filter((x) => x.child)) {
    const info = await clusterInfo(n.port);
    if (!info || info.cluster_state !== 'ok' || Number(info.cluster_slots_ok) !== SLOTS) return false;
  }
  return true;
}

function startNode(node: ClusterNode): void {
  mkdirSync(node.dir, { recursive: true });
  const child = spawn('redis-server', [
    '--port', String(node.port), '--cluster-port', String(node.busPort), '--bind', HOST,
    '--cluster-enabled', 'yes', '--cluster-config-file', path.join(node.dir, 'nodes.conf'),
    '--cluster-node-timeout', String(NODE_TIMEOUT_MS),
    // A replica may take over however long it was cut off: the test kills masters on purpose.
    '--cluster-replica-validity-factor', '0', '--cluster-allow-replica-migration', 'no',
    '--dir', node.dir, '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--daemonize', 'no', '--loglevel', 'warning',
  ], { stdio: ['ignore', 'ignore', 'ignore'] });
  node.child = child;
  child.once('exit', () => {
    if (node.child === child) node.child = undefined;
  });
}

async function killNode(node: ClusterNode, signal: NodeJS.Signals): Promise<void> {
  const child = node.child;
  if (!child) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => (clearTimeout(timer), resolve()));
    child.kill(signal);
  });
  node.child = undefined;
}

export async function startRedisCluster(): Promise<TestRedisCluster> {
  if (spawnSync('redis-cli', ['--version'], { stdio: 'ignore' }).status !== 0) throw new Error('redis-cli is not installed (it comes with redis-server)');
  const root = mkdtempSync(path.join(os.tmpdir(), 'ztm-redis-cluster-'));
  const nodes: ClusterNode[] = [];
  const used = new Set<number>();
  const port = async (): Promise<number> => {
    for (;;) {
      const p = await freePort(HOST);
      if (p !== 6379 && !used.has(p)) return used.add(p), p;
    }
  };
  for (let i = 0; i < 6; i++) {
    const p = await port();
    nodes.push({ port: p, busPort: await port(), url: `redis://${HOST}:${p}`, dir: path.join(root, String(p)), child: undefined });
  }
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => killNode(n, 'SIGKILL')));
    rmSync(root, { recursive: true, force: true });
  };
  try {
    for (const n of nodes) startNode(n);
    await waitUntil('6 redis-server cluster nodes answering', async () => (await Promise.all(nodes.map((n) => clusterInfo(n.port)))).every(Boolean), 10_000);
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `${HOST}:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${(create.stdout + create.stderr).trim().split('\n').slice(-3).join(' | ')}`);
    await waitUntil('cluster_state:ok with all 16384 slots on every node', () => healthy(nodes), 30_000);
    // Replicas that have synced with their masters: a failover before that would lose the data.
    await waitUntil('every replica in sync with its master', async () => {
      const links = await Promise.all(nodes.map((n) => onNode(n.port, (r) => r.info('replication')).catch(() => '')));
      return links.filter((t) => /role:slave/.test(t)).length === 3 && links.every((t) => !/role:slave/.test(t) || /master_link_status:up/.test(t));
    }, 30_000);
  } catch (err) {
    await stop();
    throw err;
  }

  const live = (): ClusterNode => {
    const n = nodes.find((x) => x.child);
    if (!n) throw new Error('no cluster node is running');
    return n;
  };
  const topology = async (): Promise<ClusterNodeInfo[]> => parseNodes(await onNode(live().port, (r) => r.call('CLUSTER', 'NODES') as Promise<string>));
  const byPort = (p: number): ClusterNode => {
    const n = nodes.find((x) => x.port === p);
    if (!n) throw new Error(`no cluster node on port ${p}`);
    return n;
  };
  const masterFor = async (key: string): Promise<ClusterNode> => {
    const slot = Number(await onNode(live().port, (r) => r.call('CLUSTER', 'KEYSLOT', key)));
    const slots = (await onNode(live().port, (r) => r.call('CLUSTER', 'SLOTS'))) as Array<[number, number, [string, number, string]]>;
    const range = slots.find(([from, to]) => slot >= from && slot <= to);
    if (!range) throw new Error(`slot ${slot} of ${key} is not served`);
    return byPort(range[2][1]);
  };

  return {
    nodes,
    url: nodes[0]?.url as string,
    topology,
    masterFor,
    async killMaster(master) {
      const victim = master ?? (await masterFor('{mbox}'));
      const before = await topology();
      const id = before.find((n) => n.port === victim.port && n.role === 'master')?.id;
      if (!id) throw new Error(`node ${victim.port} is not a master`);
      await killNode(victim, 'SIGKILL');
      let promoted: ClusterNode | undefined;
      await waitUntil(`a replica of ${victim.port} promoted to master`, async () => {
        const now = await topology().catch(() => []);
        const p = now.find((n) => n.role === 'master' && !n.failed && before.some((b) => b.id === n.id && b.masterId === id));
        if (p) promoted = byPort(p.port);
        return promoted !== undefined;
      }, 30_000);
      await waitUntil('cluster_state:ok again on every live node', () => healthy(nodes), 30_000);
      return { killed: victim, promoted: promoted as ClusterNode };
    },
    stop,
  };
}
