/**
 * The chart's RBAC through the real helm (test/support/chart.ts): a Role per runtime service with
 * the verbs its code uses, and each runtime service's code path (waker, janitor, pool-keeper: lib/
 * runtime/kubernetes) run against the Kubernetes stand-in through an authorizer that applies only
 * its rendered Role and the node-reader ClusterRole: nothing it does is refused, every verb granted
 * is used, what the Roles refuse is refused, and the pods it creates pass Pod Security "restricted".
 * (The rest of the chart: test/chart.test.ts.)
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { CoreV1Api, KubeConfig, type V1Pod, type V1PodSpec } from '@kubernetes/client-node';
import { CHART, TEST_SECRETS, byKind, one, renderChart, renderWith, type Manifest } from './support/chart.js';
import { KubeApiServer } from './support/kube/api-server.js';
import { Kubelet } from './support/kube/kubelet.js';
import { restrictedViolations } from './support/pod-security.js';
import { waitUntil } from './support/wait.js';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { createKubernetesRuntime } from '../lib/runtime/create-runtime.js';
import { tokenSecretManifest, warmPoolSecretManifest } from '../lib/runtime/pod-spec.js';
import { POD_OWNER_SECRET_NAME, readPodOwner } from '../lib/runtime/pod-owner.js';
import type { Tenant } from '../lib/registry/tenant.js';
import type { PresignedState } from '../lib/state/state-store.js';

let plain: Manifest[];
const RUNTIME_SERVICES = ['waker', 'janitor', 'pool-keeper'] as const;
/** Where tenant pods go by default, for a release in namespace `tenants`. */
const TENANTS_NS = 'tenants-agents';

t.before(async () => {
  plain = await renderChart([TEST_SECRETS]);
});

t.test('RBAC: a Role per runtime service with the verbs its code uses, each bound to that service\'s own account', async (t) => {
  const rulesOf = (service: string): Record<string, string[]> => {
    const role = one(plain, 'Role', `agentic-tenancy-${service}`);
    t.equal(role.metadata.namespace, TENANTS_NS);
    return Object.fromEntries(role.rules.map((r: any) => [`${r.apiGroups.join(',')}/${r.resources.join(',')}${r.resourceNames ? `@${r.resourceNames.join(',')}` : ''}`, [...r.verbs].sort()]));
  };
  t.same(rulesOf('waker'), {
    '/pods': ['create', 'delete', 'get', 'list', 'patch', 'watch'],
    '/secrets': ['create', 'get', 'patch'],
  }, 'waker: cold pods, warm claims, readiness and exit watches; upserts the tenant token and warm pool Secrets');
  t.same(rulesOf('janitor'), {
    '/pods': ['delete', 'list', 'watch'],
    '/secrets': ['create', 'delete', 'get', 'patch'],
    '/persistentvolumeclaims': ['delete', 'list'],
  }, 'janitor: stops and deletes tenants, rotates their tokens; creates no pod');
  t.same(rulesOf('pool-keeper'), {
    '/pods': ['create', 'delete', 'get', 'list'],
    '/secrets': ['create'],
    '/secrets@zeroclaw-warm-pool': ['get', 'patch'],
    '/secrets@agentic-tenancy-owner': ['get'],
  }, 'pool-keeper: warm pods, and of the Secrets only the warm pool\'s by name (create cannot be narrowed) and the pod owner\'s uid');
  for (const role of byKind(plain, 'Role')) {
    for (const r of role.rules) {
      t.notOk(r.verbs.includes('*') || r.resources.includes('*') || r.apiGroups.includes('*'), `${role.metadata.name}: no wildcards`);
      if (r.resources.includes('secrets')) t.notOk(r.verbs.some((v: string) => v === 'list' || v === 'watch'), `${role.metadata.name}: cannot enumerate Secrets`);
      if (r.resourceNames) t.notOk(r.verbs.includes('create'), `${role.metadata.name}: no create under resourceNames (it would never match)`);
    }
  }
  t.same(byKind(plain, 'Role').map((r) => r.metadata.name).sort(), ['agentic-tenancy-janitor', 'agentic-tenancy-pool-keeper', 'agentic-tenancy-waker'], 'no Role for anything else');
  // Cluster-wide: only get on nodes (lost nodes, lib/runtime/kubernetes/pod-deletion.ts), for the two services that wait for pods to go.
  t.same(byKind(plain, 'ClusterRole').map((r) => [r.metadata.name, r.rules]), [['agentic-tenancy-node-reader', [{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }]]], 'one ClusterRole: get on nodes, no list or watch');
  const nodeBinding = one(plain, 'ClusterRoleBinding', 'agentic-tenancy-node-reader');
  t.same(byKind(plain, 'ClusterRoleBinding').length, 1);
  t.same(nodeBinding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'agentic-tenancy-node-reader' });
  t.same(nodeBinding.subjects, ['waker', 'janitor'].map((s) => ({ kind: 'ServiceAccount', name: `agentic-tenancy-${s}`, namespace: 'tenants' })), 'bound to the waker and janitor only (the pool-keeper never waits for a pod to go)');
  const withoutNodes = await renderWith({ rbac: { nodeReader: false } });
  t.same([...byKind(withoutNodes, 'ClusterRole'), ...byKind(withoutNodes, 'ClusterRoleBinding')], [], 'rbac.nodeReader false: nothing cluster-wide');
  t.equal(byKind(withoutNodes, 'Role').length, 3, 'the Roles stay');
  const noRbac = await renderWith({ rbac: { create: false } });
  t.same([...byKind(noRbac, 'Role'), ...byKind(noRbac, 'ClusterRole'), ...byKind(noRbac, 'ClusterRoleBinding')], [], 'rbac.create false: no RBAC at all');
  for (const service of RUNTIME_SERVICES) {
    const binding = one(plain, 'RoleBinding', `agentic-tenancy-${service}`);
    t.same(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `agentic-tenancy-${service}` });
    t.same(binding.subjects, [{ kind: 'ServiceAccount', name: `agentic-tenancy-${service}`, namespace: 'tenants' }], `${service}: its Role for its account only`);
    t.equal(one(plain, 'Deployment', service).spec.template.spec.serviceAccountName, `agentic-tenancy-${service}`);
  }
  const sas = byKind(plain, 'ServiceAccount').map((s) => s.metadata.name).sort();
  t.same(sas, ['agentic-tenancy', 'agentic-tenancy-janitor', 'agentic-tenancy-pool-keeper', 'agentic-tenancy-waker']);
  t.match(readFileSync(path.join(CHART, 'templates/rbac.yaml'), 'utf8'), /`create` cannot be narrowed by resourceNames/, 'the limit is written down where the Roles are');
});

// ------------------------------------------------------------------ each runtime service under its Role

interface PolicyRule { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }
interface Grant { namespace: string; role: string; rules: PolicyRule[] }
interface RequestAttributes { verb: string; group: string; resource: string; namespace: string; name: string }
interface Seen extends RequestAttributes { allowed: string | undefined }

/**
 * The RBAC request attributes of an API call, as the apiserver derives them (a list or watch by
 * metadata.name field selector names its object); a cluster-scoped resource (nodes) has namespace ''.
 */
function attributesOf(method: string, url: URL): RequestAttributes | undefined {
  const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)(?:\/namespaces\/([^/]+)(?=\/))?\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(url.pathname);
  if (!m) return undefined;
  const [, group = '', namespace = '', resource = '', name = '', sub] = m;
  const watch = ['1', 'true'].includes(url.searchParams.get('watch') ?? '');
  const verb = ({ GET: name ? 'get' : watch ? 'watch' : 'list', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: name ? 'delete' : 'deletecollection' } as Record<string, string>)[method] ?? method.toLowerCase();
  let object = name;
  if (!object && (verb === 'list' || verb === 'watch')) object = /^metadata\.name=([^,]+)$/.exec(url.searchParams.get('fieldSelector') ?? '')?.[1] ?? '';
  return { verb, group, namespace, resource: sub ? `${resource}/${sub}` : resource, name: object };
}

/** The rule (`role#index`) that allows the request, as RBAC evaluates it, or undefined. A ClusterRoleBinding's grant (namespace '*') applies everywhere, cluster-scoped resources included. */
function authorize(a: RequestAttributes, grants: Grant[]): string | undefined {
  for (const g of grants) {
    if (g.namespace !== '*' && g.namespace !== a.namespace) continue;
    for (const [i, r] of g.rules.entries()) {
      const names = r.resourceNames ?? [];
      if ((r.apiGroups.includes(a.group) || r.apiGroups.includes('*')) && (r.resources.includes(a.resource) || r.resources.includes('*'))
        && (r.verbs.includes(a.verb) || r.verbs.includes('*')) && (names.length === 0 || (a.name !== '' && names.includes(a.name)))) return `${g.role}#${i}`;
    }
  }
  return undefined;
}

/** The rendered Roles and ClusterRoles bound to a service account (RoleBindings and ClusterRoleBindings naming it). */
function grantsOf(manifests: Manifest[], account: string, accountNamespace: string): Grant[] {
  const names = (b: Manifest): boolean => b.subjects.some((s: any) => s.kind === 'ServiceAccount' && s.name === account && s.namespace === accountNamespace);
  const namespaced = byKind(manifests, 'RoleBinding').filter(names).map((b) => {
    const role = one(manifests, b.roleRef.kind, b.roleRef.name);
    return { namespace: b.metadata.namespace as string, role: role.metadata.name, rules: role.rules as PolicyRule[] };
  });
  const clusterWide = byKind(manifests, 'ClusterRoleBinding').filter(names).map((b) => {
    const role = one(manifests, 'ClusterRole', b.roleRef.name);
    return { namespace: '*', role: role.metadata.name, rules: role.rules as PolicyRule[] };
  });
  return [...namespaced, ...clusterWide];
}

/** An authorizing proxy in front of the stand-in apiserver: what the grants do not allow gets 403, as from a real apiserver. */
async function rbacProxy(upstream: string, grants: Grant[]): Promise<{ kubeConfig: (token: string) => KubeConfig; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const a = attributesOf(req.method ?? 'GET', url) ?? { verb: (req.method ?? '').toLowerCase(), group: '?', resource: url.pathname, namespace: '', name: '' };
    const allowed = authorize(a, grants);
    seen.push({ ...a, allowed });
    if (!allowed) {
      req.resume();
      const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'Forbidden', code: 403,
        message: `${a.resource} "${a.name}" is forbidden: cannot ${a.verb} resource "${a.resource}" in API group "${a.group}" in the namespace "${a.namespace}"` });
      res.writeHead(403, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const up = httpRequest(`${upstream}${req.url ?? '/'}`, { method: req.method, headers: req.headers, agent: false }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    seen,
    kubeConfig: (token) => {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'rbac', server: url, skipTLSVerify: true }], users: [{ name: 'sa', token }],
        contexts: [{ name: 'rbac', cluster: 'rbac', user: 'sa' }], currentContext: 'rbac',
      });
      return kc;
    },
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

/**
 * A stand-in tenant container (its pod's name as argument): the shim's routes answer 200, except a
 * warm member's claim for a tenant named cold* (a cold pod is claimed too, and accepts); exits on SIGTERM.
 */
const STUB_SHIM = `
const http = require('http');
http.createServer((q, r) => { let b = ''; q.on('data', (c) => (b += c)); q.on('end', () => {
  let refuse = false; try { refuse = q.url === '/claim' && process.argv[1].startsWith('warm-pool-') && JSON.parse(b).tenant_id.startsWith('cold'); } catch {}
  r.writeHead(refuse ? 500 : 200, { 'content-type': 'application/json' }); r.end(refuse ? '{"error":"refused"}' : '{}'); });
}).listen(Number(process.env.SHIM_PORT), process.env.SHIM_HOST);
process.on('SIGTERM', () => process.exit(0));`;

t.test('each runtime service\'s code path succeeds under its own Role alone, and uses every verb that Role grants', async (t) => {
  const cm = one(plain, 'ConfigMap', 'agentic-tenancy-config');
  const secret = one(plain, 'Secret', 'agentic-tenancy-secrets');
  const ns = cm.data.K8S_NAMESPACE as string;
  const api = await KubeApiServer.start({ namespaces: [ns] });
  const kubelet = new Kubelet(api, { command: (pod) => [process.execPath, '-e', STUB_SHIM, String(pod.metadata?.name)] });
  const admin = api.kubeConfig().makeApiClient(CoreV1Api);
  const proxies = Object.fromEntries(await Promise.all(RUNTIME_SERVICES.map(async (service) => {
    const account = one(plain, 'Deployment', service).spec.template.spec.serviceAccountName as string;
    return [service, await rbacProxy(api.url, grantsOf(plain, account, 'tenants'))] as const;
  }))) as Record<(typeof RUNTIME_SERVICES)[number], Awaited<ReturnType<typeof rbacProxy>>>;
  // The chart's settings, as every runtime service reads them (lib/config.ts), against the stand-in.
  const config = loadConfig({ ...cm.data, WEBHOOK_SECRET: secret.stringData.WEBHOOK_SECRET, WARM_POOL_SECRET: secret.stringData.WARM_POOL_SECRET, REDIS_URL: secret.stringData.REDIS_URL });
  const log = createLogger({ service: 'chart-rbac', level: 'silent' });
  const secrets = { warmPoolSecret: config.warmPoolSecret as string, webhookSecret: config.webhookSecret };
  const [waker, janitor, keeper] = RUNTIME_SERVICES.map((s) => createKubernetesRuntime(config, log, secrets, proxies[s].kubeConfig(api.token))) as [ReturnType<typeof createKubernetesRuntime>, ReturnType<typeof createKubernetesRuntime>, ReturnType<typeof createKubernetesRuntime>];
  t.teardown(async () => {
    for (const r of [waker, janitor, keeper]) await r.close();
    await kubelet.close();
    for (const p of Object.values(proxies)) await p.close();
    await api.close();
  });
  const tenant = (id: string, token = `1000${id.length}:AAtoken-of-${id}`): Tenant => ({ tenant_id: id, bot_token: token, status: 'idle', idle_timeout_s: 600, created_at: '', updated_at: '', version: 1 });
  const state: PresignedState = { getUrl: 'http://s3.invalid/get', putUrl: 'http://s3.invalid/put', expiresAt: new Date(Date.now() + 3_600_000).toISOString() };
  const warmPods = async (): Promise<V1Pod[]> => (await admin.listNamespacedPod({ namespace: ns, labelSelector: 'app=warm-pool' })).items
    .filter((p) => !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'));
  // What a cluster holds after a while: a rotated warm pool secret and bot token, a tenant's PVC.
  await admin.createNamespacedSecret({ namespace: ns, body: warmPoolSecretManifest(ns, 'an-older-warm-pool-secret-value') });
  await admin.createNamespacedSecret({ namespace: ns, body: tokenSecretManifest(ns, 'cold1', '1:an-older-token') });
  await admin.createNamespacedPersistentVolumeClaim({ namespace: ns, body: { metadata: { name: 'workspace-bob', labels: { tenant: 'bob' } }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } } });
  // The chart's pod owner, as helm creates it; each service reads its uid at start (lib/runtime/pod-owner.ts), under its own Role.
  const owner = await admin.createNamespacedSecret({ namespace: ns, body: one(plain, 'Secret', POD_OWNER_SECRET_NAME) });
  for (const service of RUNTIME_SERVICES) {
    const read = await readPodOwner(proxies[service].kubeConfig(api.token).makeApiClient(CoreV1Api), ns, config.k8sPodOwner as string);
    t.equal(read.owner.uid, owner.metadata?.uid, `${service}: reads the pod owner`);
  }

  // pool-keeper (services/pool-keeper): count, add (fixing the warm pool Secret), remove (a 409 re-reads the member).
  t.equal(await keeper.countWarm(), 0);
  t.equal(await keeper.countReadyWarm(), 0);
  await keeper.addWarm(3);
  await waitUntil('3 ready warm pods', async () => (await warmPods()).length === 3);
  api.failNext('DELETE', /\/pods\/warm-pool-/, 409);
  await keeper.removeWarm(1);
  await waitUntil('2 warm pods', async () => (await keeper.countWarm()) === 2);

  // waker (services/waker): exit watch, find, start: refused claims (deleted), cold start (its stale token Secret fixed), a warm claim after a 409.
  const exits: string[] = [];
  waker.onExit((id) => exits.push(id));
  t.equal(await waker.find('cold1'), undefined);
  const cold = await waker.start(tenant('cold1'), state);
  t.equal(cold.path, 'cold', 'claims refused: the waker deleted the members and started a cold pod');
  await keeper.addWarm(1);
  await waitUntil('a ready warm pod', async () => (await warmPods()).length >= 1);
  api.failNext('PATCH', /\/pods\/warm-pool-/, 409);
  const warm = await waker.start(tenant('bob'), state);
  t.equal(warm.path, 'warm', 'claimed a warm member (after re-reading it on a 409)');
  t.ok(await waker.find('bob'));

  // janitor (services/janitor): reconciler (list, find, state URL refresh), token rotation, sleep, delete.
  t.same((await janitor.list()).map((i) => i.tenantId).sort(), ['bob', 'cold1']);
  t.ok(await janitor.find('cold1'));
  t.equal(await janitor.refreshState('cold1', state), true);
  await janitor.updateToken({ tenant_id: 'cold1' }, '2:a-rotated-token');
  await janitor.updateToken({ tenant_id: 'bob' }, '3:a-rotated-token');
  t.equal(await janitor.stop('cold1'), true);
  const removed = await janitor.deleteTenantResources('bob');
  t.same(removed, { pods: true, secret: true, pvcs: 1 });
  await waitUntil('the waker\'s exit watch saw the janitor stop both tenants', () => exits.includes('cold1') && exits.includes('bob'), 10_000);

  // A lost node (lib/runtime/kubernetes/pod-deletion.ts, the node-reader ClusterRole): the waker's
  // exit watch sees its Ready pod go not-ready and reads the Node (Ready=Unknown): an exit at once;
  // the janitor's stop finds the pod stuck Terminating past its grace, reads the Node, force-deletes it.
  const nodeB = new Kubelet(api, { nodeName: 'node-b', command: (pod) => [process.execPath, '-e', STUB_SHIM, String(pod.metadata?.name)] });
  t.teardown(() => nodeB.close());
  await waitUntil('node-b registered', async () => (await admin.listNode()).items.some((n) => n.metadata?.name === 'node-b'));
  const lost = await waker.start(tenant('lost1'), state);
  const lostPod = await admin.readNamespacedPod({ name: lost.instance.podName, namespace: ns });
  const lostNode = lostPod.spec?.nodeName;
  await (lostNode === 'node-b' ? nodeB : kubelet).loseNode();
  await waitUntil('the waker\'s exit watch saw the node lost', () => exits.includes('lost1'), 20_000);
  const nodeReads = (service: (typeof RUNTIME_SERVICES)[number]): Seen[] => proxies[service].seen.filter((s) => s.resource === 'nodes' && s.name === lostNode);
  t.ok(nodeReads('waker').some((s) => s.verb === 'get' && s.allowed === 'agentic-tenancy-node-reader#0'), 'the waker read the lost pod\'s Node under the node reader');
  t.equal(await janitor.stop('lost1', { graceS: 1 }), true);
  t.same(janitor.deletion.forced.map((f) => f.pod), [lost.instance.podName], 'the janitor force-deleted the pod stuck Terminating on the lost node');
  t.match(janitor.deletion.forced[0]?.why, /Ready=Unknown/, 'from the Node\'s own Ready condition');
  t.ok(nodeReads('janitor').some((s) => s.verb === 'get' && s.allowed === 'agentic-tenancy-node-reader#0'), 'the janitor read the Node under the node reader');

  for (const service of RUNTIME_SERVICES) {
    const { seen } = proxies[service];
    t.same(seen.filter((s) => !s.allowed).map((s) => `${s.verb} ${s.resource} ${s.name}`), [], `${service}: nothing it does is forbidden by its Role`);
    const account = one(plain, 'Deployment', service).spec.template.spec.serviceAccountName as string;
    const unused = grantsOf(plain, account, 'tenants').flatMap((g) => g.rules.flatMap((r: PolicyRule, i: number) => r.verbs
      .filter((verb) => !seen.some((s) => s.allowed === `${g.role}#${i}` && s.verb === verb))
      .map((verb) => `${g.role}: ${verb} ${r.resources.join(',')}${r.resourceNames ? `@${r.resourceNames.join(',')}` : ''}`)));
    t.same(unused, [], `${service}: every verb its Role (and ClusterRole) grants is one its code path used`);
  }
  // Without the node reader (the pool-keeper has none, as every service with rbac.nodeReader false):
  // one refused read, then the pods' own status only, no further calls.
  const keeperNodeReads = (): number => proxies['pool-keeper'].seen.filter((s) => s.resource === 'nodes').length;
  t.equal(await keeper.deletion.nodeLost(lostPod), undefined, 'get nodes refused: the node cannot be told lost from the pod alone');
  t.equal(keeperNodeReads(), 1);
  t.equal(await keeper.deletion.nodeLost(lostPod), undefined);
  t.equal(keeperNodeReads(), 1, 'the refusal is remembered: no read per pod');
  // What the Roles refuse, as the apiserver would.
  const keeperApi = proxies['pool-keeper'].kubeConfig(api.token).makeApiClient(CoreV1Api);
  await t.rejects(keeperApi.readNamespacedSecret({ name: 'zeroclaw-cold1-token', namespace: ns }), { code: 403 }, 'the pool-keeper cannot read a tenant\'s token');
  const janitorApi = proxies.janitor.kubeConfig(api.token).makeApiClient(CoreV1Api);
  await t.rejects(janitorApi.listNamespacedSecret({ namespace: ns }), { code: 403 }, 'the janitor cannot list Secrets');
  await t.rejects(janitorApi.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'x' }, spec: { containers: [{ name: 'x', image: 'x' }] } } }), { code: 403 }, 'the janitor cannot create pods');
  await t.rejects(janitorApi.listNamespacedPod({ namespace: 'tenants' }), { code: 403 }, 'nothing in the release namespace');
  const wakerApi = proxies.waker.kubeConfig(api.token).makeApiClient(CoreV1Api);
  await t.rejects(wakerApi.listNode(), { code: 403 }, 'the waker may get a Node by name, not list them');
  await t.rejects(wakerApi.listNamespacedPod({ namespace: 'default' }), { code: 403 }, 'the node reader grants nothing in other namespaces');
  await t.rejects(keeperApi.readNode({ name: 'node-b' }), { code: 403 }, 'the pool-keeper cannot read Nodes');

  // The pods the runtime created (cold, warm) in the tenants namespace, checked as PSA `restricted` would.
  const created = api.requests.filter((r) => r.method === 'POST' && r.path === `/api/v1/namespaces/${ns}/pods` && r.status === 201).map((r) => r.body as V1Pod);
  t.ok(created.some((p) => p.metadata?.labels?.app === 'warm-pool') && created.some((p) => p.metadata?.name === 'zeroclaw-cold1'), `cold and warm pods were created (${created.length})`);
  for (const pod of created) {
    t.same(restrictedViolations(pod.spec as V1PodSpec), [], `${pod.metadata?.name ?? pod.metadata?.generateName}: admitted by Pod Security "restricted" (runAsNonRoot, RuntimeDefault seccomp, drop ALL, no privilege escalation)`);
  }
  const pod = created[0] as V1Pod;
  const shim = pod.spec?.containers[0];
  t.equal(shim?.securityContext?.readOnlyRootFilesystem, true, 'tenant pods: read-only root filesystem');
  t.ok(pod.spec?.volumes?.some((v) => v.emptyDir) && shim?.volumeMounts?.some((m) => m.mountPath === '/tmp'), 'tenant pods: a writable /tmp beside /workspace');
});
