/**
 * The admin API in the chart, through the real helm (test/support/chart.ts): off by default; on, a
 * Deployment of the one image (`admin-api`), REDIS_URL its only secret, no Kubernetes API token, its
 * settings in the ConfigMap, a ClusterIP Service, not on the public Ingress unless exposeOnIngress,
 * reached only from the release namespace and monitoring unless allowFromNamespaces says more; every
 * object valid against the Kubernetes schemas, `helm lint --strict` clean, bad values refused.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CHART, byKind, lintChart, one, renderChart, templateChart, validateManifest, type Manifest } from './support/chart.js';

const SECRETS = path.join(CHART, '../../test/fixtures/chart-secrets.yaml');
const ON = ['--set', 'services.adminApi.enabled=true', '--set', 'ingress.enabled=true', '--set', 'ingress.host=bots.example.test'];

const named = (list: Manifest[], kind: string, name: string) => list.filter((m) => m.kind === kind && m.metadata.name === name);

t.test('off by default: nothing of it is rendered', async (t) => {
  const objects = await renderChart([SECRETS]);
  t.same(objects.filter((m) => m.metadata.name === 'admin-api'), []);
  t.notOk(JSON.stringify(byKind(objects, 'ConfigMap')).includes('ADMIN_API_PORT'));
});

t.test('on: a Deployment with REDIS_URL only, a ClusterIP Service, not on the public Ingress', async (t) => {
  const objects = await renderChart([SECRETS], 'tenants', ON);
  for (const m of objects) t.equal(validateManifest(m), undefined, `${m.kind}/${m.metadata.name} is valid`);
  const d = one(objects, 'Deployment', 'admin-api');
  const pod = d.spec.template.spec;
  const c = pod.containers[0];
  t.same(c.args, ['admin-api'], 'the one image, the admin-api service');
  t.equal(pod.automountServiceAccountToken, false, 'no Kubernetes API token');
  t.same(c.env.filter((e: { valueFrom?: unknown }) => e.valueFrom).map((e: { name: string }) => e.name), ['REDIS_URL'], 'REDIS_URL is its only secret');
  t.same(c.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]), [['http', 8090], ['admin', 9090]]);
  t.equal(c.readinessProbe.httpGet.path, '/readyz');
  t.equal(c.readinessProbe.httpGet.port, 'http');
  t.equal(c.securityContext.readOnlyRootFilesystem, true);
  const config = byKind(objects, 'ConfigMap').find((m) => m.data?.ADMIN_API_PORT);
  t.same([config?.data.ADMIN_API_PORT, config?.data.ADMIN_API_RATE_PER_MIN, config?.data.ADMIN_API_BURST], ['8090', '60', '20']);
  const svc = one(objects, 'Service', 'admin-api');
  t.equal(svc.spec.type, 'ClusterIP');
  t.same(svc.spec.ports, [{ name: 'http', port: 8090, targetPort: 'http', protocol: 'TCP' }]);
  t.same(svc.spec.selector, d.spec.selector.matchLabels, 'the Service selects the Deployment');
  const ingress = one(objects, 'Ingress', 'ingress');
  const backends = ingress.spec.rules.flatMap((r: any) => r.http.paths.map((p: any) => [p.path, p.backend.service.name]));
  t.same(backends, [['/tg/', 'ingress']], 'the public Ingress routes webhooks only');
  t.same(named(objects, 'NetworkPolicy', 'admin-api'), [], 'no policy of its own: the platform policy (release namespace, monitoring) is all that reaches it');
  const platform = one(objects, 'NetworkPolicy', 'platform');
  t.same(platform.spec.podSelector.matchLabels, { 'app.kubernetes.io/name': d.spec.selector.matchLabels['app.kubernetes.io/name'], 'app.kubernetes.io/instance': d.spec.selector.matchLabels['app.kubernetes.io/instance'] }, 'which selects its pods too');
  t.equal(one(objects, 'PodDisruptionBudget', 'admin-api').spec.maxUnavailable, 1);
});

t.test('allowFromNamespaces opens its port to those namespaces only; exposeOnIngress routes /v1/ to it', async (t) => {
  const more = await renderChart([SECRETS], 'tenants', [...ON, '--set', 'services.adminApi.allowFromNamespaces={signup}']);
  const np = one(more, 'NetworkPolicy', 'admin-api');
  t.equal(validateManifest(np), undefined);
  t.same(np.spec.ingress, [{
    from: [{ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['signup'] }] } }],
    ports: [{ port: 8090, protocol: 'TCP' }],
  }]);
  const exposed = await renderChart([SECRETS], 'tenants', [...ON, '--set', 'services.adminApi.exposeOnIngress=true']);
  const paths = one(exposed, 'Ingress', 'ingress').spec.rules[0].http.paths.map((p: any) => [p.path, p.backend.service.name, p.backend.service.port.name]);
  t.same(paths, [['/tg/', 'ingress', 'http'], ['/v1/', 'admin-api', 'http']]);
  t.same(one(exposed, 'NetworkPolicy', 'admin-api').spec.ingress, [{ ports: [{ port: 8090, protocol: 'TCP' }] }], 'exposed: its port from anywhere (the Ingress controller)');
});

t.test('lint --strict is clean with it on; bad values are refused by the schema', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-admin-api-chart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const on = path.join(dir, 'on.yaml');
  writeFileSync(on, 'services:\n  adminApi:\n    enabled: true\n    allowFromNamespaces: [signup]\n');
  const lint = await lintChart([SECRETS, on]);
  t.equal(lint.code, 0, lint.stderr);
  t.equal(lint.stdout.includes('[WARNING]'), false, 'no warnings either');
  for (const [set, field] of [['services.adminApi.ratePerMin=0', 'ratePerMin'], ['services.adminApi.allowFromNamespaces={Bad_NS}', 'allowFromNamespaces'], ['services.adminApi.port=70000', 'port']]) {
    const r = await templateChart([SECRETS], 'tenants', [...ON, '--set', set as string]);
    t.not(r.code, 0, `${set} refused`);
    t.match(r.stderr, field as string);
  }
});
