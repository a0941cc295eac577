/**
 * The Kubernetes API call policy (lib/runtime/kubernetes/kube-api.ts) against the stand-in
 * apiserver's request faults (test/support/kube/faults.ts) and admission (admission.ts): a timeout
 * per attempt, 429 retried after Retry-After, 5xx, hung requests and connection resets retried
 * with backoff within bounded attempts and the caller's deadline, refusals (403/422) named with the
 * verb, the object and the API's own message, never retried.
 */
import t from 'tap';
import type { V1Pod } from '@kubernetes/client-node';
import { RuntimeError } from '../lib/errors.js';
import { KubeApi } from '../lib/runtime/kubernetes/kube-api.js';
import { KubeApiServer } from './support/kube/api-server.js';
import { LogCapture } from './support/log-capture.js';

const NS = 'tenants';
const probe = (name: string): V1Pod => ({ metadata: { name, labels: { app: 'probe' } }, spec: { priorityClassName: 'zeroclaw-tenant', containers: [{ name: 'c', image: 'x' }] } });

t.test('KubeApi call policy', async (t) => {
  const api = await KubeApiServer.start({ namespaces: [NS] });
  const logs = new LogCapture();
  const kube = new KubeApi({ kubeConfig: api.kubeConfig(), namespace: NS, log: logs.logger('runtime'), timeoutMs: 500, maxAttempts: 4, minBackoffMs: 20, maxBackoffMs: 100 });
  t.teardown(async () => {
    kube.close();
    await api.close();
  });
  const list = (deadlineMs?: number): Promise<V1Pod[]> => kube.listPods('app=probe', { deadlineMs });
  const listsSince = (n: number): number => api.requests.slice(n).filter((q) => q.method === 'GET' && q.path === `/api/v1/namespaces/${NS}/pods` && q.query.watch !== 'true').length;

  t.test('503 twice, then an answer: retried', async (t) => {
    const before = api.requests.length;
    api.faults.add({ verb: 'list', path: /\/pods$/, status: 503, times: 2 });
    t.same(await list(), []);
    t.equal(listsSince(before), 3, 'two failures and the answer');
    t.equal(logs.find('kubernetes API call failed: retrying').length, 2, 'each retry logged');
  });

  t.test('429 waits for Retry-After before the retry', async (t) => {
    const before = api.requests.length;
    api.faults.add({ verb: 'list', path: /\/pods$/, status: 429, retryAfterS: 1 });
    const retries = logs.find('kubernetes API call failed: retrying').length;
    t.same(await list(), []);
    const retry = logs.find('kubernetes API call failed: retrying')[retries];
    t.ok(Number(retry?.retry_in_ms) >= 1000, `retried after the server's Retry-After (${String(retry?.retry_in_ms)} ms)`);
    t.equal(listsSince(before), 2);
  });

  t.test('a hung request times out and is retried', async (t) => {
    const before = api.requests.length;
    const timeoutsBefore = kube.stats.timeouts;
    api.faults.add({ verb: 'list', path: /\/pods$/, hang: true });
    t.same(await list(), []);
    t.equal(kube.stats.timeouts, timeoutsBefore + 1, 'the attempt was bounded by the call timeout');
    t.equal(listsSince(before), 2);
    for (let i = 0; i < 100 && api.faults.hanging > 0; i++) await new Promise((r) => setTimeout(r, 20));
    t.equal(api.faults.hanging, 0, 'the hung request was closed by the client');
  });

  t.test('a reset connection is retried', async (t) => {
    api.faults.add({ verb: 'list', path: /\/pods$/, reset: true });
    t.same(await list(), []);
  });

  t.test('an API that keeps failing: api_unavailable after the bounded attempts', async (t) => {
    const before = api.requests.length;
    const off = api.faults.add({ verb: 'list', path: /\/pods$/, status: 500, times: Infinity });
    t.teardown(off);
    const err = await list().catch((e: unknown) => e);
    t.ok(err instanceof RuntimeError);
    t.match(err, { code: 'E_RUNTIME', reason: 'api_unavailable', message: /^list pods app=probe: the Kubernetes API did not answer \(HTTP 500 InternalError: .*4 attempts\)$/ });
    t.equal(listsSince(before), 4, 'exactly maxAttempts requests');
  });

  t.test('the caller\'s deadline bounds the retries and each attempt', async (t) => {
    const off = api.faults.add({ verb: 'list', path: /\/pods$/, hang: true, times: Infinity });
    t.teardown(off);
    const before = api.requests.length;
    const err = await list(Date.now() + 300).catch((e: unknown) => e);
    t.match(err, { reason: 'api_unavailable', message: /no answer within \d+ ms; the start's deadline passed/ });
    t.equal(listsSince(before), 1, 'one attempt, cut at the deadline (not maxAttempts × the timeout)');
  });

  t.test('403 from admission: api_refused with the verb, the object and the API\'s own message, not retried', async (t) => {
    api.behaviour.set({ admission: { priorityClasses: ['zeroclaw-warm'] } });
    t.teardown(() => api.behaviour.set({ admission: { priorityClasses: undefined } }));
    const before = api.requests.length;
    const err = await kube.call({ verb: 'create', object: 'pod p1' }, (opts) => kube.core.createNamespacedPod({ namespace: NS, body: probe('p1') }, opts)).catch((e: unknown) => e);
    t.match(err, { code: 'E_RUNTIME', reason: 'api_refused' });
    t.match((err as Error).message, /^create pod p1 refused by the Kubernetes API: HTTP 403 Forbidden: pods "p1" is forbidden: no PriorityClass with name zeroclaw-tenant was found$/);
    t.notMatch((err as Error).message, /RBAC/, 'no guessed hint: the API said what is wrong');
    t.equal(api.requests.slice(before).filter((q) => q.method === 'POST').length, 1, 'a refusal is not retried');
  });

  t.test('403 from RBAC names what was denied', async (t) => {
    api.behaviour.set({ admission: { deny: [{ verb: 'delete', resource: 'pods' }] } });
    t.teardown(() => api.behaviour.set({ admission: { deny: [] } }));
    const err = await kube.call({ verb: 'delete', object: 'pod p9' }, (opts) => kube.core.deleteNamespacedPod({ name: 'p9', namespace: NS }, opts)).catch((e: unknown) => e);
    t.match(err, { reason: 'api_refused', message: /^delete pod p9 refused by the Kubernetes API: HTTP 403 Forbidden: .*cannot delete resource "pods" in API group "" in the namespace "tenants"/ });
  });

  t.test('422 Invalid is a refusal; 404 and 409 are the caller\'s to handle', async (t) => {
    api.faults.add({ method: 'POST', path: /\/pods$/, status: 422, message: 'Pod "p2" is invalid: spec.containers: Required value' });
    await t.rejects(kube.call({ verb: 'create', object: 'pod p2' }, (opts) => kube.core.createNamespacedPod({ namespace: NS, body: probe('p2') }, opts)),
      { reason: 'api_refused', message: /create pod p2 refused .*HTTP 422 Invalid: Pod "p2" is invalid: spec.containers: Required value/ });
    t.equal(await kube.readPod('nothing'), undefined, '404: no such pod');
    await kube.call({ verb: 'create', object: 'pod p3' }, (opts) => kube.core.createNamespacedPod({ namespace: NS, body: probe('p3') }, opts));
    const conflict = await kube.call({ verb: 'create', object: 'pod p3' }, (opts) => kube.core.createNamespacedPod({ namespace: NS, body: probe('p3') }, opts)).catch((e: unknown) => e);
    t.notOk(conflict instanceof RuntimeError, 'a 409 comes back as the API error');
    t.equal((conflict as { code?: number }).code, 409);
  });

  t.test('close ends a call in flight', async (t) => {
    const other = new KubeApi({ kubeConfig: api.kubeConfig(), namespace: NS, log: logs.logger('runtime'), timeoutMs: 10_000 });
    api.faults.add({ verb: 'list', path: /\/pods$/, hang: true });
    const pending = other.listPods('app=probe');
    setTimeout(() => other.close(), 100);
    await t.rejects(pending, { message: /closed/ });
    await t.rejects(other.listPods('app=probe'), { message: /closed/ }, 'later calls refused at once');
  });
});
