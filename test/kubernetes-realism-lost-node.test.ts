/**
 * Issue 13, end to end on the Kubernetes API stand-in with the real runtime and pipeline
 * (test/support/kube/realism-platform.ts): the node running a tenant's pod is lost (its processes
 * gone, Ready=Unknown, tainted unreachable). The pod stays Terminating (no kubelet confirms) until
 * the runtime force-deletes it; the tenant wakes on the other node from its last checkpoint, and
 * every acknowledged update is answered once, in order.
 *
 * Slow by nature: the runtime forces only once the pod's deletion grace (POD_TERMINATION_GRACE_S,
 * here its lowest, 10 s: the shim's final checkpoint) is over and the node is seen lost; that grace
 * is not on the stand-in's scaled clock.
 */
import t from 'tap';
import { startRealismPlatform, STARTING_UP_TEXT, type RealismPlatform } from './support/kube/realism-platform.js';
import { Kubelet } from './support/kube/kubelet.js';
import { RESOURCES, type ResourceType } from './support/kube/objects.js';
import { waitUntil } from './support/wait.js';

let r: RealismPlatform;
let nodeB: Kubelet;

t.before(async () => {
  r = await startRealismPlatform(t, { WAKE_LOCK_TTL_S: '10', COLD_START_TIMEOUT_S: '150', K8S_API_TIMEOUT_S: '2', POD_TERMINATION_GRACE_S: '10' });
  // The image checkpoints every second (CHECKPOINT_INTERVAL_S): a lost node keeps what was saved.
  r.kubelet.settings.imageEnv.CHECKPOINT_INTERVAL_S = '1';
  nodeB = new Kubelet(r.api, { nodeName: 'node-b', imageEnv: { ...r.kubelet.settings.imageEnv } });
  t.teardown(() => nodeB.close());
  await r.createTenant('lost');
});

const answered = (id: string, chat: number) => r.seen(id, chat).filter((s) => s !== STARTING_UP_TEXT);
const podOf = (id: string) => r.api.store.list(RESOURCES[0] as ResourceType, r.namespace, { labelSelector: `tenant=${id}` }).items[0];

t.test('a lost node: the stuck Terminating pod is force-deleted, the tenant wakes on another node from its last checkpoint', async (t) => {
  r.api.behaviour.set({ timeScale: 0.01 });
  await r.send('lost', 1, 'remember me');
  await waitUntil('the first answer', () => answered('lost', 1).length === 1, 60_000);
  await waitUntil('a checkpoint holding it', async () => (await r.memories('lost', 'saved').catch(() => 0)) === 1, 20_000);
  const first = podOf('lost');
  t.equal((first?.spec as { terminationGracePeriodSeconds?: number } | undefined)?.terminationGracePeriodSeconds, 10, 'the pod has the configured grace');
  const nodeName = String((first?.spec as { nodeName?: string } | undefined)?.nodeName);
  await (nodeName === 'node-b' ? nodeB : r.kubelet).loseNode();
  await r.send('lost', 1, 'after the node died');
  await waitUntil('the second answer', () => answered('lost', 1).length === 2, 150_000);
  t.same(answered('lost', 1), ['remember me', 'after the node died'], 'each answered once, in order');
  t.same(r.memoryCounts('lost', 1), [1, 2], 'the new agent restored the last checkpoint');
  const forced = r.api.requests.filter((q) => q.method === 'DELETE' && q.path.endsWith('/pods/zeroclaw-lost')
    && (q.query.gracePeriodSeconds === '0' || (q.body as { gracePeriodSeconds?: number } | undefined)?.gracePeriodSeconds === 0));
  t.ok(forced.length >= 1, 'the pod stuck on the lost node was force-deleted (gracePeriodSeconds=0)');
  const now = podOf('lost');
  t.not(now?.metadata.uid, first?.metadata.uid, 'a new pod');
  t.not((now?.spec as { nodeName?: string } | undefined)?.nodeName, nodeName, 'on the node that is still there');
  // The waker marks the record running after the delivery (the message does not wait for that write).
  await waitUntil('the record marked running', async () => (await r.tenantView('lost')).status === 'running', 15_000).catch(() => undefined);
  t.equal((await r.tenantView('lost')).status, 'running');
});
