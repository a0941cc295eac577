import t from 'tap';
import { capacityRow, capacityTable, checkInputs, DEFAULT_INPUTS, poissonQuantile } from '../bench/tools/capacity-model.js';

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

t.test('one node while it suffices; past one master the cluster\'s own cost per update and whole shards size the masters', async (t) => {
  const inputs = { ...DEFAULT_INPUTS, redisUsPerUpdate: 100, redisClusterUsPerUpdate: 200, redisCoreBudget: 0.5, deliveryShards: 24 };
  // 5,000/s × 100 µs = exactly the budget of one node: still one node.
  t.equal(capacityRow(10_000, 5_000, inputs).redisMastersForCpu, 1);
  t.equal(capacityRow(10_000, 4_000, inputs).redisMastersForCpu, 1);
  // 6,000/s × 100 µs = 0.6 > 0.5: a cluster. 6,000 × 200 µs = 1.2 cores over 24 shards = 0.05 a
  // shard, 10 fit a master's 0.5: three masters (two would do by the one-node figure).
  t.equal(capacityRow(10_000, 6_000, inputs).redisMastersForCpu, 3);
  // Memory alone past one master makes it a cluster too, sized by the cluster's cost.
  const big = capacityRow(10_000, 4_000, { ...inputs, redisMasterBytes: 2 ** 20 });
  t.ok(big.redisMasters > 1, `${big.redisMasters} masters for memory`);
  t.equal(big.redisMastersForCpu, 2, '4,000 × 200 µs over 24 shards: 15 shards fit a master, two masters');
});

t.test('masters carry whole shards: a load that needs 17 masters of CPU gets 24 with 24 shards, 17 with 68', async (t) => {
  // 50,000/s × 201 µs = 10.05 cores: 17 masters at 0.6, but a shard of 24 is 0.42 of a core and two do not fit.
  const of = (deliveryShards: number) => capacityRow(10_000, 50_000, { ...DEFAULT_INPUTS, redisClusterUsPerUpdate: 201, redisCoreBudget: 0.6, deliveryShards });
  t.equal(of(24).redisMastersForCpu, 24);
  t.equal(of(68).redisMastersForCpu, 17);
  t.notOk(of(24).shardTooHot);
  t.ok(of(12).shardTooHot, 'a shard of 12 (0.84 of a core) does not fit one master: more shards needed');
  t.match(capacityTable({ ...DEFAULT_INPUTS, deliveryShards: 12 }), /\(more shards\)/);
});

t.test('inputs that cannot describe a platform are refused with one line', async (t) => {
  t.equal(checkInputs(DEFAULT_INPUTS), undefined);
  t.match(checkInputs({ ...DEFAULT_INPUTS, redisClusterUsPerUpdate: 67 }) ?? '', /all masters together.*at least redisUsPerUpdate/);
  t.match(checkInputs({ ...DEFAULT_INPUTS, deliveryShards: 2.5 }) ?? '', /deliveryShards/);
  t.match(checkInputs({ ...DEFAULT_INPUTS, agentAnswerS: -1 }) ?? '', /agentAnswerS must be/);
});
