import t from 'tap';
import { capacityRow, capacityTable, DEFAULT_INPUTS, poissonQuantile } from '../bench/tools/capacity-model.js';

t.test('the warm pool covers the wakes of one replenish time with the stated probability', async (t) => {
  t.equal(poissonQuantile(0, 0.95), 0);
  t.equal(poissonQuantile(1, 0.95), 3, 'P(N≤2)=0.920, P(N≤3)=0.981 for λ=1');
  t.equal(poissonQuantile(10, 0.5), 10);
  t.ok(poissonQuantile(5000, 0.95) > 5000, 'large λ uses the normal tail');
});

t.test('Redis masters follow the per-update CPU, replicas never drop below two', async (t) => {
  const a = capacityRow(100_000, 10_000, { ...DEFAULT_INPUTS, redisClusterUsPerUpdate: 213 });
  const b = capacityRow(100_000, 10_000, { ...DEFAULT_INPUTS, redisClusterUsPerUpdate: 70 });
  t.ok(a.redisMastersForCpu > b.redisMastersForCpu, `${a.redisMastersForCpu} > ${b.redisMastersForCpu}`);
  t.equal(capacityRow(10, 1, DEFAULT_INPUTS).forwarderReplicas, 2);
  t.ok(a.awakeTenants <= 100_000);
  t.equal(capacityTable(DEFAULT_INPUTS).split('\n').length, 2 + 9);
});

t.test('one node while it suffices; past one master the cluster\'s own cost per update sizes the masters', async (t) => {
  const inputs = { ...DEFAULT_INPUTS, redisUsPerUpdate: 100, redisClusterUsPerUpdate: 200, redisCoreBudget: 0.5 };
  // 4,000/s × 100 µs = 0.4 of a core: within one node's budget, the cluster's figure is not used.
  t.equal(capacityRow(10_000, 4_000, inputs).redisMastersForCpu, 1);
  // 6,000/s × 100 µs = 0.6 > 0.5: a cluster, 6,000 × 200 µs = 1.2 cores → 3 masters (2 by the one-node figure).
  t.equal(capacityRow(10_000, 6_000, inputs).redisMastersForCpu, 3);
  // Memory alone past one master makes it a cluster too, sized by the cluster's cost.
  const big = capacityRow(10_000, 4_000, { ...inputs, redisMasterBytes: 2 ** 20 });
  t.ok(big.redisMasters > 1, `${big.redisMasters} masters for memory`);
  t.equal(big.redisMastersForCpu, 2, '4,000 × 200 µs = 0.8 cores → 2 masters once it is a cluster');
});
