/**
 * The local runtime's warm claim (lib/runtime/local-runtime.ts claimWarm): a member already seen
 * healthy (countReadyWarm, as the pool-keeper counts) is claimed without another `/healthz` round
 * trip; a member seen healthy that died since is still caught: its claim fails (nothing listens any
 * more), it is discarded and the next member is claimed; a member never seen healthy is probed
 * first, as before. Real shims (agent/shim.ts) with the reference agent, state in the embedded S3.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalRuntime } from '../lib/runtime/local-runtime.js';
import type { ShimProcess } from '../lib/runtime/local-process.js';
import { startEmbeddedS3, type EmbeddedS3 } from '../lib/state/embedded-s3.js';
import { createS3Client } from '../lib/state/s3-client.js';
import { StateStore } from '../lib/state/state-store.js';
import type { Tenant } from '../lib/registry/tenant.js';
import { LogCapture } from './support/log-capture.js';
import { waitUntil } from './support/wait.js';

let s3: EmbeddedS3;
let store: StateStore;

t.before(async () => {
  s3 = await startEmbeddedS3();
  store = new StateStore({ s3: createS3Client({ endpoint: s3.endpoint, region: 'us-east-1' }), bucket: 'warm-claim' });
  await store.ensureBucket();
});
t.teardown(() => s3.close());

const tenant = (id: string): Tenant => ({ tenant_id: id, bot_token: `1000:AAtoken-of-${id}-${'x'.repeat(30)}`, status: 'idle', idle_timeout_s: 600, created_at: '', updated_at: '', version: 1 });

/** The runtime's warm members, in claim order (a test's look inside: what claimWarm iterates). */
const membersOf = (runtime: LocalRuntime): ShimProcess[] => [...(runtime as unknown as { warm: Map<string, ShimProcess> }).warm.values()];

/** Counts the `/healthz` probes a member makes from now on. */
function countProbes(shim: ShimProcess): { count: number } {
  const seen = { count: 0 };
  const probe = shim.healthy.bind(shim);
  shim.healthy = () => {
    seen.count++;
    return probe();
  };
  return seen;
}

function newRuntime(t: Test, logs: LogCapture): LocalRuntime {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-warm-claim-'));
  const runtime = new LocalRuntime({ dataDir, log: logs.logger('local-runtime'), warmPoolSecret: 'a-warm-pool-secret-of-enough-length', readyTimeoutS: 30, checkpointIntervalS: 3600 });
  t.teardown(async () => {
    await runtime.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return runtime;
}

t.test('a member seen healthy is claimed without another /healthz probe; one never seen is probed first', async (t) => {
  const logs = new LogCapture();
  const runtime = newRuntime(t, logs);
  await runtime.addWarm(1);
  await waitUntil('the member healthy', async () => (await runtime.countReadyWarm()) === 1, 20_000);
  const [seen] = membersOf(runtime) as [ShimProcess];
  t.equal(seen.seenHealthy, true, 'countReadyWarm saw it healthy');
  const probes = countProbes(seen);
  const first = await runtime.start(tenant('alice'), await store.presign('alice'));
  t.equal(first.path, 'warm');
  t.equal(first.instance.podName, seen.name, 'the member was claimed');
  t.equal(probes.count, 0, 'no /healthz before its claim');
  t.ok(await runtime.find('alice'), 'its agent answers');

  // A member the runtime never saw healthy: probed (waited for) before the claim, as before.
  await runtime.addWarm(1);
  const [fresh] = membersOf(runtime) as [ShimProcess];
  t.equal(fresh.seenHealthy, false);
  const freshProbes = countProbes(fresh);
  const second = await runtime.start(tenant('bob'), await store.presign('bob'));
  t.equal(second.instance.podName, fresh.name);
  t.ok(freshProbes.count >= 1, `probed before its claim (${freshProbes.count})`);
  t.equal(fresh.seenHealthy, true);
});

t.test('a member seen healthy that died since fails its claim: discarded, the next member claimed', async (t) => {
  const logs = new LogCapture();
  const runtime = newRuntime(t, logs);
  await runtime.addWarm(2);
  await waitUntil('both members healthy', async () => (await runtime.countReadyWarm()) === 2, 20_000);
  const [dead, next] = membersOf(runtime) as [ShimProcess, ShimProcess];
  t.ok(dead.seenHealthy && next.seenHealthy);
  const state = await store.presign('carol');
  // SIGKILL the first member in claim order and start at once: the runtime has not seen it exit
  // yet (that takes an event-loop turn), so claimWarm finds it still in the pool, seen healthy.
  process.kill(dead.child.pid as number, 'SIGKILL');
  const started = runtime.start(tenant('carol'), state);
  t.equal(dead.alive, true, 'not yet known to be dead when the claim began');
  const result = await started;
  t.equal(result.path, 'warm', 'still a warm start');
  t.equal(result.instance.podName, next.name, 'served by the next member');
  t.same(logs.find('warm claim refused: discarding that member').map((e) => e.pod), [dead.name], 'the dead member\'s claim failed and it was discarded');
  await dead.exited;
  t.equal(await runtime.countWarm(), 0, 'neither is in the pool any more');
  t.ok(await runtime.find('carol'), 'the tenant\'s agent answers');
  t.same(logs.find('warm pool miss'), [], 'no cold start');
});
