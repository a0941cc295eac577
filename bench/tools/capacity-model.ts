/**
 * The capacity model of docs/capacity.md, as code, so the tables are recomputed from measured
 * per-update costs instead of being edited by hand:
 *
 *   node --import tsx bench/tools/capacity-model.ts [inputs.json]
 *
 * prints the Markdown tables. Every input is a measured figure (docs/benchmarks.md says where each
 * comes from) or a stated assumption about the workload; an inputs file overrides any of them.
 */
import { readFileSync } from 'node:fs';

export interface CapacityInputs {
  /** Redis CPU per delivered update on a single Redis node (bench:e2e, µs). */
  redisUsPerUpdate: number;
  /**
   * Redis CPU per delivered update on a cluster, all masters together (bench:e2e --redis cluster,
   * µs): what the master holding an update's shard spends on it. More than on one node (replication
   * to a replica, an accept script per shard instead of per batch, the cluster bus); used as soon as
   * the load needs more than one master.
   */
  redisClusterUsPerUpdate: number;
  /** Fraction of a Redis core we plan to use (headroom for failover, replication, spikes). */
  redisCoreBudget: number;
  /** Forwarder CPU per delivered update (bench:e2e, µs of the forwarder processes' CPU). */
  forwarderUsPerUpdate: number;
  /** Ingress CPU per accepted update (bench:ingress real-fresh, µs). */
  ingressUsPerUpdate: number;
  /** Fraction of a core a service replica is planned to use (its CPU request). */
  serviceCoreBudget: number;
  /** How long an agent takes to answer (s): deliveries in flight = rate × this. */
  agentAnswerS: number;
  /** Drain slots per forwarder replica (FORWARDER_CONCURRENCY=500 over 24 shards ≈ 1,000; the shipped 64 gives 150). */
  forwarderConcurrency: number;
  /** Redis bytes every tenant holds asleep (incarnation index entry, activity member, registry cache). */
  bytesPerTenant: number;
  /** Extra Redis bytes an awake tenant holds (endpoint, lease, activity score, mailbox of an open chat). */
  bytesPerAwakeTenant: number;
  /** Dedup: the count bound (DEDUP_MAX_PER_TENANT) and bytes per kept id (zset member + score). */
  dedupIdsPerTenant: number;
  dedupBytesPerId: number;
  /** Dedup age bound (s): a tenant idle longer than 9/8 of this holds no dedup memory. */
  dedupWindowS: number;
  /** Workload assumption: updates in one conversation (a session of one tenant). */
  updatesPerSession: number;
  /** Workload assumption: how long a conversation lasts (s). */
  sessionS: number;
  /** A tenant's idle timeout (s; IDLE_TIMEOUT_DEFAULT_S): it stays awake this long after its last update. */
  idleTimeoutS: number;
  /** Measured time to start a replacement warm member (s): the pool must cover wakes during it. */
  warmReplenishS: number;
  /** Probability a wake finds a warm member (the pool-keeper's WARM_POOL_HIT_TARGET). */
  warmHitTarget: number;
  /** Usable memory of one Redis master (bytes). */
  redisMasterBytes: number;
  /** DELIVERY_SHARDS: a cluster's masters carry whole shards, so a master's load is its shards' share. */
  deliveryShards: number;
}

/** The dedup zset's TTL, at most, in windows (lib/delivery/mailbox-scripts.ts ACCEPT). */
const DEDUP_TTL_OF_WINDOW = 9 / 8;

export const DEFAULT_INPUTS: CapacityInputs = {
  redisUsPerUpdate: 135,
  redisClusterUsPerUpdate: 201,
  redisCoreBudget: 0.6,
  forwarderUsPerUpdate: 411,
  ingressUsPerUpdate: 69,
  serviceCoreBudget: 0.7,
  agentAnswerS: 2,
  forwarderConcurrency: 1_000,
  bytesPerTenant: 250,
  bytesPerAwakeTenant: 1_200,
  dedupIdsPerTenant: 1_000,
  dedupBytesPerId: 60,
  dedupWindowS: 3_600,
  updatesPerSession: 20,
  sessionS: 300,
  idleTimeoutS: 300,
  warmReplenishS: 20,
  warmHitTarget: 0.95,
  redisMasterBytes: 12 * 2 ** 30,
  deliveryShards: 24,
};

/** Inputs that cannot describe a platform: a one-line reason, or undefined. */
export function checkInputs(i: CapacityInputs): string | undefined {
  for (const [k, v] of Object.entries(i)) {
    if (!(k in DEFAULT_INPUTS) || typeof v !== 'number' || !Number.isFinite(v) || v < 0) return `${k} must be a known, non-negative number`;
  }
  if (i.redisClusterUsPerUpdate < i.redisUsPerUpdate) {
    return 'redisClusterUsPerUpdate is all masters together per update (bench:e2e --redis cluster, summed), at least redisUsPerUpdate (one node), not one master\'s share';
  }
  if (!Number.isInteger(i.deliveryShards) || i.deliveryShards < 1) return 'deliveryShards must be a positive whole number (DELIVERY_SHARDS)';
  return undefined;
}

export interface CapacityRow {
  tenants: number;
  updatesPerS: number;
  awakeTenants: number;
  wakesPerS: number;
  redisMastersForCpu: number;
  /** One shard alone needs more than a master's budget: DELIVERY_SHARDS must be raised for this load. */
  shardTooHot: boolean;
  redisMemoryBytes: number;
  dedupBytes: number;
  redisMasters: number;
  forwarderReplicas: number;
  ingressReplicas: number;
  warmPool: number;
}

/** Smallest n with P(Poisson(lambda) ≤ n) ≥ p: the warm members that cover the wakes of one replenish time. */
export function poissonQuantile(lambda: number, p: number): number {
  if (lambda <= 0) return 0;
  let term = Math.exp(-lambda);
  if (term === 0) return Math.ceil(lambda + 4 * Math.sqrt(lambda)); // normal approximation for large lambda
  let sum = term;
  let n = 0;
  while (sum < p && n < 1e6) {
    n++;
    term *= lambda / n;
    sum += term;
  }
  return n;
}

export function capacityRow(tenants: number, updatesPerS: number, i: CapacityInputs): CapacityRow {
  // Sessions arrive per tenant as a Poisson process; one arriving while the tenant is still awake
  // (within a session plus the idle timeout of the previous one) needs no wake.
  const sessionsPerTenantPerS = updatesPerS / i.updatesPerSession / tenants;
  const awakeFor = i.sessionS + i.idleTimeoutS;
  const asleep = Math.exp(-sessionsPerTenantPerS * awakeFor);
  const wakesPerS = tenants * sessionsPerTenantPerS * asleep;
  const awakeTenants = Math.ceil(tenants * (1 - asleep));
  // A tenant keeps the ids of its updates within the window, at most the count bound; one idle
  // longer than 9/8 of the window (the zset's TTL at most) holds none.
  const dedupTenants = Math.min(tenants, awakeTenants + wakesPerS * i.dedupWindowS * DEDUP_TTL_OF_WINDOW);
  const idsPerTenant = Math.min(i.dedupIdsPerTenant, (updatesPerS * i.dedupWindowS) / Math.max(dedupTenants, 1));
  const dedupBytes = dedupTenants * idsPerTenant * i.dedupBytesPerId;
  const redisMemoryBytes = tenants * i.bytesPerTenant + awakeTenants * i.bytesPerAwakeTenant + dedupBytes;
  // One node while its CPU and memory suffice; past that a cluster, whose masters spend more per
  // update and carry whole shards: as many masters as it takes for each one's shards to fit its
  // budget (24 shards over 17 masters would give some two, some one).
  const mastersForMemory = Math.ceil(redisMemoryBytes / i.redisMasterBytes);
  const oneNodeCores = (updatesPerS * i.redisUsPerUpdate) / 1e6;
  const coresPerShard = (updatesPerS * i.redisClusterUsPerUpdate) / 1e6 / i.deliveryShards;
  const shardTooHot = coresPerShard > i.redisCoreBudget;
  const shardsPerMaster = Math.max(1, Math.floor(i.redisCoreBudget / coresPerShard));
  const redisMastersForCpu = oneNodeCores <= i.redisCoreBudget && mastersForMemory <= 1 ? 1 : Math.ceil(i.deliveryShards / shardsPerMaster);
  const redisMasters = Math.max(1, redisMastersForCpu, mastersForMemory);
  const forwarderByCpu = (updatesPerS * i.forwarderUsPerUpdate) / 1e6 / i.serviceCoreBudget;
  const forwarderByConcurrency = (updatesPerS * i.agentAnswerS) / i.forwarderConcurrency;
  return {
    tenants,
    updatesPerS,
    awakeTenants,
    wakesPerS,
    redisMastersForCpu,
    shardTooHot,
    redisMemoryBytes,
    dedupBytes,
    redisMasters,
    forwarderReplicas: Math.max(2, Math.ceil(Math.max(forwarderByCpu, forwarderByConcurrency))),
    ingressReplicas: Math.max(2, Math.ceil((updatesPerS * i.ingressUsPerUpdate) / 1e6 / i.serviceCoreBudget)),
    warmPool: poissonQuantile(wakesPerS * i.warmReplenishS, i.warmHitTarget),
  };
}

function bytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(0)} MiB`;
  return `${(n / 2 ** 10).toFixed(0)} KiB`;
}

export function capacityTable(inputs: CapacityInputs, tenantCounts = [10_000, 100_000, 1_000_000], rates = [1_000, 10_000, 50_000]): string {
  const lines = [
    '| tenants | updates/s | awake | wakes/s | Redis masters (CPU) | Redis memory | of which dedup | Redis masters | forwarders | ingress | warm pool |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const tenants of tenantCounts) {
    for (const rate of rates) {
      const r = capacityRow(tenants, rate, inputs);
      lines.push(`| ${tenants.toLocaleString('en')} | ${rate.toLocaleString('en')} | ${r.awakeTenants.toLocaleString('en')} | ${r.wakesPerS.toFixed(1)} | ${r.redisMastersForCpu}${r.shardTooHot ? ' (more shards)' : ''} | ${bytes(r.redisMemoryBytes)} | ${bytes(r.dedupBytes)} | ${r.redisMasters} | ${r.forwarderReplicas} | ${r.ingressReplicas} | ${r.warmPool} |`);
    }
  }
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, '/'))) {
  const file = process.argv[2];
  const inputs = { ...DEFAULT_INPUTS, ...(file ? (JSON.parse(readFileSync(file, 'utf8')) as Partial<CapacityInputs>) : {}) };
  const wrong = checkInputs(inputs);
  if (wrong) {
    console.error(`capacity-model: ${wrong}`);
    process.exit(2);
  }
  console.log(capacityTable(inputs));
}
