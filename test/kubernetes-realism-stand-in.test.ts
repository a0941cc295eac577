/**
 * The Kubernetes API stand-in's production behaviours (test/support/kube/behaviour.ts), driven by
 * @kubernetes/client-node as the runtime drives a cluster: a node provisioned on a scaled clock
 * (Unschedulable, then bound), image pull errors, crash loops, admission refusals and RBAC with the
 * real Status bodies, 429/5xx/hung/reset requests and latency, a lost node whose pods stay
 * Terminating until force-deleted, pod IP reuse, watch bookmarks and history expiry (410).
 */
import t, { type Test } from 'tap';
import { request } from 'undici';
import { ApiException, CoreV1Api, PatchStrategy, Watch, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { KubeApiServer } from './support/kube/api-server.js';
import { Kubelet } from './support/kube/kubelet.js';
import { POD_SECURITY_LABEL } from './support/kube/admission.js';
import { waitUntil } from './support/wait.js';

const NS = 'tenants';
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** A container that listens on SHIM_HOST:9000 and answers 200. */
const SCRIPT = `require('http').createServer((q, r) => r.end('ok')).listen(9000, process.env.SHIM_HOST); process.on('SIGTERM', () => process.exit(0));`;
const pod = (name: string, extra: Partial<NonNullable<V1Pod['spec']>> = {}, labels: Record<string, string> = {}, image = 'zeroclaw:test'): V1Pod => ({
  metadata: { name, labels },
  spec: { restartPolicy: 'Never', terminationGracePeriodSeconds: 2, containers: [{ name: 'shim', image, readinessProbe: { httpGet: { path: '/', port: 9000 } } }], ...extra },
});

async function cluster(t: Test, options: Parameters<typeof KubeApiServer.start>[0] = {}, nodes = ['node-a']) {
  const api = await KubeApiServer.start({ namespaces: [NS], ...options });
  const kubelets = nodes.map((nodeName) => new Kubelet(api, { nodeName, command: () => [process.execPath, '-e', SCRIPT] }));
  t.teardown(async () => {
    for (const k of kubelets) await k.close();
    await api.close();
  });
  return { api, kubelets, core: api.kubeConfig().makeApiClient(CoreV1Api) };
}
async function rejection(p: Promise<unknown>): Promise<{ code: number; body: Record<string, unknown> }> {
  try {
    await p;
  } catch (err) {
    if (!(err instanceof ApiException)) throw err;
    const e = err as ApiException<unknown>;
    return { code: e.code, body: typeof e.body === 'string' ? JSON.parse(e.body) as Record<string, unknown> : {} };
  }
  throw new Error('expected the call to fail');
}
const condition = (p: V1Pod | undefined, type: string) => p?.status?.conditions?.find((c) => c.type === type);
const waiting = (p: V1Pod | undefined) => p?.status?.containerStatuses?.[0]?.state?.waiting?.reason;

t.test('a node provisioned on the scaled clock: Unschedulable with the scheduler message, then bound and Running', async (t) => {
  const { api, core } = await cluster(t, { behaviour: { timeScale: 0.005, scheduling: { provisionS: 300, nominate: true } } });
  const t0 = Date.now();
  await core.createNamespacedPod({ namespace: NS, body: pod('cold') });
  let seen: V1Pod | undefined;
  await waitUntil('Unschedulable', async () => condition(seen = await core.readNamespacedPod({ name: 'cold', namespace: NS }), 'PodScheduled')?.status === 'False');
  t.match(condition(seen, 'PodScheduled'), { status: 'False', reason: 'Unschedulable', message: /^0\/3 nodes are available: / });
  t.equal(seen?.status?.phase, 'Pending');
  t.equal(seen?.status?.nominatedNodeName, 'node-a');
  t.equal(seen?.spec?.nodeName, undefined, 'not bound while the node is provisioned');
  await waitUntil('bound and Ready', async () => condition(seen = await core.readNamespacedPod({ name: 'cold', namespace: NS }), 'Ready')?.status === 'True', 10_000);
  t.ok(Date.now() - t0 >= 1400, 'bound only after 300 simulated seconds (1.5 s at this scale)');
  t.equal(seen?.spec?.nodeName, 'node-a');
  t.match(condition(seen, 'PodScheduled'), { status: 'True' });
  t.equal(seen?.status?.nominatedNodeName, undefined);
  api.behaviour.set({ scheduling: { provisionS: undefined, never: true, message: '0/3 nodes are available: 3 node(s) didn\'t match Pod\'s node affinity/selector.' } });
  await core.createNamespacedPod({ namespace: NS, body: pod('never') });
  await waitUntil('never: Unschedulable', async () => condition(await core.readNamespacedPod({ name: 'never', namespace: NS }), 'PodScheduled')?.reason === 'Unschedulable');
  api.behaviour.set({ scheduling: { never: false } });
  await waitUntil('lifting the knob schedules it', async () => (await core.readNamespacedPod({ name: 'never', namespace: NS })).spec?.nodeName === 'node-a');
});

t.test('image pulls: slow pull, ErrImagePull ⇄ ImagePullBackOff, InvalidImageName; crash loops', async (t) => {
  const { api, core } = await cluster(t, { behaviour: { timeScale: 0.01, images: { backoffS: 10, faults: { 'zeroclaw:missing': 'ErrImagePull', 'Bad Image': 'InvalidImageName' } } } });
  await core.createNamespacedPod({ namespace: NS, body: pod('pull', {}, {}, 'zeroclaw:missing') });
  const reasons = new Set<string>();
  await waitUntil('both pull states', async () => {
    const r = waiting(await core.readNamespacedPod({ name: 'pull', namespace: NS }));
    if (r) reasons.add(r);
    return reasons.has('ErrImagePull') && reasons.has('ImagePullBackOff');
  });
  const p = await core.readNamespacedPod({ name: 'pull', namespace: NS });
  t.equal(p.status?.phase, 'Pending');
  t.match(p.status?.containerStatuses?.[0]?.state?.waiting?.message ?? '', /zeroclaw:missing/);
  api.behaviour.set({ images: { faults: { 'Bad Image': 'InvalidImageName' } } }); // a map is replaced whole
  await waitUntil('pulled once the image exists', async () => condition(await core.readNamespacedPod({ name: 'pull', namespace: NS }), 'Ready')?.status === 'True');
  await core.createNamespacedPod({ namespace: NS, body: pod('invalid', {}, {}, 'Bad Image') });
  await waitUntil('InvalidImageName', async () => waiting(await core.readNamespacedPod({ name: 'invalid', namespace: NS })) === 'InvalidImageName');
  api.behaviour.set({ images: { pullS: 60 } });
  await core.createNamespacedPod({ namespace: NS, body: pod('slow', {}, {}, 'zeroclaw:new') });
  await waitUntil('ContainerCreating while pulling', async () => waiting(await core.readNamespacedPod({ name: 'slow', namespace: NS })) === 'ContainerCreating');
  await waitUntil('pulled after 60 simulated s', async () => condition(await core.readNamespacedPod({ name: 'slow', namespace: NS }), 'Ready')?.status === 'True');
  api.behaviour.set({ crash: { selector: 'crash=yes', exitCode: 3 } });
  await core.createNamespacedPod({ namespace: NS, body: pod('loop', { restartPolicy: 'Always' }, { crash: 'yes' }) });
  await waitUntil('CrashLoopBackOff', async () => {
    const s = (await core.readNamespacedPod({ name: 'loop', namespace: NS })).status?.containerStatuses?.[0];
    return s?.state?.waiting?.reason === 'CrashLoopBackOff' && (s.restartCount ?? 0) >= 1 && s.lastState?.terminated?.exitCode === 3;
  });
  await core.createNamespacedPod({ namespace: NS, body: pod('once', {}, { crash: 'yes' }) });
  await waitUntil('restartPolicy Never: Failed', async () => (await core.readNamespacedPod({ name: 'once', namespace: NS })).status?.phase === 'Failed');
});

t.test('admission and RBAC refusals: 403 Forbidden with the real plugins\' messages', async (t) => {
  const { api, core } = await cluster(t, { behaviour: { admission: { priorityClasses: ['zeroclaw-warm'], runtimeClasses: ['kata-fc'] } } }, []);
  const spec = { priorityClassName: 'zeroclaw-tenant', runtimeClassName: 'kata-fc' };
  t.match(await rejection(core.createNamespacedPod({ namespace: NS, body: pod('zeroclaw-a', spec) })), {
    code: 403,
    body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Forbidden', code: 403, message: 'pods "zeroclaw-a" is forbidden: no PriorityClass with name zeroclaw-tenant was found', details: { name: 'zeroclaw-a', kind: 'pods' } },
  });
  api.behaviour.set({ admission: { priorityClasses: undefined } });
  t.match(await rejection(core.createNamespacedPod({ namespace: NS, body: pod('zeroclaw-a', { runtimeClassName: 'kata-qemu' }) })), {
    code: 403, body: { reason: 'Forbidden', message: 'pods "zeroclaw-a" is forbidden: pod rejected: RuntimeClass "kata-qemu" not found' },
  });
  api.labelNamespace(NS, { [POD_SECURITY_LABEL]: 'restricted' });
  const ps = await rejection(core.createNamespacedPod({ namespace: NS, body: pod('zeroclaw-b') }));
  t.match(ps, { code: 403, body: { reason: 'Forbidden', message: /^pods "zeroclaw-b" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false \(container "shim" must set securityContext\.allowPrivilegeEscalation=false\), unrestricted capabilities .*runAsNonRoot != true .*seccompProfile/ } });
  const hardened = pod('zeroclaw-b', { securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } } });
  hardened.spec!.containers[0]!.securityContext = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } };
  t.ok(await core.createNamespacedPod({ namespace: NS, body: hardened }), 'a restricted-compliant pod is admitted');
  api.behaviour.set({ admission: { podQuota: { [NS]: { name: 'tenant-pods', pods: 1 } } } });
  t.match(await rejection(core.createNamespacedPod({ namespace: NS, body: { ...hardened, metadata: { name: 'zeroclaw-c' } } })), {
    code: 403, body: { message: 'pods "zeroclaw-c" is forbidden: exceeded quota: tenant-pods, requested: pods=1, used: pods=1, limited: pods=1' },
  });
  api.behaviour.set({ admission: { podQuota: {}, user: 'system:serviceaccount:platform:zeroclaw', deny: [{ verb: 'create', resource: 'pods' }, { verb: 'delete', resource: 'pods' }] } });
  t.match(await rejection(core.createNamespacedPod({ namespace: NS, body: { ...hardened, metadata: { name: 'zeroclaw-d' } } })), {
    code: 403, body: { reason: 'Forbidden', message: `pods is forbidden: User "system:serviceaccount:platform:zeroclaw" cannot create resource "pods" in API group "" in the namespace "${NS}"`, details: { kind: 'pods' } },
  });
  t.match(await rejection(core.deleteNamespacedPod({ name: 'zeroclaw-b', namespace: NS })), {
    code: 403, body: { message: `pods "zeroclaw-b" is forbidden: User "system:serviceaccount:platform:zeroclaw" cannot delete resource "pods" in API group "" in the namespace "${NS}"`, details: { name: 'zeroclaw-b' } },
  });
  t.ok(await core.listNamespacedPod({ namespace: NS }), 'what is not denied is allowed');
});

t.test('request faults: 429 with Retry-After, 5xx, a hung request, a reset connection, latency per verb', async (t) => {
  const { api, core } = await cluster(t, {}, []);
  const url = `${api.url}/api/v1/namespaces/${NS}/pods`;
  const auth = { authorization: `Bearer ${api.token}` };
  api.faults.add({ verb: 'list', status: 429, retryAfterS: 2, times: 2 });
  for (let i = 0; i < 2; i++) {
    const res = await request(url, { headers: auth });
    t.equal(res.statusCode, 429);
    t.equal(res.headers['retry-after'], '2');
    t.match(await res.body.json(), { kind: 'Status', reason: 'TooManyRequests', message: 'Too many requests, please try again later.', details: { retryAfterSeconds: 2 }, code: 429 });
  }
  t.equal((await request(url, { headers: auth })).statusCode, 200, 'the rule fired its 2 times');
  api.faults.add({ verb: 'create', status: 503 });
  t.match(await rejection(core.createNamespacedPod({ namespace: NS, body: pod('x') })), { code: 503, body: { reason: 'ServiceUnavailable' } });
  api.faults.add({ verb: 'get', hang: true });
  const hung = request(`${url}/x`, { headers: auth, headersTimeout: 300 }).then(() => 'answered', (err: Error) => err.name);
  await waitUntil('held open', () => api.faults.hanging === 1);
  t.equal(await hung, 'HeadersTimeoutError', 'never answered: the client gave up');
  await waitUntil('released when the client went away', () => api.faults.hanging === 0);
  api.faults.add({ verb: 'create', applyThenHang: true });
  const unanswered = await request(url, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(pod('applied')), headersTimeout: 300 })
    .then(() => 'answered', () => 'gave up');
  t.equal(unanswered, 'gave up', 'a create carried out but never answered');
  t.match(await rejection(core.createNamespacedPod({ namespace: NS, body: pod('applied') })), { code: 409, body: { reason: 'AlreadyExists' } }, 'its retry meets its own success');
  api.faults.add({ method: 'DELETE', reset: true });
  const reset = await core.deleteNamespacedPod({ name: 'x', namespace: NS }).then(() => 'ok', (err: unknown) => String((err as { code?: string; cause?: { code?: string } }).code ?? (err as { cause?: { code?: string } }).cause?.code ?? err));
  t.match(reset, /ECONNRESET|socket hang up|other side closed/);
  t.same(api.faults.fired.map((f) => f.kind), ['error', 'error', 'error', 'hang', 'apply-then-hang', 'reset']);
  api.behaviour.set({ latencyMs: { get: 300 } });
  const t0 = Date.now();
  t.match(await rejection(core.readNamespacedPod({ name: 'x', namespace: NS })), { code: 404 });
  t.ok(Date.now() - t0 >= 290, 'a get waits its latency');
});

t.test('a lost node: Ready=Unknown, unreachable taints, pods evicted and stuck Terminating until force-deleted; rescheduled elsewhere', async (t) => {
  const { kubelets, core } = await cluster(t, { behaviour: { timeScale: 0.01 } }, ['node-a', 'node-b']);
  await core.createNamespacedPod({ namespace: NS, body: pod('p1') });
  await waitUntil('p1 ready', async () => condition(await core.readNamespacedPod({ name: 'p1', namespace: NS }), 'Ready')?.status === 'True');
  const first = await core.readNamespacedPod({ name: 'p1', namespace: NS });
  const lost = kubelets.find((k) => k.settings.nodeName === first.spec?.nodeName);
  await lost?.loseNode();
  const node = await core.readNode({ name: first.spec?.nodeName ?? '' });
  t.match(node.status?.conditions?.find((c) => c.type === 'Ready'), { status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.' });
  t.same(node.spec?.taints?.map((x) => `${x.key}:${x.effect}`), ['node.kubernetes.io/unreachable:NoSchedule', 'node.kubernetes.io/unreachable:NoExecute']);
  t.equal(condition(await core.readNamespacedPod({ name: 'p1', namespace: NS }), 'Ready')?.status, 'False', 'its pods are marked not Ready');
  await waitUntil('evicted after 300 simulated s', async () => (await core.readNamespacedPod({ name: 'p1', namespace: NS })).metadata?.deletionTimestamp !== undefined, 10_000);
  await new Promise((r) => setTimeout(r, 500));
  t.ok(await core.readNamespacedPod({ name: 'p1', namespace: NS }), 'still there, Terminating: no kubelet confirms');
  await core.deleteNamespacedPod({ name: 'p1', namespace: NS }); // a plain delete does not help either
  t.ok(await core.readNamespacedPod({ name: 'p1', namespace: NS }));
  await core.deleteNamespacedPod({ name: 'p1', namespace: NS, gracePeriodSeconds: 0 });
  t.match(await rejection(core.readNamespacedPod({ name: 'p1', namespace: NS })), { code: 404 }, 'force-deleted');
  await core.createNamespacedPod({ namespace: NS, body: pod('p1') });
  await waitUntil('p1 ready again', async () => condition(await core.readNamespacedPod({ name: 'p1', namespace: NS }), 'Ready')?.status === 'True');
  t.not((await core.readNamespacedPod({ name: 'p1', namespace: NS })).spec?.nodeName, first.spec?.nodeName, 'on the other node');
});

t.test('pod IP reuse: a freed IP goes to the next pod after the cool-down', async (t) => {
  const { core } = await cluster(t, { behaviour: { timeScale: 0.01, ipReuseAfterS: 30 } });
  await core.createNamespacedPod({ namespace: NS, body: pod('old') });
  await waitUntil('old ready', async () => condition(await core.readNamespacedPod({ name: 'old', namespace: NS }), 'Ready')?.status === 'True');
  const ip = (await core.readNamespacedPod({ name: 'old', namespace: NS })).status?.podIP;
  await core.deleteNamespacedPod({ name: 'old', namespace: NS });
  await waitUntil('old gone', async () => (await core.readNamespacedPod({ name: 'old', namespace: NS }).catch(() => undefined)) === undefined);
  await new Promise((r) => setTimeout(r, 400)); // > 30 simulated s
  await core.createNamespacedPod({ namespace: NS, body: pod('new') });
  await waitUntil('new running', async () => (await core.readNamespacedPod({ name: 'new', namespace: NS })).status?.podIP !== undefined);
  t.equal((await core.readNamespacedPod({ name: 'new', namespace: NS })).status?.podIP, ip, 'the same IP, another pod');
});

t.test('watches: bookmarks, history expiry (410 Expired), counts per resource', async (t) => {
  const { api, core } = await cluster(t, { behaviour: { timeScale: 0.01, watch: { bookmarkEveryS: 20, historyEvents: 5 } } }, []);
  const created = await core.createNamespacedPod({ namespace: NS, body: pod('w') });
  const w = new Watch(api.kubeConfig());
  const events: Array<{ type: string; rv?: string; code?: number }> = [];
  const ctl = await w.watch(`/api/v1/namespaces/${NS}/pods`, { allowWatchBookmarks: true, resourceVersion: created.metadata?.resourceVersion },
    (type, obj: { metadata?: { resourceVersion?: string }; code?: number }) => events.push({ type, rv: obj.metadata?.resourceVersion, code: obj.code }), () => {});
  await waitUntil('a bookmark', () => events.some((e) => e.type === 'BOOKMARK'));
  t.match(events.find((e) => e.type === 'BOOKMARK'), { rv: /^\d+$/ });
  t.same(api.watchStats('pods'), { open: 1, started: 1, expired: 0 });
  for (let i = 0; i < 8; i++) await core.patchNamespacedPod({ name: 'w', namespace: NS, body: { metadata: { annotations: { n: String(i) } } } }, MERGE);
  const expired: Array<{ type: string; code?: number; message?: string }> = [];
  await w.watch(`/api/v1/namespaces/${NS}/pods`, { resourceVersion: created.metadata?.resourceVersion },
    (type, obj: { code?: number; message?: string }) => expired.push({ type, code: obj.code, message: obj.message }), () => {});
  await waitUntil('410', () => expired.length > 0);
  t.match(expired[0], { type: 'ERROR', code: 410, message: /^too old resource version: / });
  t.match(api.watchStats('pods'), { started: 2, expired: 1 });
  ctl.abort();
  await waitUntil('closed', () => api.watchStats('pods').open === 0);
});
