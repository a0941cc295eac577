/**
 * The Kubernetes runtime. Pure part: every field of the cold and warm pod specs and the Secrets
 * (kata scheduling, hardening, probes, env; the bot token only by secretKeyRef, never a value).
 * Integration part: the runtime against the stand-in kube-apiserver and simulated kubelet
 * (test/support/kube/): the kubelet really runs agent/shim.ts per pod with the reference agent and
 * s3rver-backed presigned state, so cold start, warm claim, stop, crash and delete are the real
 * thing minus the VM.
 */
import t from 'tap';
import { request } from 'undici';
import { CoreV1Api, type V1Container, type V1Pod } from '@kubernetes/client-node';
import type { S3Client } from '@aws-sdk/client-s3';
import { ValidationError } from '../lib/errors.js';
import {
  claimPatch,
  coldPodManifest,
  DEFAULT_KATA_NODE_SELECTOR,
  DEFAULT_KATA_TOLERATIONS,
  controlSecretManifest,
  tokenSecretManifest,
  tokenSecretName,
  validatePodSpecOptions,
  warmPodManifest,
  warmPoolSecretManifest,
  type PodSpecOptions,
} from '../lib/runtime/pod-spec.js';
import { KubernetesRuntime, type KubernetesRuntimeOptions } from '../lib/runtime/kubernetes-runtime.js';
import { podControlSecret } from '../lib/runtime/pod-secrets.js';
import { deriveAgentToken } from '../lib/webhook-secret.js';
import type { Tenant } from '../lib/registry/tenant.js';
import type { EmbeddedS3 } from '../lib/state/embedded-s3.js';
import { StateStore } from '../lib/state/state-store.js';
import type { KubeApiServer } from './support/kube/api-server.js';
import type { Kubelet } from './support/kube/kubelet.js';
import { startStandInStack } from './support/kube/stand-in-stack.js';
import { LogCapture } from './support/log-capture.js';

const TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
const SECRET = 'warm-pool-secret-0123456789abcdef';

const OPTIONS: PodSpecOptions = validatePodSpecOptions({
  namespace: 'tenants',
  image: 'registry.example.com/zeroclaw:1.2.3',
  runtimeClassName: 'kata-qemu',
  shimPort: 9000,
  agentPort: 42617,
  priorityClassName: 'zeroclaw-tenant',
  warmPriorityClassName: 'zeroclaw-warm',
  terminationGracePeriodSeconds: 60,
  resources: { requests: { cpu: '100m', memory: '384Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
  nodeSelector: { ...DEFAULT_KATA_NODE_SELECTOR },
  tolerations: DEFAULT_KATA_TOLERATIONS.map((x) => ({ ...x })),
  runAsUser: 65532,
  extraEnv: { LOG_LEVEL: 'debug' },
});

const shim = (pod: V1Pod): V1Container => {
  const c = pod.spec?.containers[0];
  if (!c) throw new Error('no container');
  return c;
};
const envOf = (pod: V1Pod): Map<string, NonNullable<V1Container['env']>[number]> => new Map((shim(pod).env ?? []).map((e) => [e.name, e]));

const CID = '0123456789abcdef';

t.test('cold pod spec: identity, kata scheduling, hardening, probe, env', async (t) => {
  const pod = coldPodManifest(OPTIONS, 'alice', CID);
  t.equal(pod.metadata?.name, 'zeroclaw-alice');
  t.equal(pod.metadata?.namespace, 'tenants');
  t.match(pod.metadata?.labels, { app: 'zeroclaw', tenant: 'alice' });
  t.same(pod.metadata?.annotations, { 'agentic-tenancy/control-id': CID }, 'its control id');
  t.notOk(pod.metadata?.generateName);
  const spec = pod.spec!;
  t.equal(spec.runtimeClassName, 'kata-qemu');
  t.same(spec.nodeSelector, { 'katacontainers.io/kata-runtime': 'true' }, 'kata node selector');
  t.same(spec.tolerations, [{ key: 'kata-runtime', operator: 'Equal', value: 'true', effect: 'NoSchedule' }], 'kata taint tolerated');
  t.equal(spec.priorityClassName, 'zeroclaw-tenant');
  t.equal(spec.terminationGracePeriodSeconds, 60);
  t.equal(spec.restartPolicy, 'Never');
  t.equal(spec.automountServiceAccountToken, false);
  t.equal(spec.enableServiceLinks, false);
  t.match(spec.securityContext, { runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } });
  t.equal(spec.containers.length, 1);
  const c = shim(pod);
  t.equal(c.name, 'shim');
  t.equal(c.image, 'registry.example.com/zeroclaw:1.2.3');
  t.same(c.ports?.map((p) => [p.name, p.containerPort]), [['shim', 9000], ['agent', 42617]]);
  t.same(c.resources, { requests: { cpu: '100m', memory: '384Mi' }, limits: { cpu: '500m', memory: '512Mi' } });
  t.match(c.securityContext, { allowPrivilegeEscalation: false, privileged: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
  t.match(c.readinessProbe, { httpGet: { path: '/healthz', port: 9000 } }, 'readiness: the shim listens (claimable); the agent\'s readiness is the claim\'s answer');
  t.same(c.volumeMounts, [{ name: 'workspace', mountPath: '/workspace' }, { name: 'tmp', mountPath: '/tmp' }], 'the workspace and /tmp: the only writable places');
  t.same(spec.volumes, [{ name: 'workspace', emptyDir: {} }, { name: 'tmp', emptyDir: { sizeLimit: '256Mi' } }]);

  const env = envOf(pod);
  t.equal(env.get('WARM')?.value, '1', 'unbound until its claim, like a warm pod');
  t.notOk(env.has('TENANT_ID'), 'the tenant comes with the claim');
  t.equal(env.get('SHIM_PORT')?.value, '9000');
  t.equal(env.get('AGENT_PORT')?.value, '42617');
  t.equal(env.get('WORKSPACE')?.value, '/workspace');
  for (const name of ['STATE_GET_URL', 'STATE_PUT_URL', 'STATE_LEGACY_GET_URL', 'BOT_TOKEN', 'TENANT_WEBHOOK_SECRET', 'AGENT_TOKEN_SHA256']) t.notOk(env.has(name), `no ${name} in the spec: it comes with the signed claim`);
  t.equal(env.get('LOG_LEVEL')?.value, 'debug', 'extra env passed through');
  t.notOk(env.get('WARM_POOL_SECRET')?.value, 'the control secret is never a plain value');
  t.same(env.get('WARM_POOL_SECRET')?.valueFrom, { secretKeyRef: { name: `shim-control-${CID}`, key: 'SHIM_CONTROL_SECRET', optional: false } }, 'the pod\'s own control secret, from its own Secret');
  t.notMatch(JSON.stringify(pod), /AAHdq|123456789:|X-Amz/, 'no token and no signed URL anywhere in the pod');
});

t.test('warm pod spec: a name of its own control id, low priority, WARM=1, its control secret by reference', async (t) => {
  const pod = warmPodManifest(OPTIONS, CID);
  t.equal(pod.metadata?.name, `warm-pool-${CID}`, 'named before its spec is written (its Secret is named after the same id)');
  t.notOk(pod.metadata?.generateName);
  t.equal(pod.metadata?.labels?.app, 'warm-pool');
  t.notOk(pod.metadata?.labels?.tenant);
  t.equal(pod.spec?.priorityClassName, 'zeroclaw-warm');
  t.equal(pod.spec?.runtimeClassName, 'kata-qemu');
  t.same(pod.spec?.nodeSelector, { 'katacontainers.io/kata-runtime': 'true' });
  t.equal(pod.spec?.restartPolicy, 'Never');
  t.equal(pod.spec?.automountServiceAccountToken, false);
  const env = envOf(pod);
  t.equal(env.get('WARM')?.value, '1');
  t.notOk(env.has('TENANT_ID'));
  t.notOk(env.has('BOT_TOKEN'));
  t.notOk(env.get('WARM_POOL_SECRET')?.value, 'no plain claim secret');
  t.same(env.get('WARM_POOL_SECRET')?.valueFrom, { secretKeyRef: { name: `shim-control-${CID}`, key: 'SHIM_CONTROL_SECRET', optional: false } });
  t.match(shim(pod).readinessProbe, { httpGet: { path: '/healthz', port: 9000 } }, 'warm readiness: the shim listens (claimable)');
  t.throws(() => warmPodManifest(OPTIONS, 'short'), ValidationError, 'control ids are 16 hex digits');
});

t.test('secrets: token, warm pool (no master) and control secret base64 in data, labelled; the control Secret owned by its pod', async (t) => {
  const s = tokenSecretManifest('tenants', 'alice', TOKEN);
  t.equal(s.metadata?.name, 'zeroclaw-alice-token');
  t.equal(tokenSecretName('alice'), 'zeroclaw-alice-token');
  t.equal(s.metadata?.labels?.tenant, 'alice');
  t.equal(s.type, 'Opaque');
  t.equal(Buffer.from(s.data?.BOT_TOKEN ?? '', 'base64').toString(), TOKEN);
  const w = warmPoolSecretManifest('tenants', 'sk-model-key');
  t.equal(w.metadata?.name, 'zeroclaw-warm-pool');
  t.same(Object.keys(w.data ?? {}), ['AGENT_LLM_API_KEY'], 'only the model key: the master control secret is not in the tenants namespace');
  t.same(warmPoolSecretManifest('tenants').data, {});
  const c = controlSecretManifest('tenants', { name: 'zeroclaw-alice', uid: 'uid-1' }, CID, 'a-control-secret-0123456789');
  t.equal(c.metadata?.name, `shim-control-${CID}`);
  t.same(c.metadata?.ownerReferences, [{ apiVersion: 'v1', kind: 'Pod', name: 'zeroclaw-alice', uid: 'uid-1' }], 'owned by its pod: collected with it');
  t.equal(Buffer.from(c.data?.SHIM_CONTROL_SECRET ?? '', 'base64').toString(), 'a-control-secret-0123456789');
  t.throws(() => controlSecretManifest('tenants', { name: 'p', uid: '' }, CID, 'a-control-secret-0123456789'), ValidationError, 'an owner is required');
  t.throws(() => tokenSecretManifest('tenants', 'Bad_Id', TOKEN), ValidationError);
  t.not(podControlSecret(SECRET, 'zeroclaw-alice', CID), podControlSecret(SECRET, 'zeroclaw-alice', 'fedcba9876543210'), 'a later pod of the same tenant has another secret');
  t.not(podControlSecret(SECRET, 'zeroclaw-alice', CID), podControlSecret(SECRET, 'zeroclaw-bob', CID));
});

t.test('claim patch: relabel with the resourceVersion (optimistic concurrency)', async (t) => {
  const p = claimPatch('alice', '1234', new Date('2024-01-01T00:00:00Z'));
  t.same(p, { metadata: { resourceVersion: '1234', labels: { app: 'zeroclaw', tenant: 'alice' }, annotations: { 'agentic-tenancy/claimed-at': '2024-01-01T00:00:00.000Z' } } });
  t.throws(() => claimPatch('alice', '', new Date()), ValidationError);
});

t.test('option validation is strict', async (t) => {
  const bad: Array<[string, Partial<PodSpecOptions>]> = [
    ['namespace', { namespace: 'Tenants' }],
    ['image', { image: 'has space' }],
    ['runtimeClassName', { runtimeClassName: '' }],
    ['ports', { agentPort: 9000 }],
    ['port range', { shimPort: 70000 }],
    ['grace', { terminationGracePeriodSeconds: -1 }],
    ['resources', { resources: { requests: { cpu: 'lots' } } }],
    ['toleration', { tolerations: [{ key: 'x', operator: 'Maybe' }] }],
    ['runAsUser root', { runAsUser: 0 }],
    ['reserved env', { extraEnv: { BOT_TOKEN: 'x' } }],
    ['env name', { extraEnv: { 'A-B': 'x' } }],
  ];
  for (const [what, patch] of bad) t.throws(() => validatePodSpecOptions({ ...OPTIONS, ...patch }), ValidationError, what);
  t.throws(() => coldPodManifest(OPTIONS, '../etc', CID), ValidationError, 'tenant id validated');
});


// ------------------------------------------------------------------ integration
// The runtime against the stand-in apiserver + kubelet: real shims, reference agents, s3rver state.

interface Env {
  api: KubeApiServer;
  kubelet: Kubelet;
  s3: EmbeddedS3;
  s3client: S3Client;
  store: StateStore;
  logs: LogCapture;
  runtime: KubernetesRuntime;
  core: CoreV1Api;
}

const NS = 'tenants';
const AGENT_PORT = 42617;

const WEBHOOK = 'webhook-master-secret-0123456789abcdef';
/** Each test tenant's incarnation (records carry one since lib/registry/tenant.ts sets it at create). */
const incarnationOf = (id: string): string => `inc-${id}`.padEnd(22, '0');

function tenant(id: string, token = TOKEN, incarnation = incarnationOf(id)): Tenant {
  const now = new Date().toISOString();
  return { tenant_id: id, bot_token: token, status: 'provisioning', idle_timeout_s: 300, created_at: now, updated_at: now, version: 1, incarnation };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A delivery as the forwarder makes it: with the bearer derived for the tenant (`key` is `<tenant>:<n>`). */
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

function makeRuntime(e: Pick<Env, 'api' | 'logs'>, overrides: Partial<KubernetesRuntimeOptions> = {}): KubernetesRuntime {
  return new KubernetesRuntime({
    kubeConfig: e.api.kubeConfig(),
    namespace: NS,
    image: 'zeroclaw:test',
    runtimeClassName: 'kata-qemu',
    agentPort: AGENT_PORT,
    warmPoolSecret: SECRET,
    webhookSecret: WEBHOOK,
    log: e.logs.logger('runtime'),
    terminationGracePeriodSeconds: 15,
    readyTimeoutS: 60,
    extraEnv: { CHECKPOINT_INTERVAL_S: '0', LOG_LEVEL: 'info' },
    ...overrides,
  });
}

async function podsOf(core: CoreV1Api, labelSelector: string): Promise<V1Pod[]> {
  return (await core.listNamespacedPod({ namespace: NS, labelSelector })).items;
}

const readyPod = (p: V1Pod): boolean => p.status?.phase === 'Running' && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True') && !p.metadata?.deletionTimestamp;

async function warmReady(core: CoreV1Api, n: number): Promise<V1Pod[]> {
  return until(`${n} ready warm pod(s)`, async () => {
    const ready = (await podsOf(core, 'app=warm-pool')).filter(readyPod);
    return ready.length >= n ? ready : undefined;
  }, 30_000);
}

t.test('KubernetesRuntime against the stand-in apiserver and kubelet', async (t) => {
  const stack = await startStandInStack(t, NS, (s) => makeRuntime(s));
  const e: Env = { ...stack, core: stack.api.kubeConfig().makeApiClient(CoreV1Api) };
  const { api, kubelet, store, logs, runtime, core } = e;
  const exits: Array<[string, string]> = [];
  runtime.onExit((id, pod) => exits.push([id, pod]));

  t.test('construction is strict', async (t) => {
    t.throws(() => makeRuntime(e, { warmPoolSecret: 'short' }), ValidationError);
    t.throws(() => makeRuntime(e, { namespace: 'Bad' }), ValidationError);
    t.throws(() => makeRuntime(e, { shimPort: AGENT_PORT }), ValidationError);
    t.throws(() => makeRuntime(e, { readyTimeoutS: 0 }), ValidationError);
    t.throws(() => makeRuntime(e, { kubeConfig: {} as never }), ValidationError);
  });

  t.test('cold start: pod created, Ready, token by Secret, agent answers; find and list', async (t) => {
    const started = Date.now();
    const r = await runtime.start(tenant('alice'), await store.presign(tenant('alice')));
    t.equal(r.path, 'cold');
    t.equal(r.instance.podName, 'zeroclaw-alice');
    t.match(r.instance.ip, /^127\./);
    t.equal(r.instance.address, `${r.instance.ip}:${AGENT_PORT}`);
    t.equal(logs.find('warm pool miss: cold start').length, 1, 'logs the cold path');
    const pod = await core.readNamespacedPod({ name: 'zeroclaw-alice', namespace: NS });
    t.ok(readyPod(pod), 'the pod is Running and Ready');
    t.match(pod.metadata?.labels, { app: 'zeroclaw', tenant: 'alice' });
    t.equal(pod.spec?.runtimeClassName, 'kata-qemu');
    const secret = await core.readNamespacedSecret({ name: 'zeroclaw-alice-token', namespace: NS });
    t.equal(Buffer.from(secret.data?.BOT_TOKEN ?? '', 'base64').toString(), TOKEN, 'token Secret created');
    t.match(await say(r.instance.address, 'hello', 'alice:1'), /You said: hello \(memories: 1\)/);
    t.same(await runtime.find('alice'), r.instance, 'find');
    t.same((await runtime.list()).map((i) => i.tenantId), ['alice'], 'list');
    t.equal(await runtime.find('nobody'), undefined);
    t.ok(Date.now() - started < 30_000);
    // The waiting was the runtime's one shared watch, not a watch of its own nor a polling loop of GETs.
    const watches = api.requests.filter((q) => q.path === `/api/v1/namespaces/${NS}/pods` && q.query.watch === 'true');
    t.equal(watches.length, 1, 'readiness followed by the one informer watch');
    t.equal(watches[0]?.query.labelSelector, 'app in (zeroclaw,warm-pool)', 'of tenant pods and warm members');
    t.equal(watches[0]?.query.allowWatchBookmarks, 'true', 'with bookmarks');
    t.ok(watches[0]?.query.resourceVersion, 'from the list\'s resourceVersion');
    const gets = api.requests.filter((q) => q.method === 'GET' && q.path === `/api/v1/namespaces/${NS}/pods/zeroclaw-alice`);
    t.ok(gets.length <= 2, `no polling GETs of the pod (${gets.length})`);
  });

  t.test('start of a live tenant reuses its pod', async (t) => {
    const before = (await core.readNamespacedPod({ name: 'zeroclaw-alice', namespace: NS })).metadata?.uid;
    const r = await runtime.start(tenant('alice'), await store.presign(tenant('alice')));
    t.equal(r.instance.podName, 'zeroclaw-alice');
    t.equal((await core.readNamespacedPod({ name: 'zeroclaw-alice', namespace: NS })).metadata?.uid, before);
  });

  t.test('stop: graceful (state checkpointed), pod gone; a new start restores it', async (t) => {
    t.equal(await runtime.stop('alice'), true);
    t.same(await podsOf(core, 'tenant=alice'), [], 'no pod left when stop resolves');
    t.match(kubelet.logsOf('zeroclaw-alice'), /signal received/, 'the shim got SIGTERM');
    t.ok(await store.head(tenant('alice')), 'brain.db saved to S3 on the way out');
    t.equal(await runtime.find('alice'), undefined);
    t.equal(await runtime.stop('alice'), false, 'a second stop finds nothing');
    t.same(exits, [], 'a requested stop is not an exit');
    const r = await runtime.start(tenant('alice'), await store.presign(tenant('alice')));
    t.equal(r.path, 'cold');
    t.match(await say(r.instance.address, 'again', 'alice:2'), /memories: 2/, 'the memory survived sleep and wake');
  });

  t.test('start waits for a deletion in progress (kubectl delete pod) and restores its final state', async (t) => {
    const live = await runtime.find('alice');
    t.ok(live);
    t.match(await say(live!.address, 'before delete', 'alice:3'), /memories: 3/);
    const old = await core.readNamespacedPod({ name: 'zeroclaw-alice', namespace: NS });
    await core.deleteNamespacedPod({ name: 'zeroclaw-alice', namespace: NS }); // operator, graceful
    const r = await runtime.start(tenant('alice'), await store.presign(tenant('alice')));
    t.not((await core.readNamespacedPod({ name: 'zeroclaw-alice', namespace: NS })).metadata?.uid, old.metadata?.uid, 'a new pod');
    t.match(await say(r.instance.address, 'after delete', 'alice:4'), /memories: 4/, 'the final checkpoint of the deleted pod was restored');
    await until('exit reported for the deleted pod', async () => (exits.some(([id]) => id === 'alice') ? true : undefined));
    t.same(exits.find(([id]) => id === 'alice'), ['alice', 'zeroclaw-alice'], 'an operator deletion is reported by onExit');
    exits.length = 0;
  });

  t.test('onExit fires when the container dies on its own', async (t) => {
    t.ok(kubelet.killContainer('zeroclaw-alice', 'SIGKILL'), 'killed the shim');
    await until('onExit', async () => (exits.length > 0 ? true : undefined));
    t.same(exits, [['alice', 'zeroclaw-alice']]);
    const pod = await until('pod Failed', async () => {
      const p = await core.readNamespacedPod({ name: 'zeroclaw-alice', namespace: NS });
      return p.status?.phase === 'Failed' ? p : undefined;
    });
    t.equal(pod.status?.phase, 'Failed');
    t.equal(await runtime.find('alice'), undefined, 'a dead pod is not found');
    exits.length = 0;
    // The next start clears the dead pod (restartPolicy Never keeps it) and starts afresh.
    const r = await runtime.start(tenant('alice'), await store.presign(tenant('alice')));
    t.equal(r.path, 'cold');
    t.ok(await runtime.find('alice'));
  });

  t.test('warm pool: addWarm, countWarm, a claim relabels the pod (hit), the agent serves the tenant', async (t) => {
    t.equal(await runtime.countWarm(), 0);
    await runtime.addWarm(2);
    t.equal(await runtime.countWarm(), 2, 'pending members count');
    const warmSecret = await core.readNamespacedSecret({ name: 'zeroclaw-warm-pool', namespace: NS });
    t.notOk(warmSecret.data?.WARM_POOL_SECRET, 'the master is not in the tenants namespace');
    await warmReady(core, 2);
    const r = await runtime.start(tenant('bob'), await store.presign(tenant('bob')));
    t.equal(r.path, 'warm');
    t.match(r.instance.podName, /^warm-pool-/);
    t.equal(logs.find('warm pool hit: reusing node').length, 1, 'logs the hit');
    const pod = await core.readNamespacedPod({ name: r.instance.podName, namespace: NS });
    t.match(pod.metadata?.labels, { app: 'zeroclaw', tenant: 'bob' }, 'relabelled');
    t.ok(pod.metadata?.annotations?.['agentic-tenancy/claimed-at'], 'claim time annotated');
    const patches = api.requests.filter((q) => q.method === 'PATCH' && q.path.endsWith(`/pods/${r.instance.podName}`));
    t.equal(patches[0]?.contentType, 'application/merge-patch+json');
    t.ok((patches[0]?.body as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion, 'the relabel carries the resourceVersion');
    t.equal(await runtime.countWarm(), 1);
    t.match(await say(r.instance.address, 'hi bob', 'bob:1'), /memories: 1/);
    t.same(await runtime.find('bob'), r.instance, 'find sees the claimed pod');
    t.same((await runtime.list()).map((i) => i.tenantId).sort(), ['alice', 'bob']);
    // A claimed pod stops like any tenant pod, saving its state.
    t.equal(await runtime.stop('bob'), true);
    t.ok(await store.head(tenant('bob')), 'state of the warm-started agent saved');
  });

  t.test('two concurrent starts, one warm member: one hit, one cold, never the same pod', async (t) => {
    await warmReady(core, 1);
    t.equal(await runtime.countWarm(), 1);
    const hitsBefore = logs.find('warm pool hit: reusing node').length;
    const other = makeRuntime(e); // another waker replica
    t.teardown(() => other.close());
    const [a, b] = await Promise.all([
      runtime.start(tenant('carol'), await store.presign(tenant('carol'))),
      other.start(tenant('dave'), await store.presign(tenant('dave'))),
    ]);
    t.same([a.path, b.path].sort(), ['cold', 'warm']);
    t.not(a.instance.podName, b.instance.podName);
    t.equal(logs.find('warm pool hit: reusing node').length, hitsBefore + 1);
    const cold = a.path === 'cold' ? a : b;
    t.equal(cold.instance.podName, `zeroclaw-${cold.instance.tenantId}`);
    t.equal(await runtime.countWarm(), 0);
    t.match(await say(a.instance.address, 'c', 'carol:1'), /memories: 1/);
    t.match(await say(b.instance.address, 'd', 'dave:1'), /memories: 1/);
    await Promise.all([runtime.stop('carol'), runtime.stop('dave')]);
  });

  t.test('five replicas wake five tenants at once with two warm members: two hits, three cold', async (t) => {
    await runtime.addWarm(2);
    await warmReady(core, 2);
    const ids = ['h1', 'h2', 'h3', 'h4', 'h5'];
    const replicas = ids.map(() => makeRuntime(e));
    t.teardown(() => Promise.all(replicas.map((r) => r.close())));
    const patchesBefore = api.requests.filter((q) => q.method === 'PATCH').length;
    const results = await Promise.all(ids.map(async (id, i) => replicas[i]!.start(tenant(id), await store.presign(tenant(id)))));
    t.same(results.map((r) => r.path).filter((p) => p === 'warm').length, 2, 'each member claimed once');
    t.equal(new Set(results.map((r) => r.instance.podName)).size, 5, 'five distinct pods');
    for (const [i, id] of ids.entries()) {
      t.same((await podsOf(core, `tenant=${id}`)).map((p) => p.metadata?.name), [results[i]!.instance.podName], `${id}: exactly one pod`);
    }
    const patches = api.requests.filter((q) => q.method === 'PATCH').slice(patchesBefore);
    t.comment(`relabel attempts: ${patches.length}, refused with 409: ${patches.filter((q) => q.status === 409).length}`);
    t.equal(patches.filter((q) => q.status === 200).length, 2, 'exactly two relabels succeeded');
    t.equal(await runtime.countWarm(), 0);
    await Promise.all(ids.map((id) => runtime.stop(id)));
  });

  t.test('removeWarm removes not-ready members first', async (t) => {
    await runtime.addWarm(1);
    const [first] = await warmReady(core, 1);
    await runtime.addWarm(2); // still starting
    t.equal(await runtime.countWarm(), 3);
    await runtime.removeWarm(2);
    t.equal(await runtime.countWarm(), 1);
    const left = (await podsOf(core, 'app=warm-pool')).filter((p) => !p.metadata?.deletionTimestamp);
    t.same(left.map((p) => p.metadata?.name), [first?.metadata?.name], 'the ready member stays');
    await runtime.removeWarm(5);
    t.equal(await runtime.countWarm(), 0);
    await until('warm pods gone', async () => ((await podsOf(core, 'app=warm-pool')).length === 0 ? true : undefined));
  });

  t.test('a failed claim deletes the member and falls back to a cold start', async (t) => {
    // Members started with another claim secret: the claim is refused with 401.
    const wrong = makeRuntime(e, { warmPoolSecret: 'another-secret-0123456789' });
    t.teardown(() => wrong.close());
    await wrong.addWarm(1);
    const [member] = await warmReady(core, 1);
    const r = await runtime.start(tenant('erin'), await store.presign(tenant('erin')));
    t.equal(r.path, 'cold');
    t.equal(logs.find('warm pool claim failed').length, 1);
    t.notMatch(logs.text(), /another-secret|warm-pool-secret-0123/, 'no secret in the logs');
    await until('refused member gone', async () => ((await podsOf(core, 'app in (warm-pool,zeroclaw)')).some((p) => p.metadata?.name === member?.metadata?.name) ? undefined : true));
    t.same((await podsOf(core, 'tenant=erin')).map((p) => p.metadata?.name), ['zeroclaw-erin'], 'exactly one pod for the tenant');
    await runtime.stop('erin');
  });

  t.test('token rotation updates the Secret; deleteTenantResources is idempotent', async (t) => {
    const rotated = '123456789:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
    await runtime.stop('alice');
    await runtime.start(tenant('alice', rotated), await store.presign(tenant('alice')));
    const secret = await core.readNamespacedSecret({ name: 'zeroclaw-alice-token', namespace: NS });
    t.equal(Buffer.from(secret.data?.BOT_TOKEN ?? '', 'base64').toString(), rotated, 'rotated');
    await core.createNamespacedPersistentVolumeClaim({ namespace: NS, body: {
      metadata: { name: 'scratch-alice', labels: { tenant: 'alice' } },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    } });
    const first = await runtime.deleteTenantResources('alice');
    t.same(first, { pods: true, secret: true, pvcs: 1 });
    t.same(await podsOf(core, 'tenant=alice'), []);
    const second = await runtime.deleteTenantResources('alice', { purge: true });
    t.same(second, { pods: false, secret: false, pvcs: 0 }, 'second run: nothing left, no error');
    t.equal(await runtime.deleteTenantSecret('alice'), false);
  });

  t.test('no bot token in logs, pod specs or errors', async (t) => {
    t.notMatch(logs.text(), /AAHdq|BBHdq/, 'runtime logs');
    for (const q of api.requests) {
      if (q.path.includes('/secrets')) continue;
      t.notMatch(JSON.stringify(q.body ?? ''), /AAHdq|BBHdq/, `${q.method} ${q.path}`);
    }
  });

  t.test('a pod that fails before it is ready is a RuntimeError', async (t) => {
    const failing = makeRuntime(e, { extraEnv: { CHECKPOINT_INTERVAL_S: 'not-a-number' } });
    t.teardown(() => failing.close());
    await t.rejects(failing.start(tenant('frank'), await store.presign(tenant('frank'))), { code: 'E_RUNTIME', message: /ended before it was ready/ });
    const slow = makeRuntime(e, { readyTimeoutS: 1, extraEnv: { AGENT_COMMAND: 'sleep 30' } });
    t.teardown(() => slow.close());
    await t.rejects(slow.start(tenant('gina'), await store.presign(tenant('gina'))), { code: 'E_RUNTIME', message: /not ready within 1s/ });
    await until('timed-out pod deleted', async () => ((await podsOf(core, 'tenant=gina')).length === 0 ? true : undefined));
  });

  t.test('close stops the watches', async (t) => {
    await runtime.close();
    await until('no open watch of the runtime', async () => (api.openWatches === 0 ? true : undefined), 5000);
    await t.rejects(runtime.start(tenant('zed'), await store.presign(tenant('zed'))), { code: 'E_RUNTIME' });
  });
});
