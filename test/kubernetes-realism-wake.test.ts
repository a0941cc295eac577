/**
 * Issue 13, end to end on the Kubernetes API stand-in with the real runtime and pipeline
 * (test/support/kube/realism-platform.ts): a wake whose pod waits 5 minutes for a node (scaled
 * clock, past the wake lock's own TTL), a pod the API refuses at admission, and API calls that are
 * throttled, fail and hang. Each ends with the update answered once, or a named, operator-visible
 * failure that says what the API said.
 *
 * The platform's bounds are scaled with the cluster's clock: WAKE_LOCK_TTL_S=10 against a node that
 * takes 300 simulated s = 12 s (production: 240 s against 3-5 minutes), K8S_API_TIMEOUT_S=2. (The
 * agent's own start is not scaled: the lock TTL stays above it.)
 */
import t from 'tap';
import { startRealismPlatform, STARTING_UP_TEXT, type RealismPlatform } from './support/kube/realism-platform.js';
import { waitUntil } from './support/wait.js';
import { RESOURCES, type ResourceType } from './support/kube/objects.js';

const PODS = RESOURCES.find((x) => x.resource === 'pods') as ResourceType;

const SCALE = 0.04;
let r: RealismPlatform;

t.before(async () => {
  r = await startRealismPlatform(t, { WAKE_LOCK_TTL_S: '10', COLD_START_TIMEOUT_S: '90', K8S_API_TIMEOUT_S: '2', FORWARD_ATTEMPTS: '3' });
  for (const id of ['prov', 'refused', 'hung']) await r.createTenant(id);
});
t.afterEach(() => {
  r.api.behaviour.reset();
  r.api.faults.clear();
});

const wakeFailures = (id: string) => r.p.logs.find('wake failed').filter((e) => e.tenant === id);

t.test('a 5-minute node provisioning: the wake waits for it, one pod, one "Starting up", then the answer', async (t) => {
  r.api.behaviour.set({ timeScale: SCALE, scheduling: { provisionS: 300, nominate: true, selector: 'tenant=prov' } });
  const phases = new Set<string>();
  await r.send('prov', 1, 'hello from a new node');
  await waitUntil('the answer', async () => {
    const phase = (await r.tenantView('prov')).wake_phase;
    if (typeof phase === 'string') phases.add(phase);
    return r.seen('prov', 1).length >= 2;
  }, 60_000);
  t.same(r.seen('prov', 1), [STARTING_UP_TEXT, 'hello from a new node'], 'one notice, then the answer');
  const unschedulable = r.podStatuses('prov').some((s) => JSON.stringify(s).includes('"reason":"Unschedulable"'));
  t.ok(unschedulable, 'the pod was Unschedulable while its node was provisioned');
  t.equal(r.podCreates('prov').filter((q) => q.status === 201).length, 1, 'one pod: the node being brought up was waited for, not thrown away');
  t.equal(r.api.requests.filter((q) => q.method === 'DELETE' && q.path.endsWith('/pods/zeroclaw-prov')).length, 0, 'never deleted');
  t.ok([...phases].some((p) => /node/.test(p)), `ztm tenant get showed the wait for a node (phases seen: ${[...phases].join(', ') || 'none'})`);
  t.same(wakeFailures('prov'), [], 'no failed wake');
  // The waker marks the record running after the delivery (the message does not wait for that write).
  await waitUntil('the record marked running', async () => (await r.tenantView('prov')).status === 'running', 15_000).catch(() => undefined);
  const view = await r.tenantView('prov');
  t.equal(view.status, 'running');
  t.equal(view.last_wake_failure, undefined);
});

t.test('a pod refused at admission: a named failure with the API\'s own message, then delivered once the cluster is fixed', async (t) => {
  r.api.behaviour.set({ admission: { priorityClasses: ['zeroclaw-warm'] } }); // the tenant class is missing
  await r.send('refused', 1, 'are you there');
  await waitUntil('dead-lettered', async () => /wake failed/.test(await r.deadLetters('refused')), 60_000);
  const view = await r.tenantView('refused');
  const failure = String(view.last_wake_failure ?? '');
  t.match(failure, /^wake failed: api_refused: /, 'the reason is named');
  t.match(failure, /no PriorityClass with name zeroclaw-tenant was found/, 'with the API\'s own message');
  t.match(failure, /create/i, 'and the verb');
  t.match(failure, /zeroclaw-refused/, 'and the object');
  t.notMatch(failure, /RBAC/, 'no misleading RBAC hint');
  t.match(await r.deadLetters('refused'), /api_refused/, 'the dead letter says why');
  t.ok(wakeFailures('refused').every((e) => e.start_reason === 'api_refused'), '`wake failed` logs carry the start reason');
  t.ok(wakeFailures('refused').length >= 1);
  t.notOk(r.seen('refused', 1).includes('are you there'), 'not answered');
  r.api.behaviour.reset(); // the operator creates the PriorityClass
  const retried = await r.p.ztm('dead', 'retry', '--all');
  t.equal(retried.code, 0, retried.stderr);
  await waitUntil('the answer', () => r.seen('refused', 1).includes('are you there'), 60_000);
  t.equal(r.seen('refused', 1).filter((s) => s === 'are you there').length, 1, 'answered once');
  t.equal(r.seen('refused', 1).at(-1), 'are you there');
});

t.test('a throttled, failing, then hung API (one hung create carried out unanswered): each call bounded and retried, the wake completes, answered once', async (t) => {
  const pods = new RegExp(`^/api/v1/namespaces/${r.namespace}/pods$`);
  r.api.faults.add({ verb: 'create', path: pods, status: 429, retryAfterS: 1 });
  r.api.faults.add({ verb: 'create', path: pods, status: 503 });
  r.api.faults.add({ verb: 'create', path: pods, hang: true });
  r.api.faults.add({ verb: 'create', path: pods, applyThenHang: true }); // created, but the runtime never hears of it
  await r.send('hung', 1, 'still there?');
  await r.send('hung', 1, 'second');
  await waitUntil('both answers', () => r.seen('hung', 1).filter((s) => s !== STARTING_UP_TEXT).length >= 2, 60_000);
  t.same(r.seen('hung', 1), [STARTING_UP_TEXT, 'still there?', 'second'], 'one notice, both answered once, in order');
  t.same(r.api.faults.fired.filter((f) => pods.test(f.path)).map((f) => f.kind), ['error', 'error', 'hang', 'apply-then-hang'], 'the 429, the 503 and both hangs hit the start');
  t.equal(r.api.faults.hanging, 0, 'the runtime gave up on the hung requests (its timeout)');
  t.equal(r.api.store.list(PODS, r.namespace, { fieldSelector: 'metadata.name=zeroclaw-hung' }).items.length, 1, 'one pod: the create that was carried out unanswered was adopted (409), not duplicated');
  t.same(wakeFailures('hung'), [], 'no failed wake');
});
