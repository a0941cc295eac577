import t from 'tap';
import { capacityRow, capacityTable, DEFAULT_INPUTS, poissonQuantile } from '../bench/tools/capacity-model.js';

t.test('the warm pool covers the wakes of one replenish time with the stated probability', async (t) => {
  t.equal(poissonQuantile(0, 0.95), 0);
  t.equal(poissonQuantile(1, 0.95), 3, 'P(N≤2)=0.920, P(N≤3)=0.981 for λ=1');
  t.equal(poissonQuantile(10, 0.5), 10);
  t.ok(poissonQuantile(5000, 0.95) > 5000, 'large λ uses the normal tail');
});

t.test('Redis masters follow the per-update CPU, replicas never drop below two', async (t) => {
  const a = capacityRow(100_000, 10_000, { ...DEFAULT_INPUTS, redisUsPerUpdate: 213 });
  const b = capacityRow(100_000, 10_000, { ...DEFAULT_INPUTS, redisUsPerUpdate: 70 });
  t.ok(a.redisMastersForCpu > b.redisMastersForCpu, `${a.redisMastersForCpu} > ${b.redisMastersForCpu}`);
  t.equal(capacityRow(10, 1, DEFAULT_INPUTS).forwarderReplicas, 2);
  t.ok(a.awakeTenants <= 100_000);
  t.equal(capacityTable(DEFAULT_INPUTS).split('\n').length, 2 + 9);
});
