/**
 * The Kubernetes runtime's trust boundary against the stand-in apiserver and kubelet (real shims,
 * reference agents, s3rver state): each pod's shim answers only calls signed with its own control
 * secret (a secret read in one pod opens no other), delivered by a Secret the pod owns (collected
 * with it); no pod spec holds a state URL, a token or a derived secret (they come with the signed
 * claim); the state key carries the tenant's incarnation, so a re-created id starts clean and the
 * shim refuses the old incarnation's URLs.
 */
import t from 'tap';
import { request } from 'undici';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import type { Tenant } from '../lib/registry/tenant.js';
import { KubernetesRuntime } from '../lib/runtime/kubernetes-runtime.js';
import { podControlSecret } from '../lib/runtime/pod-secrets.js';
import { CONTROL_ID_ANNOTATION, CONTROL_SECRET_KEY, controlSecretName } from '../lib/runtime/pod-spec.js';
import { postToShim } from '../lib/runtime/shim-admin.js';
import { deriveAgentToken } from '../lib/webhook-secret.js';
import { RESOURCES } from './support/kube/objects.js';
import { startStandInStack } from './support/kube/stand-in-stack.js';

const NS = 'tenants';
const MASTER = 'warm-pool-master-secret-0123456789';
const WEBHOOK = 'webhook-master-secret-0123456789abcdef';
const TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
const SECRETS = RESOURCES.find((r) => r.resource === 'secrets')!;
const PODS = RESOURCES.find((r) => r.resource === 'pods')!;

function tenant(id: string, incarnation: string): Tenant {
  const now = new Date().toISOString();
  return { tenant_id: id, bot_token: TOKEN, status: 'provisioning', idle_timeout_s: 300, created_at: now, updated_at: now, version: 1, incarnation };
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function say(address: string, who: Tenant, message: string, key: string): Promise<string> {
  const res = await request(`http://${address}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-idempotency-key': key, authorization: `Bearer ${deriveAgentToken(WEBHOOK, who)}` },
    body: JSON.stringify({ message }),
  });
  const body = (await res.body.json()) as { response?: string };
  if (res.statusCode !== 200) throw new Error(`agent answered ${res.statusCode}`);
  return body.response ?? '';
}

t.test('Kubernetes trust boundary on the stand-in', async (t) => {
  const { api, store, runtime } = await startStandInStack(t, NS, (s) => new KubernetesRuntime({
    kubeConfig: s.api.kubeConfig(), namespace: NS, image: 'zeroclaw:test', runtimeClassName: 'kata-qemu', agentPort: 42617,
    warmPoolSecret: MASTER, webhookSecret: WEBHOOK, log: s.logs.logger('runtime'), terminationGracePeriodSeconds: 15, readyTimeoutS: 60,
    extraEnv: { CHECKPOINT_INTERVAL_S: '0', LOG_LEVEL: 'info' },
  }));
  const core = api.kubeConfig().makeApiClient(CoreV1Api);
  const shimOf = (pod: V1Pod): string => `http://${pod.status?.podIP ?? ''}:9000`;
  const secretOf = (pod: V1Pod): string => {
    const id = pod.metadata?.annotations?.[CONTROL_ID_ANNOTATION] ?? '';
    const stored = api.store.find(SECRETS, NS, controlSecretName(id));
    return Buffer.from(String((stored?.data as Record<string, string> | undefined)?.[CONTROL_SECRET_KEY] ?? ''), 'base64').toString();
  };
  const readyWarm = (n: number): Promise<V1Pod[]> => until(`${n} ready warm pods`, async () => {
    const pods = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=warm-pool' })).items
      .filter((p) => !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'));
    return pods.length >= n ? pods : undefined;
  });

  t.test('each pod has its own control secret: a secret learnt in one pod opens no other', async (t) => {
    await runtime.addWarm(2);
    const [a, b] = await readyWarm(2) as [V1Pod, V1Pod];
    const secretA = secretOf(a);
    const secretB = secretOf(b);
    t.ok(secretA.length >= 43 && secretB.length >= 43, 'both pods have a control secret in their own Secret');
    t.not(secretA, secretB, 'not the same secret');
    t.equal(secretA, podControlSecret(MASTER, a.metadata?.name ?? '', a.metadata?.annotations?.[CONTROL_ID_ANNOTATION] ?? ''), 'derived from the master and the pod\'s identity');
    const stored = api.store.find(SECRETS, NS, controlSecretName(a.metadata?.annotations?.[CONTROL_ID_ANNOTATION] ?? ''));
    t.same(stored?.metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Pod', name: a.metadata?.name, uid: a.metadata?.uid }], 'owned by its pod');
    // What an agent in pod B finds in /proc/1/environ is B's secret: A's shim refuses it.
    const asB = await postToShim(shimOf(a), '/checkpoint', secretB, {}, 5000);
    t.equal(asB.status, 401, 'pod A refuses a call signed with pod B\'s secret');
    const asMaster = await postToShim(shimOf(a), '/checkpoint', MASTER, {}, 5000);
    t.equal(asMaster.status, 401, 'nor with the master (no pod holds it)');
    const claimAsB = await postToShim(shimOf(a), '/claim', secretB, { tenant_id: 'mallory', bot_token: TOKEN }, 5000);
    t.equal(claimAsB.status, 401, 'nor a claim signed with B\'s secret');
    t.equal((await postToShim(shimOf(a), '/checkpoint', secretA, {}, 5000)).status, 409, 'A\'s own secret passes (nothing to checkpoint yet)');
    t.equal((await postToShim(shimOf(b), '/checkpoint', secretA, {}, 5000)).status, 401, 'and B refuses A\'s');
    const warmSecret = await core.readNamespacedSecret({ name: 'zeroclaw-warm-pool', namespace: NS });
    t.notOk(warmSecret.data?.WARM_POOL_SECRET, 'the master is in no Secret of the tenants namespace');
    await runtime.removeWarm(2);
    await until('warm pods and their control Secrets gone', () => {
      const left = api.store.list(SECRETS, NS).items.filter((s) => s.metadata.name?.startsWith('shim-control-'));
      return api.store.list(PODS, NS).items.length === 0 && left.length === 0 ? true : undefined;
    });
    t.pass('the garbage collector removed each control Secret with its pod');
  });

  const rita1 = tenant('rita', 'first-incarnation-000000');
  const rita2 = tenant('rita', 'second-incarnation-00000');

  t.test('a cold pod is claimed like a warm one; its state key carries the incarnation', async (t) => {
    const r = await runtime.start(rita1, await store.presign(rita1));
    t.equal(r.path, 'cold');
    t.match(await say(r.instance.address, rita1, 'remember me', 'rita:1'), /memories: 1/);
    const pod = await core.readNamespacedPod({ name: 'zeroclaw-rita', namespace: NS });
    t.equal((await postToShim(shimOf(pod), '/checkpoint', secretOf(pod), {}, 10_000)).status, 200, 'the runtime\'s own call, signed with the pod\'s secret');
    t.equal(await runtime.refreshState('rita', await store.presign(rita1)), true, 'state URL refresh signed with the pod\'s own secret');
    await runtime.stop('rita');
    t.match(await store.head(rita1), { key: 'tenants/rita/first-incarnation-000000/state.tar.gz' }, 'saved under the incarnation');
    t.equal(await store.head('rita'), undefined, 'not under the id-only key');
    await until('the cold pod\'s control Secret collected', () =>
      (api.store.list(SECRETS, NS).items.some((s) => s.metadata.name?.startsWith('shim-control-')) ? undefined : true));
  });

  t.test('a re-created tenant id starts clean, and its shim refuses the old incarnation\'s URLs', async (t) => {
    const oldUrls = await store.presign(rita1);
    const r = await runtime.start(rita2, await store.presign(rita2));
    t.match(await say(r.instance.address, rita2, 'who am i', 'rita:2'), /memories: 1/, 'the new tenant does not see the old one\'s memory');
    const pod = await core.readNamespacedPod({ name: r.instance.podName, namespace: NS });
    const refused = await postToShim(shimOf(pod), '/state-urls', secretOf(pod), { state_get_url: oldUrls.getUrl, state_put_url: oldUrls.putUrl }, 5000);
    t.equal(refused.status, 400, 'the old incarnation\'s URLs are refused');
    t.match(refused.text, /own state object/);
    const fresh = await store.presign(rita2);
    t.equal((await postToShim(shimOf(pod), '/state-urls', secretOf(pod), { state_get_url: fresh.getUrl, state_put_url: fresh.putUrl }, 5000)).status, 200, 'its own are taken');
    await runtime.stop('rita');
    t.match(await store.head(rita2), { key: 'tenants/rita/second-incarnation-00000/state.tar.gz' });
    t.ok(await store.head(rita1), 'the old incarnation\'s object was neither read nor overwritten');
  });

  t.test('no pod spec the runtime created holds a state URL, a token or a derived secret', async (t) => {
    const created = api.requests.filter((q) => q.method === 'POST' && q.path === `/api/v1/namespaces/${NS}/pods`).map((q) => q.body as V1Pod);
    const history = api.store.history.filter((e) => e.rt.kind === 'Pod').map((e) => e.object as unknown as V1Pod);
    t.ok(created.length >= 3 && history.length >= created.length, `pods created: ${created.length}`);
    for (const pod of [...created, ...history]) {
      const env = pod.spec?.containers.flatMap((c) => c.env ?? []) ?? [];
      const named = env.filter((e) => /^(STATE_|BOT_TOKEN|TENANT_WEBHOOK_SECRET|AGENT_TOKEN_SHA256|TENANT_ID)/.test(e.name)).map((e) => e.name);
      t.same(named, [], `${pod.metadata?.name ?? pod.metadata?.generateName}: none of the tenant's variables in its spec`);
      t.notMatch(JSON.stringify(pod), /X-Amz-|Policy=|AAHdq/, 'no signed URL, policy or token anywhere in it');
      t.ok(env.some((e) => e.name === 'WARM_POOL_SECRET' && e.value === undefined && e.valueFrom?.secretKeyRef?.name?.startsWith('shim-control-')), 'its control secret by reference to its own Secret');
    }
  });
});
