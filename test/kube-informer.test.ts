/**
 * The Kubernetes runtime's one pod informer (lib/runtime/kubernetes/pod-informer.ts) against the
 * stand-in apiserver: list+watch from the list's version with bookmarks, a re-list on 410 Expired
 * whose diff reaches the waiters (a deletion slept through is seen), reconnects after errors and
 * hung watches; and, through the runtime, one watch however many starts wait at once (the waker's
 * concurrency), each failing with its reason and leaving no pod behind.
 */
import t from 'tap';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { KubeApi } from '../lib/runtime/kubernetes/kube-api.js';
import { PodInformer, type PodEvent } from '../lib/runtime/kubernetes/pod-informer.js';
import { KubernetesRuntime } from '../lib/runtime/kubernetes-runtime.js';
import type { StartProgress } from '../lib/runtime/runtime.js';
import type { Tenant } from '../lib/registry/tenant.js';
import { KubeApiServer } from './support/kube/api-server.js';
import { RESOURCES, type ResourceType } from './support/kube/objects.js';
import { startStandInStack } from './support/kube/stand-in-stack.js';
import { LogCapture } from './support/log-capture.js';

const NS = 'tenants';
const PODS = RESOURCES.find((r) => r.resource === 'pods') as ResourceType;

async function until<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// Bound to a node no kubelet runs: nothing changes these pods but the test.
const pod = (name: string, app = 'zeroclaw'): V1Pod => ({ metadata: { name, labels: { app, tenant: name } }, spec: { nodeName: 'elsewhere', containers: [{ name: 'c', image: 'x' }] } });

t.test('PodInformer: list+watch, 410 re-list feeding waiters, reconnects', async (t) => {
  const api = await KubeApiServer.start({ namespaces: [NS], behaviour: { watch: { bookmarkEveryS: 3600 } } });
  const logs = new LogCapture();
  const kc = api.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const kube = new KubeApi({ kubeConfig: kc, namespace: NS, log: logs.logger('runtime'), timeoutMs: 400, minBackoffMs: 20, maxBackoffMs: 100 });
  const informer = new PodInformer({ api: kube, kubeConfig: kc, namespace: NS, labelSelector: 'app in (zeroclaw,warm-pool)', log: logs.logger('runtime'), watchTimeoutS: 30, minBackoffMs: 20, maxBackoffMs: 100 });
  const events: string[] = [];
  t.teardown(async () => {
    informer.close();
    kube.close();
    await api.close();
  });
  const p0 = await core.createNamespacedPod({ namespace: NS, body: pod('p0') });
  await core.createNamespacedPod({ namespace: NS, body: pod('other', 'probe') });
  informer.subscribe((e: PodEvent) => events.push(`${e.type} ${e.pod.metadata?.name}${e.initial ? ' initial' : ''}`));
  await informer.ready();
  t.same(events, ['ADDED p0 initial'], 'the first list, only the runtime\'s pods');
  const w = await until('the watch', () => api.requests.find((q) => q.query.watch === 'true'));
  t.match(w?.query, { allowWatchBookmarks: 'true', labelSelector: 'app in (zeroclaw,warm-pool)' }, 'with bookmarks, one selector for tenant pods and warm members');
  t.ok(w?.query.resourceVersion, 'from the list\'s version');

  t.test('a waiter sees a pod it was given before its ADDED event as unknown, not gone', async (t) => {
    const created = await core.createNamespacedPod({ namespace: NS, body: pod('p1') });
    const seen = await informer.waitFor(created, { timeoutMs: 5000, timeoutError: () => new Error('timeout'), decide: (v) => (v.state === 'present' ? v.pod.metadata?.uid : v.state === 'gone' ? 'gone' : undefined) });
    t.equal(seen, created.metadata?.uid, 'present, never "gone" while the cache had not caught up');
  });

  t.test('a deletion slept through (history expired) reaches the waiter through the re-list', async (t) => {
    const expiredBefore = api.watchStats('pods').expired;
    const relists = informer.stats.relistsOn410;
    const gone = informer.waitFor(p0, { timeoutMs: 8000, timeoutError: () => new Error('p0 never seen gone'), decide: (v) => (v.state === 'gone' ? true : undefined) });
    // All at once, before the informer can reconnect: its watch ends, p0 goes, the history is compacted.
    api.closeWatches();
    api.store.delete(PODS, NS, 'p0', { gracePeriodSeconds: 0 });
    api.store.compact();
    t.equal(await gone, true, 'the waiter saw p0 go');
    t.equal(informer.stats.relistsOn410, relists + 1, 'through a re-list on 410');
    t.ok(api.watchStats('pods').expired > expiredBefore, 'the stand-in answered 410 Expired');
    t.ok(events.includes('DELETED p0'), 'the re-list\'s diff delivered DELETED to the listeners');
    await core.createNamespacedPod({ namespace: NS, body: pod('p2') });
    await until('ADDED p2 after the re-list', () => (events.includes('ADDED p2') ? true : undefined));
  });

  t.test('a failed watch request and a hung one: reconnected, nothing missed', async (t) => {
    api.faults.add({ verb: 'watch', status: 500 });
    api.faults.add({ verb: 'watch', hang: true });
    api.closeWatches();
    await core.createNamespacedPod({ namespace: NS, body: pod('p3') });
    await until('ADDED p3 after the faults', () => (events.includes('ADDED p3') ? true : undefined));
    // p3 may come with the re-list after the failed request, before the next watch request hangs.
    const hung = await until('the hung watch', () => (api.faults.fired.some((f) => f.kind === 'hang') ? true : undefined)).catch(() => false);
    t.ok(hung, 'the hung watch happened');
    await until('the hung request released', () => (api.faults.hanging === 0 ? true : undefined));
    await until('one watch open again', () => (api.watchStats('pods').open === 1 ? true : undefined));
    t.equal(api.watchStats('pods').open, 1, 'one watch open again');
    await core.createNamespacedPod({ namespace: NS, body: pod('p4') });
    await until('ADDED p4 after the hung watch', () => (events.includes('ADDED p4') ? true : undefined));
  });

  t.test('close: watch closed, waiters end', async (t) => {
    const p3 = informer.get('p3') as V1Pod;
    const waiting = informer.waitFor(p3, { timeoutMs: 10_000, timeoutError: () => new Error('timeout'), decide: () => undefined });
    informer.close();
    await t.rejects(waiting, { code: 'E_RUNTIME', message: /closed/ });
    await until('no open watch', () => (api.watchStats('pods').open === 0 ? true : undefined));
  });
});

const TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
function tenant(id: string): Tenant {
  const now = new Date().toISOString();
  return { tenant_id: id, bot_token: TOKEN, status: 'provisioning', idle_timeout_s: 300, created_at: now, updated_at: now, version: 1, incarnation: `inc-${id}`.padEnd(22, '0') };
}

t.test('20 concurrent starts waiting for a node: one watch, each fails unschedulable at its deadline, nothing left', async (t) => {
  const CONCURRENCY = 20;
  const { api, store, runtime } = await startStandInStack(t, NS, (s) => new KubernetesRuntime({
    kubeConfig: s.api.kubeConfig(), namespace: NS, image: 'zeroclaw:test', runtimeClassName: 'kata-qemu', agentPort: 42617,
    warmPoolSecret: 'warm-pool-secret-0123456789abcdef', log: s.logs.logger('runtime'), terminationGracePeriodSeconds: 5, readyTimeoutS: 60, coldStartTimeoutS: 60,
  }));
  api.behaviour.set({ scheduling: { never: true } });
  const ids = Array.from({ length: CONCURRENCY }, (_, i) => `c${i}`);
  const phases = new Map<string, StartProgress[]>(ids.map((id) => [id, []]));
  const watchesBefore = api.watchStats('pods').started;
  const deadlineMs = Date.now() + 8000;
  const starts = ids.map(async (id) => runtime.start(tenant(id), await store.presign(tenant(id)), { deadlineMs, onProgress: (p) => phases.get(id)?.push(p) })
    .then(() => 'started', (err: unknown) => err));
  await until('every start waiting in the informer', () => (runtime.informer.waiting === CONCURRENCY ? true : undefined), 8000);
  await until('the watch open', () => (api.watchStats('pods').open > 0 ? true : undefined), 5000);
  const stats = api.watchStats('pods');
  t.equal(stats.started - watchesBefore, 1, `${CONCURRENCY} starts in flight, one watch request`);
  t.equal(stats.open, 1, 'one watch stream open');
  t.comment(`watch requests with ${CONCURRENCY} starts waiting: ${stats.started - watchesBefore}`);
  const outcomes = await Promise.all(starts);
  for (const [i, err] of outcomes.entries()) {
    t.match(err, { code: 'E_RUNTIME', reason: 'unschedulable', message: new RegExp(`^pod zeroclaw-c${i} got no node within \\d+s .*Unschedulable`) }, `c${i}: unschedulable`);
  }
  const waited = phases.get('c0') ?? [];
  t.match(waited.find((p) => p.phase === 'waiting-for-node'), { detail: /^Unschedulable: 0\/\d+ nodes are available/ }, 'the scheduler\'s message reported as the phase detail');
  await until('every pod cleaned up', async () => ((await api.kubeConfig().makeApiClient(CoreV1Api).listNamespacedPod({ namespace: NS, labelSelector: 'app=zeroclaw' })).items.length === 0 ? true : undefined));
  t.equal(api.watchStats('pods').started - watchesBefore, 1, 'still one watch after the cleanup');
});
