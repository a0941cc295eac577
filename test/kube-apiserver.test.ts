/**
 * The Kubernetes API stand-in (test/support/kube/) driven by @kubernetes/client-node 1.4 exactly as
 * the runtime drives a cluster: CRUD and Status errors, selectors, optimistic concurrency on
 * relabel (the warm claim's atomicity), merge patches and their Content-Types, secrets, watches
 * and informers, auth and injected faults; then the simulated kubelet running real
 * processes: readiness, same port on distinct pod IPs, graceful deletion, secrets in env, crashes,
 * and the real shim as a warm pool member.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import {
  ApiException, CoreV1Api, PatchStrategy, Watch, makeInformer, setHeaderOptions,
  type KubeConfig, type V1Pod,
} from '@kubernetes/client-node';
import { KubeApiServer } from './support/kube/api-server.js';
import { Kubelet, shimCommand } from './support/kube/kubelet.js';

const NS = 'tenants';
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** A tiny container: HTTP on SHIM_HOST:SHIM_PORT, /readyz 200 after READY_AFTER_MS, logs SIGTERM. */
const SCRIPT = `
const http = require('http'); const start = Date.now();
const s = http.createServer((q, r) => { r.statusCode = q.url === '/readyz' && Date.now() - start < Number(process.env.READY_AFTER_MS || 0) ? 503 : 200; r.end(String(process.env.GREETING || 'hi')); });
s.listen(Number(process.env.SHIM_PORT), process.env.SHIM_HOST, () => console.log('listening on ' + process.env.SHIM_HOST));
process.on('SIGTERM', () => { console.log('got SIGTERM'); if (!process.env.IGNORE_TERM) setTimeout(() => process.exit(0), 50); });
if (process.env.GRANDCHILD) { const g = require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore' }); g.unref(); console.log('grandchild ' + g.pid); }`;

let api: KubeApiServer;
let kc: KubeConfig;
let core: CoreV1Api;
let kubelet: Kubelet;
let useShim = false;

t.before(async () => {
  api = await KubeApiServer.start();
  kc = api.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  kubelet = new Kubelet(api, { command: () => (useShim ? shimCommand() : [process.execPath, '-e', SCRIPT]) });
});
t.teardown(async () => {
  await kubelet?.close();
  await api?.close();
});

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
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
const pod = (name: string, labels: Record<string, string> = {}, extra: Partial<V1Pod['spec']> = {}, env: Array<{ name: string; value?: string; valueFrom?: object }> = []): V1Pod => ({
  metadata: { name, labels },
  spec: {
    restartPolicy: 'Never', terminationGracePeriodSeconds: 5, ...extra,
    containers: [{ name: 'shim', image: 'zeroclaw:test', env: [{ name: 'SHIM_PORT', value: '9000' }, ...env], readinessProbe: { httpGet: { path: '/readyz', port: 9000 } } }],
  },
});
const ready = (p: V1Pod | undefined): boolean => p?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
const read = (name: string): Promise<V1Pod | undefined> => core.readNamespacedPod({ name, namespace: NS }).catch(() => undefined);

t.test('pods: create, get, list, AlreadyExists, Invalid, generateName, delete', async (t) => {
  const server = await KubeApiServer.start(); // no kubelet: pods stay unscheduled
  const c = server.kubeConfig().makeApiClient(CoreV1Api);
  const created = await c.createNamespacedPod({ namespace: NS, body: pod('p1', { app: 'warm-pool' }) });
  t.match(created, { kind: 'Pod', apiVersion: 'v1', metadata: { name: 'p1', namespace: NS, uid: /^[0-9a-f-]{36}$/, resourceVersion: /^\d+$/ }, status: { phase: 'Pending' } });
  t.ok(created.metadata?.creationTimestamp instanceof Date, 'creationTimestamp is RFC 3339 (client-node parses it to a Date)');
  t.equal((await c.readNamespacedPod({ name: 'p1', namespace: NS })).metadata?.uid, created.metadata?.uid);
  const dup = await rejection(c.createNamespacedPod({ namespace: NS, body: pod('p1') }));
  t.match(dup, { code: 409, body: { kind: 'Status', status: 'Failure', reason: 'AlreadyExists', message: 'pods "p1" already exists', details: { name: 'p1', kind: 'pods' }, code: 409 } });
  t.match(await rejection(c.createNamespacedPod({ namespace: NS, body: pod('Bad_Name') })), { code: 422, body: { reason: 'Invalid', details: { causes: [{ field: 'metadata.name' }] } } });
  t.match(await rejection(c.createNamespacedPod({ namespace: 'nope', body: pod('p2') })), { code: 404, body: { message: 'namespaces "nope" not found' } });
  const gen = await c.createNamespacedPod({ namespace: NS, body: { ...pod(''), metadata: { generateName: 'warm-' } } });
  t.match(gen.metadata?.name, /^warm-[a-z0-9]{5}$/);
  const list = await c.listNamespacedPod({ namespace: NS });
  t.equal(list.kind, 'PodList');
  t.match(list.metadata?.resourceVersion, /^\d+$/);
  t.same(list.items.map((p) => p.metadata?.name).sort(), ['p1', gen.metadata?.name].sort());
  t.match(await rejection(c.deleteNamespacedPod({ name: 'p1', namespace: NS, body: { preconditions: { resourceVersion: '1' } } })), { code: 409, body: { reason: 'Conflict' } });
  const gone = await c.deleteNamespacedPod({ name: 'p1', namespace: NS });
  t.equal(gone.metadata?.name, 'p1', 'DELETE answers with the pod');
  t.match(await rejection(c.readNamespacedPod({ name: 'p1', namespace: NS })), { code: 404, body: { reason: 'NotFound', message: 'pods "p1" not found' } });
  t.match(await rejection(c.deleteNamespacedPod({ name: 'p1', namespace: NS })), { code: 404 });
  const claim = { metadata: { name: 'state-acme' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } };
  t.match(await c.createNamespacedPersistentVolumeClaim({ namespace: NS, body: claim }), { kind: 'PersistentVolumeClaim', status: { phase: 'Pending' } });
  t.match(await rejection(c.createNamespacedPersistentVolumeClaim({ namespace: NS, body: { metadata: { name: 'bad' }, spec: {} } })), { code: 422, body: { reason: 'Invalid' } });
  t.equal((await c.deleteNamespacedPersistentVolumeClaim({ name: 'state-acme', namespace: NS })).metadata?.name, 'state-acme');
  await server.close();
});

t.test('selectors and paging', async (t) => {
  const server = await KubeApiServer.start();
  const c = server.kubeConfig().makeApiClient(CoreV1Api);
  const labels: Record<string, Record<string, string>> = { a: { app: 'warm-pool' }, b: { app: 'zeroclaw', tenant: 'x' }, c: { app: 'zeroclaw', tenant: 'y' }, d: {} };
  for (const [name, l] of Object.entries(labels)) await c.createNamespacedPod({ namespace: NS, body: pod(name, l) });
  const names = async (labelSelector?: string, fieldSelector?: string): Promise<string[]> =>
    (await c.listNamespacedPod({ namespace: NS, labelSelector, fieldSelector })).items.map((p) => p.metadata?.name ?? '');
  t.same(await names('app=warm-pool'), ['a']);
  t.same(await names('app==zeroclaw,tenant=y'), ['c']);
  t.same(await names('app!=zeroclaw'), ['a', 'd']);
  t.same(await names('tenant in (x, y)'), ['b', 'c']);
  t.same(await names('tenant notin (x)'), ['a', 'c', 'd']);
  t.same(await names('tenant'), ['b', 'c']);
  t.same(await names('!app'), ['d']);
  t.same(await names(undefined, 'metadata.name=b'), ['b']);
  t.same(await names(undefined, 'status.phase=Pending,metadata.name!=a'), ['b', 'c', 'd']);
  t.match(await rejection(c.listNamespacedPod({ namespace: NS, labelSelector: 'app in (' })), { code: 400, body: { reason: 'BadRequest' } });
  t.match(await rejection(c.listNamespacedPod({ namespace: NS, fieldSelector: 'spec.foo=1' })), { code: 400, body: { message: 'field label not supported: spec.foo' } });
  const page1 = await c.listNamespacedPod({ namespace: NS, limit: 3 });
  t.equal(page1.items.length, 3);
  const page2 = await c.listNamespacedPod({ namespace: NS, limit: 3, _continue: page1.metadata?._continue });
  t.same(page2.items.map((p) => p.metadata?.name), ['d']);
  t.equal(page2.metadata?._continue, undefined);
  await server.close();
});

t.test('relabel with merge patch: resourceVersion precondition, exactly one concurrent claim wins', async (t) => {
  const server = await KubeApiServer.start();
  const c = server.kubeConfig().makeApiClient(CoreV1Api);
  const p = await c.createNamespacedPod({ namespace: NS, body: pod('warm-1', { app: 'warm-pool' }) });
  const rv = p.metadata?.resourceVersion;
  const claim = (tenant: string): Promise<V1Pod> => c.patchNamespacedPod({
    name: 'warm-1', namespace: NS, body: { metadata: { resourceVersion: rv, labels: { app: 'zeroclaw', tenant } } },
  }, merge);
  const results = await Promise.allSettled([claim('t1'), claim('t2'), claim('t3')]);
  const won = results.filter((r) => r.status === 'fulfilled');
  t.equal(won.length, 1, 'exactly one claim wins');
  for (const r of results) if (r.status === 'rejected') t.match((r.reason as ApiException<string>).code, 409);
  const now = await c.readNamespacedPod({ name: 'warm-1', namespace: NS });
  t.equal(now.metadata?.labels?.app, 'zeroclaw');
  t.ok(Number(now.metadata?.resourceVersion) > Number(rv), 'resourceVersion moved on');
  const stale = await rejection(claim('t9'));
  t.match(stale, { code: 409, body: { reason: 'Conflict', message: /the object has been modified/ } });
  const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
  const noop = await c.patchNamespacedPod({ name: 'warm-1', namespace: NS, body: { metadata: { labels: { app: 'zeroclaw' } } } }, strategic);
  t.equal(noop.metadata?.resourceVersion, now.metadata?.resourceVersion, 'a no-op patch does not bump the version');
  const spec = await rejection(c.patchNamespacedPod({ name: 'warm-1', namespace: NS, body: { spec: { restartPolicy: 'Always' } } }, merge));
  t.match(spec, { code: 422, body: { reason: 'Invalid', message: /pod updates may not change fields/ } });
  // Without a Content-Type option client-node 1.4 sends application/json-patch+json: an object body is a 400.
  t.match(await rejection(c.patchNamespacedPod({ name: 'warm-1', namespace: NS, body: { metadata: { labels: { x: 'y' } } } })), { code: 400 });
  const patches = server.requests.filter((r) => r.method === 'PATCH');
  t.same([...new Set(patches.map((r) => r.contentType))], ['application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/json-patch+json']);
  t.equal(patches[0]?.path, '/api/v1/namespaces/tenants/pods/warm-1');
  await server.close();
});

t.test('secrets: stringData, replace with a stale version, delete Status', async (t) => {
  const server = await KubeApiServer.start();
  const c = server.kubeConfig().makeApiClient(CoreV1Api);
  const s = await c.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'bot-acme' }, stringData: { token: 'secret-1' } } });
  t.same(s.data, { token: Buffer.from('secret-1').toString('base64') }, 'stringData is stored base64 in data');
  t.equal(s.stringData, undefined);
  const replaced = await c.replaceNamespacedSecret({ name: 'bot-acme', namespace: NS, body: { ...s, stringData: { token: 'secret-2' } } });
  t.equal(Buffer.from(replaced.data?.token ?? '', 'base64').toString(), 'secret-2');
  t.match(await rejection(c.replaceNamespacedSecret({ name: 'bot-acme', namespace: NS, body: s })), {
    code: 409, body: { reason: 'Conflict', message: /^Operation cannot be fulfilled on secrets "bot-acme"/, details: { kind: 'secrets' } },
  });
  const status = await c.deleteNamespacedSecret({ name: 'bot-acme', namespace: NS });
  t.match(status, { kind: 'Status', status: 'Success', details: { name: 'bot-acme', kind: 'secrets' } });
  t.match(await rejection(c.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'bad' }, data: { k: '***' } } })), { code: 400 });
  await server.close();
});

t.test('watch: ADDED/MODIFIED/DELETED in order, selector transitions, informer', async (t) => {
  const server = await KubeApiServer.start();
  const kc2 = server.kubeConfig();
  const c = kc2.makeApiClient(CoreV1Api);
  const seen: string[] = [];
  const warmOnly: string[] = [];
  const w = new Watch(kc2);
  const all = await w.watch(`/api/v1/namespaces/${NS}/pods`, {}, (type, obj: V1Pod) => seen.push(`${type} ${obj.metadata?.name}`), () => {});
  const warm = await w.watch(`/api/v1/namespaces/${NS}/pods`, { labelSelector: 'app=warm-pool' }, (type, obj: V1Pod) => warmOnly.push(`${type} ${obj.metadata?.name}`), () => {});
  let timedOut = false;
  await w.watch(`/api/v1/namespaces/${NS}/pods`, { timeoutSeconds: 1 }, () => {}, () => (timedOut = true));
  const informed: string[] = [];
  const informer = makeInformer(kc2, `/api/v1/namespaces/${NS}/pods`, () => c.listNamespacedPod({ namespace: NS, labelSelector: 'app=warm-pool' }), 'app=warm-pool');
  for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, (o: V1Pod) => informed.push(`${verb} ${o.metadata?.name}`));
  await informer.start();
  await until('watches open', () => (server.openWatches === 4 ? true : undefined));
  const created = await c.createNamespacedPod({ namespace: NS, body: pod('w1', { app: 'warm-pool' }) });
  await c.patchNamespacedPod({ name: 'w1', namespace: NS, body: { metadata: { annotations: { a: '1' } } } }, merge);
  await c.patchNamespacedPod({ name: 'w1', namespace: NS, body: { metadata: { labels: { app: 'zeroclaw' } } } }, merge);
  await c.deleteNamespacedPod({ name: 'w1', namespace: NS });
  await until('all events', () => (seen.length >= 4 && warmOnly.length >= 3 && informed.length >= 3 ? true : undefined), 5000);
  t.same(seen, ['ADDED w1', 'MODIFIED w1', 'MODIFIED w1', 'DELETED w1']);
  t.same(warmOnly, ['ADDED w1', 'MODIFIED w1', 'DELETED w1'], 'relabelled out of the selector = DELETED for that watch');
  t.same(informed, ['add w1', 'update w1', 'delete w1']);
  // Replay from a resourceVersion.
  const replay: string[] = [];
  const r = await w.watch(`/api/v1/namespaces/${NS}/pods`, { resourceVersion: created.metadata?.resourceVersion }, (type) => replay.push(type), () => {});
  await until('replay', () => (replay.length >= 3 ? true : undefined), 5000);
  t.same(replay, ['MODIFIED', 'MODIFIED', 'DELETED']);
  const watchReq = server.requests.find((q) => q.query.watch === 'true' && q.query.labelSelector === 'app=warm-pool' && q.query.resourceVersion !== undefined);
  t.ok(watchReq, 'the informer lists, then watches from the list resourceVersion with its selector');
  await until('timeoutSeconds ends a watch', () => (timedOut ? true : undefined), 3000);
  // Streams end and history is compacted: the informer gets 410 Expired for its version and relists.
  server.store.compact();
  server.closeWatches();
  await until('informer re-watching', () => (server.openWatches > 0 ? true : undefined), 5000);
  await c.createNamespacedPod({ namespace: NS, body: pod('w2', { app: 'warm-pool' }) });
  await until('informer sees w2', () => (informed.includes('add w2') ? true : undefined), 5000);
  t.ok(server.requests.filter((q) => q.method === 'GET' && !q.query.watch && q.query.labelSelector === 'app=warm-pool').length >= 2, 'the informer relisted after 410');
  for (const ctl of [all, warm, r]) ctl.abort();
  await informer.stop();
  // The client's aborted sockets reach the stand-in later on a loaded machine (CI once missed 5 s).
  await until('watches closed', () => (server.openWatches === 0 ? true : undefined), 15_000);
  await server.close();
});

t.test('auth, faults', async (t) => {
  const res = await request(`${api.url}/api/v1/namespaces/${NS}/pods`);
  t.equal(res.statusCode, 401);
  t.match(await res.body.json(), { kind: 'Status', reason: 'Unauthorized', code: 401 });
  api.failNext('GET', /\/pods$/, 503);
  const err = await rejection(core.listNamespacedPod({ namespace: NS }));
  t.match(err, { code: 503, body: { reason: 'ServiceUnavailable' } });
  t.ok(await core.listNamespacedPod({ namespace: NS }), 'a fault fires once');
});

t.test('kubelet: readiness probe, same port on distinct pod IPs, logs, graceful delete', async (t) => {
  await core.createNamespacedPod({ namespace: NS, body: pod('k1', {}, {}, [{ name: 'READY_AFTER_MS', value: '300' }]) });
  await core.createNamespacedPod({ namespace: NS, body: pod('k2') });
  const p1 = await until('k1 running', async () => { const p = await read('k1'); return p?.status?.phase === 'Running' ? p : undefined; });
  t.notOk(ready(p1), 'Running is not Ready yet');
  const r1 = await until('k1 ready', async () => { const p = await read('k1'); return ready(p) ? p : undefined; });
  const r2 = await until('k2 ready', async () => { const p = await read('k2'); return ready(p) ? p : undefined; });
  t.not(r1.status?.podIP, r2.status?.podIP);
  for (const p of [r1, r2]) {
    const res = await request(`http://${p.status?.podIP}:9000/`);
    t.equal(await res.body.text(), 'hi', `pod ${p.metadata?.name} answers on its own IP, port 9000`);
  }
  t.match(r1.spec?.nodeName, /./);
  t.match(kubelet.logsOf('k1'), /listening on 127\./);
  const del = await core.deleteNamespacedPod({ name: 'k1', namespace: NS });
  t.ok(del.metadata?.deletionTimestamp, 'graceful: the pod gets a deletionTimestamp');
  t.equal(del.metadata?.deletionGracePeriodSeconds, 5);
  await until('k1 gone', async () => ((await read('k1')) === undefined ? true : undefined));
  t.match(kubelet.logsOf('k1'), /got SIGTERM/);
  await core.deleteNamespacedPod({ name: 'k2', namespace: NS, gracePeriodSeconds: 0 });
  t.equal(await read('k2'), undefined, 'gracePeriodSeconds=0 removes at once');
});

t.test('kubelet: grace period expiry, secrets in env, crashes', async (t) => {
  await core.createNamespacedPod({ namespace: NS, body: pod('stubborn', {}, { terminationGracePeriodSeconds: 1 }, [{ name: 'IGNORE_TERM', value: '1' }, { name: 'GRANDCHILD', value: '1' }]) });
  await until('stubborn ready', async () => (ready(await read('stubborn')) ? true : undefined));
  const grandchild = Number(await until('grandchild pid', () => /grandchild (\d+)/.exec(kubelet.logsOf('stubborn'))?.[1]));
  // Alive and not a zombie (an orphan's reaper may be slow to collect it).
  const alive = (pid: number): boolean => { try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; } };
  t.ok(alive(grandchild), 'the container started a detached grandchild');
  const t0 = Date.now();
  await core.deleteNamespacedPod({ name: 'stubborn', namespace: NS });
  await until('stubborn gone', async () => ((await read('stubborn')) === undefined ? true : undefined));
  t.ok(Date.now() - t0 >= 900, 'SIGKILL only after the grace period');
  t.notOk(alive(grandchild), 'every process of the container is gone with it');

  const env = [{ name: 'GREETING', valueFrom: { secretKeyRef: { name: 'bot-k3', key: 'token' } } }];
  await core.createNamespacedPod({ namespace: NS, body: pod('k3', {}, {}, env) });
  const waiting = await until('config error', async () => {
    const s = (await read('k3'))?.status?.containerStatuses?.[0]?.state?.waiting;
    return s?.reason === 'CreateContainerConfigError' ? s : undefined;
  });
  t.equal(waiting.message, 'secret "bot-k3" not found');
  t.equal((await read('k3'))?.status?.phase, 'Pending');
  await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'bot-k3' }, data: { token: Buffer.from('from-secret').toString('base64') } } });
  const r3 = await until('k3 ready', async () => { const p = await read('k3'); return ready(p) ? p : undefined; });
  t.equal(await (await request(`http://${r3.status?.podIP}:9000/`)).body.text(), 'from-secret');

  t.ok(kubelet.killContainer('k3', 'SIGKILL'));
  const failed = await until('k3 failed', async () => { const p = await read('k3'); return p?.status?.phase === 'Failed' ? p : undefined; });
  t.match(failed.status?.containerStatuses?.[0]?.state?.terminated, { exitCode: 137, reason: 'Error' });
  t.notOk(ready(failed));
  await core.deleteNamespacedPod({ name: 'k3', namespace: NS });
  t.equal(await read('k3'), undefined, 'a terminated pod is removed at once');

  await core.createNamespacedPod({ namespace: NS, body: pod('k4', {}, { restartPolicy: 'Always' }) });
  await until('k4 ready', async () => (ready(await read('k4')) ? true : undefined));
  kubelet.killContainer('k4', 'SIGKILL');
  const back = await until('k4 restarted and ready', async () => {
    const p = await read('k4');
    return p?.status?.containerStatuses?.[0]?.restartCount === 1 && ready(p) ? p : undefined;
  });
  t.equal(back.status?.phase, 'Running');
  await core.deleteNamespacedPod({ name: 'k4', namespace: NS, gracePeriodSeconds: 0 });
});

t.test('kubelet runs the real shim: warm pool member, relabel, graceful stop', async (t) => {
  useShim = true;
  const body = pod('warm-shim', { app: 'warm-pool' }, {}, [
    { name: 'WARM', value: '1' }, { name: 'WARM_POOL_SECRET', value: 'w'.repeat(24) }, { name: 'AGENT_PORT', value: '42617' },
  ]);
  const probe = body.spec?.containers[0];
  if (probe) probe.readinessProbe = { httpGet: { path: '/healthz', port: 9000 } };
  const created = await core.createNamespacedPod({ namespace: NS, body });
  const p = await until('shim healthy', async () => { const x = await read('warm-shim'); return ready(x) ? x : undefined; }, 15_000);
  const health = await request(`http://${p.status?.podIP}:9000/healthz`);
  t.match(await health.body.json(), { status: 'ok', phase: 'warm' });
  await core.patchNamespacedPod({ name: 'warm-shim', namespace: NS, body: { metadata: { resourceVersion: p.metadata?.resourceVersion, labels: { app: 'zeroclaw', tenant: 'acme' } } } }, merge);
  t.equal((await read('warm-shim'))?.metadata?.uid, created.metadata?.uid, 'the kubelet ignores label changes');
  t.equal(kubelet.pidOf('warm-shim') !== undefined, true);
  await core.deleteNamespacedPod({ name: 'warm-shim', namespace: NS });
  await until('shim gone', async () => ((await read('warm-shim')) === undefined ? true : undefined), 10_000);
  t.match(kubelet.logsOf('warm-shim'), /signal received/);
  useShim = false;
});
