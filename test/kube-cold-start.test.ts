/**
 * Starts on the Kubernetes runtime as the cluster really behaves (the stand-in's behaviour knobs,
 * on a scaled clock): a pod waiting minutes for a node Karpenter provisions is waited for past the
 * ready bound and not deleted, with its phases reported; pods that can never start (an image that
 * cannot be pulled, a crash, admission refusing the pod) fail with their reason and leave nothing
 * behind; a hung API call does not hang the start; a pod stuck on a lost node is force-deleted and
 * the tenant wakes elsewhere from its last checkpoint. Real shims and reference agents run the pods.
 */
import t from 'tap';
import { request } from 'undici';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { KubernetesRuntime, type KubernetesRuntimeOptions } from '../lib/runtime/kubernetes-runtime.js';
import type { StartPhase, StartProgress } from '../lib/runtime/runtime.js';
import type { Tenant } from '../lib/registry/tenant.js';
import { deriveAgentToken } from '../lib/webhook-secret.js';
import { POD_OWNER_SECRET_NAME, POD_OWNER_SECRET_TYPE } from '../lib/runtime/pod-owner.js';
import { Kubelet } from './support/kube/kubelet.js';
import { startStandInStack, type StandInStack } from './support/kube/stand-in-stack.js';

const NS = 'tenants';
const TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
const WEBHOOK = 'webhook-master-secret-0123456789abcdef';
const AGENT_PORT = 42617;
const ORDER: StartPhase[] = ['scheduling', 'waiting-for-node', 'pulling-image', 'starting', 'restoring-state', 'ready'];

const incarnationOf = (id: string): string => `inc-${id}`.padEnd(22, '0');
function tenant(id: string): Tenant {
  const now = new Date().toISOString();
  return { tenant_id: id, bot_token: TOKEN, status: 'provisioning', idle_timeout_s: 300, created_at: now, updated_at: now, version: 1, incarnation: incarnationOf(id) };
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function say(address: string, message: string, key: string): Promise<string> {
  const id = key.split(':')[0] ?? '';
  const bearer = deriveAgentToken(WEBHOOK, { tenant_id: id, incarnation: incarnationOf(id) });
  const res = await request(`http://${address}/webhook`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-idempotency-key': key, authorization: `Bearer ${bearer}` }, body: JSON.stringify({ message }),
  });
  const body = (await res.body.json()) as { response?: string };
  if (res.statusCode !== 200) throw new Error(`agent answered ${res.statusCode}`);
  return body.response ?? '';
}

function runtimeOn(s: Pick<StandInStack, 'api' | 'logs'>, overrides: Partial<KubernetesRuntimeOptions> = {}): KubernetesRuntime {
  return new KubernetesRuntime({
    kubeConfig: s.api.kubeConfig(), namespace: NS, image: 'zeroclaw:test', runtimeClassName: 'kata-qemu', agentPort: AGENT_PORT,
    warmPoolSecret: 'warm-pool-secret-0123456789abcdef', webhookSecret: WEBHOOK, log: s.logs.logger('runtime'),
    terminationGracePeriodSeconds: 3, readyTimeoutS: 60, coldStartTimeoutS: 120, lostNodeAfterS: 1,
    extraEnv: { CHECKPOINT_INTERVAL_S: '0', LOG_LEVEL: 'info' }, ...overrides,
  });
}

t.test('Kubernetes starts as the cluster behaves', async (t) => {
  const stack = await startStandInStack(t, NS, (s) => runtimeOn(s));
  const { api, store, logs, runtime } = stack;
  const core = api.kubeConfig().makeApiClient(CoreV1Api);
  const podsOf = async (selector: string): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: NS, labelSelector: selector })).items;
  const gone = (id: string): Promise<boolean> => until(`no pod of ${id}`, async () => ((await podsOf(`tenant=${id}`)).length === 0 ? true : undefined));
  const extra: KubernetesRuntime[] = [];
  const other = (o: Partial<KubernetesRuntimeOptions>): KubernetesRuntime => {
    const r = runtimeOn(stack, o);
    extra.push(r);
    return r;
  };
  t.teardown(() => Promise.all(extra.map((r) => r.close())));
  t.afterEach(() => api.behaviour.reset());

  t.test('a 10-minute node provisioning: waited for past the ready bound, phases reported, one pod, never deleted', async (t) => {
    // 600 simulated seconds at 0.02: 12 s, longer than this runtime's ready bound (8 s).
    api.behaviour.set({ timeScale: 0.02, scheduling: { provisionS: 600, nominate: true }, images: { pullS: 30 } });
    const patient = other({ readyTimeoutS: 8, coldStartTimeoutS: 120 });
    const phases: StartProgress[] = [];
    const before = api.requests.length;
    const r = await patient.start(tenant('nina'), await store.presign(tenant('nina')), { onProgress: (p) => phases.push(p) });
    t.equal(r.path, 'cold');
    t.match(await say(r.instance.address, 'hello', 'nina:1'), /memories: 1/, 'the agent answers');
    const seen = phases.map((p) => p.phase).filter((p, i, a) => a[i - 1] !== p);
    t.comment(`phases: ${seen.join(' → ')}`);
    t.same(seen.filter((p) => p === 'waiting-for-node' || p === 'restoring-state' || p === 'ready'), ['waiting-for-node', 'restoring-state', 'ready'], 'waited for a node, restored, ready');
    t.ok(seen.every((p, i) => i === 0 || ORDER.indexOf(p) > ORDER.indexOf(seen[i - 1] as StartPhase)), 'phases only move forward');
    t.match(phases.find((p) => p.phase === 'waiting-for-node')?.detail, /Unschedulable: 0\/\d+ nodes are available/, 'with the scheduler\'s message');
    t.ok(phases.filter((p) => p.phase === 'waiting-for-node').length >= 2, 'heartbeats while waiting');
    const mine = api.requests.slice(before).filter((q) => q.path.endsWith('/pods/zeroclaw-nina') || (q.method === 'POST' && q.path.endsWith('/pods')));
    t.equal(mine.filter((q) => q.method === 'POST').length, 1, 'one pod created');
    t.equal(mine.filter((q) => q.method === 'DELETE').length, 0, 'and never deleted for being slow');
    await patient.stop('nina');
  });

  t.test('unschedulable beyond the cold bound: reason unschedulable, the pod removed', async (t) => {
    api.behaviour.set({ scheduling: { never: true } });
    const bounded = other({ coldStartTimeoutS: 2 });
    await t.rejects(bounded.start(tenant('uma'), await store.presign(tenant('uma'))), { code: 'E_RUNTIME', reason: 'unschedulable', message: /^pod zeroclaw-uma got no node within \d+s .*Unschedulable: 0\/\d+ nodes are available/ });
    t.ok(await gone('uma'), 'no pod left');
  });

  t.test('an image that is not there: retried by the kubelet, then image_pull_failed; an invalid name at once', async (t) => {
    api.behaviour.set({ images: { faults: { 'zeroclaw:missing': 'ErrImagePull', 'zeroclaw:BAD..name': 'InvalidImageName' }, backoffS: 0.2 } });
    const missing = other({ image: 'zeroclaw:missing' });
    await t.rejects(missing.start(tenant('ivan'), await store.presign(tenant('ivan'))),
      { reason: 'image_pull_failed', message: /^pod zeroclaw-ivan: the image pull failed 3 times \((ErrImagePull|ImagePullBackOff): .*zeroclaw:missing/ });
    t.ok(await gone('ivan'), 'the pod removed');
    const invalid = other({ image: 'zeroclaw:BAD..name' });
    await t.rejects(invalid.start(tenant('ines'), await store.presign(tenant('ines'))),
      { reason: 'image_pull_failed', message: /^pod zeroclaw-ines: the image can never be pulled \(InvalidImageName: .*invalid reference format\)/ });
    t.ok(await gone('ines'), 'the pod removed');
  });

  t.test('a container that crashes before it is ready: crash_loop, the pod removed', async (t) => {
    api.behaviour.set({ crash: { selector: 'tenant=carl', exitCode: 3 } });
    await t.rejects(runtime.start(tenant('carl'), await store.presign(tenant('carl'))), { reason: 'crash_loop', message: /^pod zeroclaw-carl ended before it was ready: .*exited 3/ });
    t.ok(await gone('carl'));
  });

  t.test('admission refuses the pod: api_refused with the API\'s own message, the verb and the object', async (t) => {
    api.behaviour.set({ admission: { priorityClasses: ['zeroclaw-warm'] } });
    await t.rejects(runtime.start(tenant('rosa'), await store.presign(tenant('rosa'))), {
      reason: 'api_refused',
      message: /^create pod zeroclaw-rosa refused by the Kubernetes API: HTTP 403 Forbidden: pods "zeroclaw-rosa" is forbidden: no PriorityClass with name zeroclaw-tenant was found$/,
    });
    api.behaviour.set({ admission: { priorityClasses: undefined, runtimeClasses: ['kata-fc'] } });
    await t.rejects(runtime.start(tenant('rosa'), await store.presign(tenant('rosa'))), { reason: 'api_refused', message: /RuntimeClass "kata-qemu" not found/ });
    t.notMatch(logs.text(), /check the RBAC/, 'no misleading hint');
  });

  t.test('a hung API call does not hang the start: timed out, retried, started', async (t) => {
    const quick = other({ apiTimeoutS: 1 });
    api.faults.add({ method: 'POST', path: /\/namespaces\/tenants\/pods$/, hang: true });
    const r = await quick.start(tenant('hugo'), await store.presign(tenant('hugo')));
    t.equal(r.path, 'cold');
    t.ok(api.faults.fired.some((f) => f.kind === 'hang' && f.method === 'POST'), 'the create hung once');
    t.equal(quick.api.stats.timeouts, 1, 'one attempt timed out');
    t.equal((await podsOf('tenant=hugo')).length, 1, 'the retried create made exactly one pod');
    await quick.stop('hugo');
    // Carried out, then unanswered: the retry meets its own pod (409) and takes it, control Secret and all.
    api.faults.add({ method: 'POST', path: /\/namespaces\/tenants\/pods$/, applyThenHang: true });
    const again = await quick.start(tenant('hana'), await store.presign(tenant('hana')));
    t.equal(again.path, 'cold');
    t.ok(api.faults.fired.some((f) => f.kind === 'apply-then-hang' && f.method === 'POST'), 'the create was carried out and not answered');
    t.match(await say(again.instance.address, 'hi', 'hana:1'), /memories: 1/, 'the adopted pod got its control Secret and its claim');
    t.equal((await podsOf('tenant=hana')).length, 1, 'one pod');
    await quick.stop('hana');
  });

  t.test('with K8S_POD_OWNER: the tenant pod, its Secret, the warm pool and its Secret are owned by the release\'s anchor', async (t) => {
    const anchor = await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: POD_OWNER_SECRET_NAME, labels: { 'app.kubernetes.io/instance': 'rel' } }, type: POD_OWNER_SECRET_TYPE } });
    const owned = other({ podOwner: POD_OWNER_SECRET_NAME });
    const r = await owned.start(tenant('olga'), await store.presign(tenant('olga')));
    await owned.addWarm(1);
    const owner = [{ apiVersion: 'v1', kind: 'Secret', name: POD_OWNER_SECRET_NAME, uid: anchor.metadata?.uid }];
    const pod = await core.readNamespacedPod({ name: r.instance.podName, namespace: NS });
    t.same(pod.metadata?.ownerReferences, owner, 'the tenant pod');
    t.equal(pod.metadata?.labels?.['app.kubernetes.io/instance'], 'rel', 'labelled with the release');
    t.same((await core.readNamespacedSecret({ name: 'zeroclaw-olga-token', namespace: NS })).metadata?.ownerReferences, owner, 'its token Secret');
    t.same((await core.readNamespacedSecret({ name: 'zeroclaw-warm-pool', namespace: NS })).metadata?.ownerReferences, owner, 'the warm pool Secret (adopted at its next write)');
    const members = await podsOf('app=warm-pool');
    t.ok(members.length >= 1 && members.every((m) => m.metadata?.ownerReferences?.[0]?.uid === anchor.metadata?.uid), 'the warm members');
    await owned.removeWarm(members.length);
    await owned.stop('olga');
  });

  t.test('a lost node: the pod stuck Terminating is force-deleted, the tenant wakes elsewhere from its last checkpoint', async (t) => {
    const second = new Kubelet(api, { nodeName: 'node-b' });
    t.teardown(() => second.close());
    const first = await runtime.start(tenant('lara'), await store.presign(tenant('lara')));
    t.match(await say(first.instance.address, 'one', 'lara:1'), /memories: 1/);
    await runtime.stop('lara'); // the checkpoint
    const again = await runtime.start(tenant('lara'), await store.presign(tenant('lara')));
    t.match(await say(again.instance.address, 'two', 'lara:2'), /memories: 2/, 'restored; this message is not checkpointed');
    const before = await core.readNamespacedPod({ name: again.instance.podName, namespace: NS });
    const nodeName = before.spec?.nodeName;
    const lost = nodeName === 'node-b' ? second : stack.kubelet;
    const exits: string[] = [];
    runtime.onExit((id, podName) => exits.push(`${id} ${podName}`));
    await lost.loseNode();
    await until('the node NotReady', async () => ((await core.readNode({ name: nodeName ?? '' })).status?.conditions?.find((c) => c.type === 'Ready')?.status !== 'True' ? true : undefined));
    await until('the exit reported', () => (exits.length > 0 ? true : undefined));
    t.same(exits, ['lara zeroclaw-lara'], 'its pod reported as exited as soon as it is not ready on a lost node (not at the eviction minutes later)');
    const r = await runtime.start(tenant('lara'), await store.presign(tenant('lara')));
    const now = await core.readNamespacedPod({ name: r.instance.podName, namespace: NS });
    t.not(now.metadata?.uid, before.metadata?.uid, 'a new pod');
    t.not(now.spec?.nodeName, nodeName, 'on another node');
    t.match(runtime.deletion.forced, [{ pod: 'zeroclaw-lara', why: new RegExp(`node ${nodeName} Ready=Unknown`) }], 'force-deleted because its node was lost');
    t.equal(logs.find('force-deleting a pod stuck on a lost node').length, 1, 'logged with the reason');
    t.match(await say(r.instance.address, 'three', 'lara:3'), /memories: 2/, 'the last checkpoint restored (the unsaved message is lost with the node)');
    await runtime.stop('lara');
  });
});
