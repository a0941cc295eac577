/**
 * Issue 13, end to end on the Kubernetes API stand-in with the real runtime and pipeline
 * (test/support/kube/realism-platform.ts), what the network and the API's watch do to tenants: a
 * pod IP handed to another tenant's pod within 30 s (a stale endpoint must not deliver across
 * tenants), and the pod watch's history expiring in the middle of wakes (410, re-list, the wakes
 * complete; one watch for all of them). Each ends with every acknowledged update answered once, in
 * order. A lost node: kubernetes-realism-lost-node.test.ts.
 */
import t from 'tap';
import { startRealismPlatform, STARTING_UP_TEXT, type RealismPlatform } from './support/kube/realism-platform.js';
import { Kubelet } from './support/kube/kubelet.js';
import { RESOURCES, type ResourceType } from './support/kube/objects.js';
import { endpointKey } from '../lib/keys.js';
import { waitUntil } from './support/wait.js';

const SECRETS = RESOURCES.find((x) => x.resource === 'secrets') as ResourceType;
let r: RealismPlatform;
let nodeB: Kubelet;

t.before(async () => {
  r = await startRealismPlatform(t, { WAKE_LOCK_TTL_S: '10', COLD_START_TIMEOUT_S: '90', K8S_API_TIMEOUT_S: '2' });
  nodeB = new Kubelet(r.api, { nodeName: 'node-b' });
  t.teardown(() => nodeB.close());
  for (const id of ['ipa', 'ipb', 'exp1', 'exp2']) await r.createTenant(id);
});
t.afterEach(() => {
  r.api.behaviour.reset();
  r.api.faults.clear();
});

const answered = (id: string, chat: number) => r.seen(id, chat).filter((s) => s !== STARTING_UP_TEXT);
const NODES = RESOURCES.find((x) => x.resource === 'nodes') as ResourceType;
/** `kubectl cordon` of every node but one (undefined: uncordon all). */
function cordonAllBut(keep: string | undefined): void {
  for (const n of r.api.store.list(NODES, '').items) {
    r.api.store.mutate(NODES, '', n.metadata.name ?? '', (node) => {
      const spec = node.spec as Record<string, unknown>;
      if (keep !== undefined && n.metadata.name !== keep) spec.unschedulable = true;
      else delete spec.unschedulable;
    });
  }
}
const podOf = (id: string) => r.api.store.list(RESOURCES[0] as ResourceType, r.namespace, { labelSelector: `tenant=${id}` }).items[0];

t.test('a pod IP reused by another tenant within 30 s: the stale endpoint is caught, no cross-tenant delivery', async (t) => {
  r.api.behaviour.set({ timeScale: 0.01, ipReuseAfterS: 30 }); // the VPC CNI's cool-down, scaled to 0.3 s
  await r.send('ipa', 1, 'a one');
  await waitUntil('ipa answered', () => answered('ipa', 1).length === 1, 60_000);
  const staleAddress = await r.p.clients.redis.get(endpointKey('ipa'));
  const ipA = String((podOf('ipa')?.status as { podIP?: string } | undefined)?.podIP);
  const nodeA = String((podOf('ipa')?.spec as { nodeName?: string } | undefined)?.nodeName);
  t.match(staleAddress, new RegExp(`^${ipA.replace(/\./g, '\\.')}:`));
  const slept = await r.p.ztm('tenant', 'sleep', 'ipa');
  t.equal(slept.code, 0, slept.stderr);
  await waitUntil('ipa saved', async () => (await r.memories('ipa', 'saved').catch(() => 0)) === 1, 20_000);
  // ipa's pod object goes once its processes have exited (the checkpoint is saved before): only then
  // is its IP free, and it is handed out again after the CNI's cool-down (0.3 s scaled).
  await waitUntil('ipa\'s pod gone', () => podOf('ipa') === undefined, 30_000);
  await new Promise((resolve) => setTimeout(resolve, 500));
  // ipb's pod goes to the node ipa's pod left (the others cordoned), whose CNI hands out the freed IP.
  cordonAllBut(nodeA);
  await r.send('ipb', 1, 'b one');
  await waitUntil('ipb answered', () => answered('ipb', 1).length === 1, 60_000);
  const ipB = String((podOf('ipb')?.status as { podIP?: string } | undefined)?.podIP);
  t.equal(ipB, ipA, 'ipb\'s pod got the IP ipa\'s pod had (after the 30 s cool-down, scaled)');
  // What a lagging cache still holds for ipa: its old endpoint, now ipb's agent.
  await r.p.clients.redis.set(endpointKey('ipa'), staleAddress ?? '');
  await r.send('ipa', 1, 'a two');
  await waitUntil('ipa answered again', () => answered('ipa', 1).length === 2, 60_000);
  t.same(answered('ipa', 1), ['a one', 'a two'], 'ipa\'s messages answered once each, in order');
  t.same(r.memoryCounts('ipa', 1), [1, 2], 'by ipa\'s own agent, from its saved state');
  t.same(answered('ipb', 1), ['b one'], 'ipb\'s chat got nothing of ipa\'s');
  t.equal(await r.memories('ipb', 'live'), 1, 'ipb\'s agent never took ipa\'s message');
  t.ok(r.p.logs.find("the agent at the endpoint refused this tenant's credential (not its agent): endpoint dropped, waking the tenant").some((e) => e.tenant === 'ipa'),
    'the stale endpoint was recognised by the identity check (401)');
  cordonAllBut(undefined);
});

t.test('the pod watch expires in the middle of two wakes: 410, one re-list, both wakes complete, one watch throughout', async (t) => {
  r.api.behaviour.set({ timeScale: 0.01, scheduling: { provisionS: 300, selector: 'tenant in (exp1,exp2)' }, watch: { bookmarkEveryS: 1e6, historyEvents: 3 } });
  const expiredBefore = r.api.watchStats('pods').expired;
  await r.send('exp1', 1, 'one');
  await r.send('exp2', 1, 'two');
  await waitUntil('both pods waiting for a node', () => ['exp1', 'exp2'].every((id) => JSON.stringify(podOf(id)?.status ?? {}).includes('Unschedulable')), 30_000);
  t.equal(r.api.watchStats('pods').open, 1, 'one pod watch however many wakes are in flight');
  // Churn the informer did not see pushes its version out of the 3-event window; then its stream ends.
  for (let i = 0; i < 5; i++) r.api.store.create(SECRETS, r.namespace, { metadata: { name: `churn-${i}` } });
  r.api.closeWatches();
  await waitUntil('both answers', () => answered('exp1', 1).length === 1 && answered('exp2', 1).length === 1, 60_000);
  t.ok(r.api.watchStats('pods').expired > expiredBefore, 'the re-watch got 410 Expired');
  t.same(r.seen('exp1', 1), [STARTING_UP_TEXT, 'one']);
  t.same(r.seen('exp2', 1), [STARTING_UP_TEXT, 'two']);
  t.equal(r.api.watchStats('pods').open, 1, 'and one watch after');
});
