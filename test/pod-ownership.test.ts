/**
 * Ownership and cleanup (issue 13, item 5): every pod and tenant Secret the runtime creates names
 * the release's anchor (the chart's Secret `agentic-tenancy-owner`, rendered by the real helm) in
 * ownerReferences, so deleting the anchor, which is what `helm uninstall` does, has the garbage
 * collector remove every tenant pod, warm pool member, their control Secrets, token Secrets and the
 * warm pool Secret; nothing else. The runtime refuses, in one line, to run without the anchor.
 *
 * Against the Kubernetes stand-in (test/support/kube/), whose store applies the collector's rule
 * (an object whose owners are all gone by uid is deleted; at once, where the real collector is
 * asynchronous and deletes pods gracefully). The objects are made by the runtime's own builders
 * (pod-spec.ts) and pod-create path (pod-secrets.ts createPodWithControlSecret).
 */
import t, { type Test } from 'tap';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1OwnerReference, type V1Pod, type V1Secret } from '@kubernetes/client-node';
import { ConfigError, RuntimeError, ValidationError } from '../lib/errors.js';
import {
  coldPodManifest,
  DEFAULT_KATA_NODE_SELECTOR,
  DEFAULT_KATA_TOLERATIONS,
  LABEL_INSTANCE,
  LABEL_MANAGED_BY,
  MANAGED_BY,
  secretUpdatePatch,
  tokenSecretManifest,
  validatePodSpecOptions,
  warmPodManifest,
  warmPoolSecretManifest,
  type PodSpecOptions,
} from '../lib/runtime/pod-spec.js';
import { createPodWithControlSecret } from '../lib/runtime/pod-secrets.js';
import { podOwnership, POD_OWNER_SECRET_NAME, POD_OWNER_SECRET_TYPE, readPodOwner, type PodOwnership } from '../lib/runtime/pod-owner.js';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { KubeApi } from '../lib/runtime/kubernetes/kube-api.js';
import { one, RELEASE, renderChart } from './support/chart.js';
import { KubeApiServer } from './support/kube/api-server.js';

const NS = 'tenants-agents';
const MASTER = 'warm-pool-secret-0123456789abcdef';
const BASE: PodSpecOptions = {
  namespace: NS,
  image: 'zeroclaw:test',
  runtimeClassName: 'kata-qemu',
  shimPort: 9000,
  agentPort: 42617,
  priorityClassName: 'zeroclaw-tenant',
  warmPriorityClassName: 'zeroclaw-warm',
  terminationGracePeriodSeconds: 60,
  resources: { requests: { cpu: '100m' }, limits: { memory: '512Mi' } },
  nodeSelector: { ...DEFAULT_KATA_NODE_SELECTOR },
  tolerations: DEFAULT_KATA_TOLERATIONS.map((x) => ({ ...x })),
  runAsUser: 65_532,
};
const CHART_SECRETS = new URL('./fixtures/chart-secrets.yaml', import.meta.url).pathname;

let anchor: V1Secret;
let chartConfig: Record<string, string>;

t.before(async () => {
  const rendered = await renderChart([CHART_SECRETS]);
  anchor = one(rendered, 'Secret', POD_OWNER_SECRET_NAME) as V1Secret;
  chartConfig = one(rendered, 'ConfigMap', 'agentic-tenancy-config').data as Record<string, string>;
});

async function standIn(t: Test): Promise<{ api: KubeApiServer; core: CoreV1Api }> {
  const api = await KubeApiServer.start({ namespaces: [NS] });
  t.teardown(() => api.close());
  return { api, core: api.kubeConfig().makeApiClient(CoreV1Api) };
}

const ownersOf = (o: { metadata?: { ownerReferences?: V1OwnerReference[] } }): V1OwnerReference[] | undefined => o.metadata?.ownerReferences;

t.test('without an owner nothing changes: no ownerReferences, no release label', async (t) => {
  const spec = validatePodSpecOptions(BASE);
  for (const o of [coldPodManifest(spec, 'alice', '0123456789abcdef'), warmPodManifest(spec, '0123456789abcdef'), tokenSecretManifest(NS, 'alice', '1:t'), warmPoolSecretManifest(NS)]) {
    t.equal(ownersOf(o), undefined, `${o.metadata?.name}: unowned`);
    t.equal(o.metadata?.labels?.[LABEL_INSTANCE], undefined);
  }
});

t.test('the owner is validated and written as apiVersion, kind, name, uid only', async (t) => {
  const owner = { apiVersion: 'v1', kind: 'Secret', name: 'agentic-tenancy-owner', uid: '2f1c1e1a-0000-4000-8000-000000000001' };
  const spec = validatePodSpecOptions({ ...BASE, owner: { ...owner, blockOwnerDeletion: true, controller: true }, instance: 'prod' });
  t.same(spec.owner, owner, 'no blockOwnerDeletion (it needs update on the owner\'s finalizers), no controller');
  const pod = coldPodManifest(spec, 'alice', '0123456789abcdef');
  t.same(ownersOf(pod), [owner]);
  t.equal(pod.metadata?.labels?.[LABEL_INSTANCE], 'prod');
  t.same(ownersOf(tokenSecretManifest(NS, 'alice', '1:t', undefined, spec)), [owner], 'the token Secret takes the same ownership');
  const bad: Array<[string, Partial<PodSpecOptions>]> = [
    ['no uid', { owner: { ...owner, uid: '' } }],
    ['a bad name', { owner: { ...owner, name: 'Not_A_Name' } }],
    ['a bad kind', { owner: { ...owner, kind: 'secret' } }],
    ['not an object', { owner: 'agentic-tenancy-owner' as unknown as V1OwnerReference }],
    ['a bad instance', { instance: 'has spaces' }],
  ];
  for (const [what, patch] of bad) t.throws(() => validatePodSpecOptions({ ...BASE, ...patch }), ValidationError, what);
});

t.test('the chart\'s anchor: what the runtime reads, and what makes the runtime refuse', async (t) => {
  t.equal(chartConfig.K8S_POD_OWNER, POD_OWNER_SECRET_NAME, 'the chart names its anchor to the runtime');
  t.equal(loadConfig({ ...chartConfig }).k8sPodOwner, POD_OWNER_SECRET_NAME, 'lib/config.ts reads it');
  t.equal(loadConfig({}).k8sPodOwner, undefined, 'unset: no owner');
  t.throws(() => loadConfig({ K8S_POD_OWNER: 'Bad_Name' }), { code: 'E_CONFIG', variable: 'K8S_POD_OWNER' });

  const { api, core } = await standIn(t);
  const missing = await readPodOwner(core, NS, POD_OWNER_SECRET_NAME).then(() => undefined, (err: unknown) => err);
  t.type(missing, ConfigError, 'no anchor: a configuration error (the service exits)');
  t.match(missing, { code: 'E_CONFIG', variable: 'K8S_POD_OWNER', message: /^K8S_POD_OWNER: Secret tenants-agents\/agentic-tenancy-owner not found: / });
  t.notMatch((missing as Error).message, /\n/, 'one line');

  const created = await core.createNamespacedSecret({ namespace: NS, body: anchor });
  const ownership = await readPodOwner(core, NS, POD_OWNER_SECRET_NAME);
  t.same(ownership, { owner: { apiVersion: 'v1', kind: 'Secret', name: POD_OWNER_SECRET_NAME, uid: created.metadata?.uid }, instance: RELEASE });

  api.failNext('GET', /\/secrets\/agentic-tenancy-owner$/, 403, 'Forbidden', 'secrets "agentic-tenancy-owner" is forbidden');
  const refused = await readPodOwner(core, NS, POD_OWNER_SECRET_NAME).then(() => undefined, (err: unknown) => err);
  t.type(refused, RuntimeError);
  t.match(refused, { reason: 'api_refused', message: /cannot read the pod owner Secret tenants-agents\/agentic-tenancy-owner \(get secrets: HTTP 403 Forbidden/ });

  await core.createNamespacedSecret({ namespace: NS, body: warmPoolSecretManifest(NS, 'sk-key') });
  await t.rejects(readPodOwner(core, NS, 'zeroclaw-warm-pool'), { code: 'E_CONFIG', message: /is not the chart's pod owner \(type "Opaque", expected agentic-tenancy\.io\/owner\)/ }, 'a Secret that is not an anchor is refused');

  // An anchor being deleted (held by a finalizer here) would take every new pod with it.
  await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'held-owner', finalizers: ['example.com/hold'] }, type: POD_OWNER_SECRET_TYPE } });
  await core.deleteNamespacedSecret({ name: 'held-owner', namespace: NS });
  await t.rejects(readPodOwner(core, NS, 'held-owner'), { code: 'E_CONFIG', message: /is being deleted/ });

  // helm upgrade after the anchor was deleted by hand re-creates it with a new uid: a restarted runtime reads the new one.
  await core.deleteNamespacedSecret({ name: POD_OWNER_SECRET_NAME, namespace: NS });
  await core.createNamespacedSecret({ namespace: NS, body: anchor });
  t.not((await readPodOwner(core, NS, POD_OWNER_SECRET_NAME)).owner.uid, ownership.owner.uid, 'a re-created anchor is another owner');
});

t.test('the runtime reads the owner once: none when K8S_POD_OWNER is unset, a failed read tried again', async (t) => {
  const { api, core } = await standIn(t);
  t.same(await podOwnership(core, NS, undefined)(), {}, 'unset: nothing asked, nothing owned');
  const ownership = podOwnership(core, NS, POD_OWNER_SECRET_NAME);
  const gets = (): number => api.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/secrets/${POD_OWNER_SECRET_NAME}`)).length;
  await t.rejects(ownership(), { code: 'E_CONFIG', variable: 'K8S_POD_OWNER' }, 'refused while the anchor is missing');
  const created = await core.createNamespacedSecret({ namespace: NS, body: anchor });
  const first = await ownership();
  t.equal((first as PodOwnership).owner.uid, created.metadata?.uid, 'read once it exists (the failure was not kept)');
  t.equal(await ownership(), first, 'then kept');
  t.equal(gets(), 2, 'two reads: the refused one and the first that succeeded');
});

t.test('through the runtime\'s call policy (KubeApi): a hung or failing read is retried, a refusal and a missing anchor named as before', async (t) => {
  const { api, core } = await standIn(t);
  const kube = new KubeApi({ kubeConfig: api.kubeConfig(), namespace: NS, log: createLogger({ service: 'pod-owner-test', level: 'silent' }), timeoutMs: 300, maxAttempts: 3, minBackoffMs: 10, maxBackoffMs: 20 });
  t.teardown(() => kube.close());
  const path = new RegExp(`/secrets/${POD_OWNER_SECRET_NAME}$`);
  const gets = (): number => api.requests.filter((r) => r.method === 'GET' && path.test(r.path)).length;

  await t.rejects(readPodOwner(kube, NS, POD_OWNER_SECRET_NAME), { code: 'E_CONFIG', variable: 'K8S_POD_OWNER', message: /not found: / }, '404: the same configuration error (not retried)');
  t.equal(gets(), 1);
  const created = await core.createNamespacedSecret({ namespace: NS, body: anchor });

  // A hung request (then a 503) and the read still succeeds, within the policy's timeout per attempt.
  api.faults.add({ method: 'GET', path, hang: true });
  api.faults.add({ method: 'GET', path, status: 503 });
  const before = { ...kube.stats };
  const ownership = await readPodOwner(kube, NS, POD_OWNER_SECRET_NAME);
  t.equal(ownership.owner.uid, created.metadata?.uid, 'read after a hung attempt and a 503');
  t.same([kube.stats.timeouts - before.timeouts, kube.stats.retries - before.retries], [1, 2], 'one attempt timed out, two retried');

  api.failNext('GET', path, 403, 'Forbidden', 'secrets "agentic-tenancy-owner" is forbidden');
  const refused = await readPodOwner(kube, NS, POD_OWNER_SECRET_NAME).then(() => undefined, (err: unknown) => err);
  t.match(refused, { reason: 'api_refused', message: /^cannot read the pod owner Secret tenants-agents\/agentic-tenancy-owner \(get secrets: HTTP 403 Forbidden: secrets "agentic-tenancy-owner" is forbidden\); the runtime's Role must grant get on it$/ }, '403: not retried, the API\'s words');

  const off = api.faults.add({ method: 'GET', path, status: 503, times: Number.POSITIVE_INFINITY });
  const down = await readPodOwner(kube, NS, POD_OWNER_SECRET_NAME).then(() => undefined, (err: unknown) => err);
  off();
  t.type(down, RuntimeError);
  t.match(down, { reason: 'api_unavailable', message: /^cannot read the pod owner Secret tenants-agents\/agentic-tenancy-owner: get secret agentic-tenancy-owner: the Kubernetes API did not answer \(HTTP 503 .*; 3 attempts\)$/ }, 'retries exhausted: unavailable, in one line');

  // podOwnership takes the KubeApi too (the runtime's path, kubernetes-runtime.ts).
  api.faults.add({ method: 'GET', path, status: 500 });
  t.equal(((await podOwnership(kube, NS, POD_OWNER_SECRET_NAME)()) as PodOwnership).owner.uid, created.metadata?.uid, 'podOwnership: read through the policy (a 500 retried)');
});

t.test('deleting the anchor (helm uninstall) removes every tenant pod, warm member and tenant Secret, and nothing else', async (t) => {
  const { core } = await standIn(t);
  await core.createNamespacedSecret({ namespace: NS, body: anchor });
  const ownership: PodOwnership = await readPodOwner(core, NS, POD_OWNER_SECRET_NAME);
  const spec = validatePodSpecOptions({ ...BASE, ...ownership });

  // What the runtime makes: warm members and a cold pod (each with its control Secret), token Secrets, the warm pool Secret.
  const pods: V1Pod[] = [];
  for (let i = 0; i < 2; i++) pods.push(await createPodWithControlSecret(core, NS, MASTER, (cid) => warmPodManifest(spec, cid)));
  pods.push(await createPodWithControlSecret(core, NS, MASTER, (cid) => coldPodManifest(spec, 'alice', cid)));
  for (const id of ['alice', 'bob']) await core.createNamespacedSecret({ namespace: NS, body: tokenSecretManifest(NS, id, `1:token-${id}`, 'webhook-secret', ownership) });
  await core.createNamespacedSecret({ namespace: NS, body: warmPoolSecretManifest(NS, 'sk-key', ownership) });
  // Not the runtime's: an operator's Secret and pod in the same namespace.
  await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'someone-elses' }, stringData: { k: 'v' } } });
  await core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'debug' }, spec: { containers: [{ name: 'x', image: 'busybox' }] } } });

  const listPods = async (): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: NS })).items;
  const listSecrets = async (): Promise<V1Secret[]> => (await core.listNamespacedSecret({ namespace: NS })).items;
  const byUs = (o: V1Pod | V1Secret): boolean => o.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY;
  const ours = { pods: (await listPods()).filter(byUs), secrets: (await listSecrets()).filter(byUs) };
  t.equal(ours.pods.length, 3, 'two warm members and a cold pod');
  t.equal(ours.secrets.length, 3 + 2 + 1, 'three control Secrets, two token Secrets, the warm pool Secret');
  for (const o of [...ours.pods, ...ours.secrets]) {
    const name = o.metadata?.name ?? '';
    if (name.startsWith('shim-control-')) {
      const pod = pods.find((p) => p.metadata?.annotations?.['agentic-tenancy/control-id'] === name.slice('shim-control-'.length));
      t.same(ownersOf(o)?.map((r) => [r.kind, r.uid]), [['Pod', pod?.metadata?.uid]], `${name}: owned by its pod`);
    } else {
      t.same(ownersOf(o), [ownership.owner], `${name}: owned by the anchor`);
      t.equal(o.metadata?.labels?.[LABEL_INSTANCE], RELEASE, `${name}: labelled with the release`);
    }
  }

  // What helm uninstall does with the chart's objects (the default cascade, background).
  await core.deleteNamespacedSecret({ name: POD_OWNER_SECRET_NAME, namespace: NS, propagationPolicy: 'Background' });
  t.same((await listPods()).map((p) => p.metadata?.name), ['debug'], 'every tenant and warm pod collected; the operator\'s pod stays');
  t.same((await listSecrets()).map((s) => s.metadata?.name), ['someone-elses'], 'every control, token and warm pool Secret collected; the operator\'s stays');

  // A pool-keeper still running during the uninstall creates with the old uid: collected too.
  await createPodWithControlSecret(core, NS, MASTER, (cid) => warmPodManifest(spec, cid));
  await core.createNamespacedSecret({ namespace: NS, body: tokenSecretManifest(NS, 'carol', '1:token-carol', undefined, ownership) });
  t.same((await listPods()).filter(byUs), [], 'a member created after the anchor is gone is collected');
  t.same((await listSecrets()).filter(byUs), [], 'and so is its control Secret and a late token Secret');
});

t.test('a Secret from before the owner (or of an older anchor) is adopted when the runtime next writes it', async (t) => {
  const { core } = await standIn(t);
  await core.createNamespacedSecret({ namespace: NS, body: anchor });
  const ownership = await readPodOwner(core, NS, POD_OWNER_SECRET_NAME);
  const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  // Written by an older version: no owner, no release label, a key since dropped.
  const old = await core.createNamespacedSecret({ namespace: NS, body: { ...warmPoolSecretManifest(NS, 'sk-key'), data: { AGENT_LLM_API_KEY: Buffer.from('sk-key').toString('base64'), WARM_POOL_SECRET: 'c2VjcmV0' } } });
  const manifest = warmPoolSecretManifest(NS, 'sk-key', ownership);
  const patch = secretUpdatePatch(manifest, old, { exact: true });
  t.ok(patch, 'it differs: a write is due');
  const adopted = await core.patchNamespacedSecret({ name: 'zeroclaw-warm-pool', namespace: NS, body: patch }, MERGE);
  t.same(adopted.metadata?.ownerReferences, [ownership.owner], 'owned by the anchor now');
  t.equal(adopted.metadata?.labels?.[LABEL_INSTANCE], RELEASE);
  t.same(Object.keys(adopted.data ?? {}), ['AGENT_LLM_API_KEY'], 'exact: the dropped key removed');
  t.equal(secretUpdatePatch(manifest, adopted, { exact: true }), undefined, 'then nothing to write');
  t.equal(secretUpdatePatch(warmPoolSecretManifest(NS, 'sk-key'), adopted, { exact: true }), undefined, 'without an owner configured an owned Secret is left as it is');
  const stale = { ...ownership.owner, uid: '00000000-0000-4000-8000-000000000000' };
  t.same((secretUpdatePatch(manifest, { ...adopted, metadata: { ...adopted.metadata, ownerReferences: [stale] } }) as { metadata: { ownerReferences: unknown } }).metadata.ownerReferences,
    [ownership.owner], 'an older anchor\'s uid is replaced');
  t.ok(secretUpdatePatch(tokenSecretManifest(NS, 'alice', '2:new', undefined, ownership), { metadata: { labels: {} }, data: {} }), 'a rotated token is written');

  await core.deleteNamespacedSecret({ name: POD_OWNER_SECRET_NAME, namespace: NS });
  await t.rejects(core.readNamespacedSecret({ name: 'zeroclaw-warm-pool', namespace: NS }), { code: 404 }, 'the adopted Secret goes with the anchor');
});
