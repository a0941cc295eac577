/**
 * The Helm chart without helm (not installable here): values.yaml and the EKS example validate
 * against values.schema.json (ajv, draft-07), the templates render with Go's text/template and sprig
 * (Helm's own engine libraries, from Debian: test/support/chart.ts), every manifest parses as YAML
 * and validates against the Kubernetes OpenAPI schemas (kubernetes-models), and the platform's
 * promises are checked on the objects: probes, PDBs, RBAC, isolation, autoscaling, metrics.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { parse, stringify } from 'yaml';
import { ROOT } from './support/platform.js';
import { CHART, SERVICES, byKind, one, renderChart, validateManifest, type Manifest } from './support/chart.js';

const schema = JSON.parse(readFileSync(path.join(CHART, 'values.schema.json'), 'utf8')) as object;
const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
const valuesOf = (file: string): unknown => parse(readFileSync(path.join(CHART, file), 'utf8'));
const TEST_SECRETS = path.join(CHART, '../../test/fixtures/chart-secrets.yaml');

let plain: Manifest[];
let eks: Manifest[];

t.before(async () => {
  plain = (await renderChart([TEST_SECRETS])).manifests;
  eks = (await renderChart(['values-eks-karpenter.yaml'])).manifests;
});

t.test('values.yaml and the EKS/Karpenter example satisfy values.schema.json, merged as helm merges them', async (t) => {
  t.ok(validate(valuesOf('values.yaml')), JSON.stringify(validate.errors));
  const merged = await renderChart(['values-eks-karpenter.yaml']);
  t.ok(validate(merged.values), JSON.stringify(validate.errors));
});

t.test('the schema refuses what would break an install', async (t) => {
  const base = valuesOf('values.yaml') as Record<string, any>;
  const bad: Array<[string, (v: Record<string, any>) => void]> = [
    ['a typo at the top', (v) => (v.sevices = {})],
    ['negative replicas', (v) => (v.services.forwarder.replicas = -1)],
    ['no memory limit', (v) => delete v.services.waker.resources.limits.memory],
    ['a PDB with both fields', (v) => (v.services.ingress.pdb = { minAvailable: 1, maxUnavailable: 1 })],
    ['an unknown protocol', (v) => (v.agent.custom.protocol = 'http')],
    ['an unknown agent profile', (v) => (v.agent.profile = 'hermes')],
    ['openclaw without a model', (v) => (v.agent.profile = 'openclaw')],
    ['an agent quantity that is not a string', (v) => (v.agent.resources.openclaw.limits.cpu = 2)],
    ['a short webhook secret', (v) => (v.secrets.webhookSecret = 'short')],
    ['a redis URL without scheme', (v) => (v.secrets.redisUrl = 'redis.example:6379')],
    ['KEDA without Prometheus', (v) => (v.autoscaling.keda.enabled = true)],
    ['Karpenter without a cluster name', (v) => (v.karpenter.enabled = true)],
    ['tenant egress that allows the metadata endpoint', (v) => (v.networkPolicy.tenantEgressDeny = ['10.0.0.0/8'])],
  ];
  for (const [what, change] of bad) {
    const v = structuredClone(base);
    change(v);
    t.notOk(validate(v), `refused: ${what}`);
  }
});

t.test('without secrets the chart refuses to render, naming what to set', async (t) => {
  await t.rejects(renderChart([]), /set secrets\.existingSecret, or secrets\.webhookSecret/);
});

t.test('every manifest parses and validates against the Kubernetes schemas', async (t) => {
  for (const [name, list] of [['test values', plain], ['EKS example', eks]] as const) {
    t.ok(list.length >= 20, `${name}: ${list.length} manifests`);
    for (const m of list) {
      const problem = validateManifest(m);
      t.equal(problem, undefined, `${name}: ${m.kind}/${m.metadata.name} ${problem ?? 'valid'}`);
    }
    const names = list.map((m) => `${m.kind}/${m.metadata.namespace ?? ''}/${m.metadata.name}`);
    t.equal(new Set(names).size, names.length, `${name}: no duplicate objects`);
  }
});

t.test('a Deployment per service: probes, resources, grace, non-root, a PDB that selects it', async (t) => {
  const deployments = byKind(plain, 'Deployment');
  t.same(deployments.map((d) => d.metadata.name).sort(), [...SERVICES].sort());
  const pdbs = byKind(plain, 'PodDisruptionBudget');
  for (const d of deployments) {
    const name = d.metadata.name;
    const spec = d.spec.template.spec;
    const c = spec.containers[0];
    t.same(d.spec.selector.matchLabels, Object.fromEntries(Object.entries(d.spec.selector.matchLabels).filter(([k]) => d.spec.template.metadata.labels[k] === d.spec.selector.matchLabels[k])), `${name}: selector matches its pods`);
    t.same(c.args, [name], `${name}: the image's argument picks the service`);
    t.equal(c.livenessProbe.httpGet.path, '/healthz', `${name}: liveness /healthz`);
    t.equal(c.readinessProbe.httpGet.path, '/readyz', `${name}: readiness /readyz`);
    t.equal(c.ports[0].containerPort, name === 'ingress' ? 8080 : name === 'dashboard' ? 3001 : 9090, `${name}: serves on its port`);
    t.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, `${name}: resources`);
    t.ok(spec.terminationGracePeriodSeconds >= 25, `${name}: grace covers the 25 s shutdown`);
    t.equal(spec.securityContext.runAsNonRoot, true, `${name}: non-root`);
    t.equal(c.securityContext.readOnlyRootFilesystem, true, `${name}: read-only root`);
    const pdb = pdbs.find((p) => Object.entries(p.spec.selector.matchLabels).every(([k, v]) => spec && d.spec.template.metadata.labels[k] === v));
    t.ok(pdb, `${name}: a PodDisruptionBudget selects it`);
    const runtime = ['waker', 'janitor', 'pool-keeper'].includes(name);
    t.equal(spec.automountServiceAccountToken, runtime, `${name}: API token only for the runtime services`);
    t.equal(spec.serviceAccountName, runtime ? 'agentic-tenancy-runtime' : 'agentic-tenancy');
  }
});

t.test('every variable the chart sets is one the platform reads', async (t) => {
  // The platform's configuration, and the agent settings it parses with it (lib/agent-profiles.ts).
  const config = ['lib/config.ts', 'lib/agent-profiles.ts'].map((f) => readFileSync(path.join(ROOT, f), 'utf8')).join('\n');
  const known = new Set([...config.matchAll(/'([A-Z][A-Z0-9_]+)'/g)].map((m) => m[1]));
  const cm = one(plain, 'ConfigMap', 'agentic-tenancy-config');
  const secret = one(plain, 'Secret', 'agentic-tenancy-secrets');
  for (const key of [...Object.keys(cm.data), ...Object.keys(secret.stringData)]) t.ok(known.has(key), `${key} is read by lib/config.ts`);
  t.equal(cm.data.RUNTIME, 'kubernetes');
  t.equal(cm.data.K8S_NAMESPACE, 'tenants');
  t.equal(cm.data.AGENT_PROFILE, 'reference');
  t.same(JSON.parse(cm.data.AGENT_POD_RESOURCES), { requests: { cpu: '50m', memory: '96Mi' }, limits: { cpu: '500m', memory: '256Mi' } }, 'the profile\'s resources');
});

t.test('the openclaw profile: its resources, its port, the key only in the Secret', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-chart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'openclaw.yaml');
  writeFileSync(file, stringify({ agent: { profile: 'openclaw', llm: { baseUrl: 'https://llm.example/v1', model: 'gpt-x' } }, secrets: { agentLlmApiKey: 'sk-abcdef' } }));
  const { manifests, values } = await renderChart([TEST_SECRETS, file]);
  t.ok(validate(values), JSON.stringify(validate.errors));
  const cm = one(manifests, 'ConfigMap', 'agentic-tenancy-config');
  t.equal(cm.data.AGENT_PROFILE, 'openclaw');
  t.equal(cm.data.AGENT_PORT, '8787', 'OpenClaw\'s webhook listener');
  t.same(JSON.parse(cm.data.AGENT_POD_RESOURCES).limits, { cpu: '2', memory: '2Gi' });
  t.equal(cm.data.AGENT_LLM_MODEL, 'gpt-x');
  t.notOk(Object.values(cm.data).some((v) => String(v).includes('sk-abcdef')), 'no key in the ConfigMap');
  t.equal(one(manifests, 'Secret', 'agentic-tenancy-secrets').stringData.AGENT_LLM_API_KEY, 'sk-abcdef');
  t.equal(cm.data.AGENT_PROTOCOL, undefined, 'the profile decides the protocol');
});

t.test('RBAC: the least the runtime needs, in the tenants namespace, for the runtime account only', async (t) => {
  const role = one(plain, 'Role', 'agentic-tenancy-runtime');
  t.equal(role.metadata.namespace, 'tenants');
  const rules = Object.fromEntries(role.rules.map((r: any) => [r.resources.join(','), [...r.verbs].sort()]));
  t.same(rules, {
    pods: ['create', 'delete', 'get', 'list', 'patch', 'watch'],
    secrets: ['create', 'delete', 'get', 'patch'],
    persistentvolumeclaims: ['delete', 'list'],
  });
  t.notOk(role.rules.some((r: any) => r.verbs.includes('*') || r.resources.includes('*')), 'no wildcards');
  t.same(byKind(plain, 'ClusterRole'), [], 'nothing cluster-wide');
  const binding = one(plain, 'RoleBinding', 'agentic-tenancy-runtime');
  t.same(binding.subjects, [{ kind: 'ServiceAccount', name: 'agentic-tenancy-runtime', namespace: 'tenants' }]);
});

t.test('PriorityClasses: tenant pods may preempt warm pods, warm pods preempt nothing', async (t) => {
  const tenant = one(plain, 'PriorityClass', 'zeroclaw-tenant');
  const warm = one(plain, 'PriorityClass', 'zeroclaw-warm');
  t.ok(tenant.value > warm.value);
  t.equal(warm.preemptionPolicy, 'Never');
  t.equal(tenant.globalDefault, false);
});

t.test('NetworkPolicies: tenants reach no platform, no tenant, no metadata; only the forwarder reaches agents', async (t) => {
  const np = one(plain, 'NetworkPolicy', 'tenant-isolation');
  t.same(np.spec.podSelector.matchExpressions, [{ key: 'app', operator: 'In', values: ['zeroclaw', 'warm-pool'] }]);
  t.same(np.spec.policyTypes, ['Ingress', 'Egress']);
  const [agentRule, shimRule] = np.spec.ingress;
  t.same(agentRule.ports, [{ port: 42617, protocol: 'TCP' }]);
  t.equal(agentRule.from[0].podSelector.matchLabels['app.kubernetes.io/component'], 'forwarder', 'the agent port: the forwarder only');
  t.same(shimRule.ports, [{ port: 9000, protocol: 'TCP' }]);
  t.same(shimRule.from[0].podSelector.matchExpressions[1].values, ['waker', 'janitor', 'pool-keeper'], 'the shim port: the runtime services only');
  t.equal(np.spec.ingress.length, 2, 'nothing else reaches tenant pods (other tenants included)');
  const blocks = np.spec.egress.flatMap((e: any) => e.to).filter((to: any) => to.ipBlock).map((to: any) => to.ipBlock);
  const v4 = blocks.find((b: any) => b.cidr === '0.0.0.0/0');
  for (const cidr of ['169.254.169.254/32', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']) t.ok(v4.except.includes(cidr), `egress excludes ${cidr}`);
  const platform = one(plain, 'NetworkPolicy', 'platform');
  t.same(platform.spec.ingress[0].from[0].podSelector.matchExpressions, [{ key: 'app', operator: 'NotIn', values: ['zeroclaw', 'warm-pool'] }], 'platform pods refuse tenant pods');
});

t.test('autoscaling: KEDA on the backlog gauge for forwarder and waker, CPU HPA for the ingress', async (t) => {
  t.same(byKind(plain, 'ScaledObject'), [], 'KEDA is off by default');
  const hpa = one(plain, 'HorizontalPodAutoscaler', 'ingress');
  t.equal(hpa.spec.scaleTargetRef.name, 'ingress');
  t.equal(hpa.spec.metrics[0].resource.name, 'cpu');
  t.notOk('replicas' in one(plain, 'Deployment', 'ingress').spec, 'the HPA owns the ingress replicas');
  for (const [service, queue] of [['forwarder', 'forward'], ['waker', 'wake']]) {
    const so = one(eks, 'ScaledObject', service as string);
    t.equal(so.spec.scaleTargetRef.name, service);
    const trigger = so.spec.triggers[0];
    t.equal(trigger.type, 'prometheus');
    t.equal(trigger.metadata.query, `sum(max by (state) (ztm_queue_jobs{queue="${queue}",state=~"waiting|prioritized|delayed",namespace="tenants"}))`);
    t.equal(trigger.metadata.ignoreNullValues, 'false', 'no data is an error (fallback), never zero');
    t.ok(so.spec.fallback.replicas >= 1);
    t.notOk('replicas' in one(eks, 'Deployment', service as string).spec, `KEDA owns the ${service} replicas`);
  }
});

t.test('the ingress: Service and Ingress route only /tg/ to the webhook port', async (t) => {
  const svc = one(eks, 'Service', 'ingress');
  t.same(svc.spec.selector, one(eks, 'Deployment', 'ingress').spec.selector.matchLabels);
  const ing = one(eks, 'Ingress', 'ingress');
  t.same(ing.spec.rules[0].http.paths.map((p: any) => p.path), ['/tg/']);
  t.equal(ing.spec.rules[0].host, 'bots.example.com');
});

t.test('metrics: scrape annotations, PodMonitor, and a Grafana dashboard on metrics the code exports', async (t) => {
  for (const d of byKind(plain, 'Deployment')) t.equal(d.spec.template.metadata.annotations['prometheus.io/path'], '/metrics');
  t.equal(one(eks, 'PodMonitor', 'agentic-tenancy').spec.podMetricsEndpoints[0].port, 'http');
  const cm = one(eks, 'ConfigMap', 'agentic-tenancy-grafana-dashboard');
  const dashboard = JSON.parse(cm.data['agentic-tenancy.json']) as { panels: Array<{ targets: Array<{ expr: string }> }> };
  const metricsTs = readFileSync(path.join(ROOT, 'lib/metrics.ts'), 'utf8');
  const exported = new Set([...metricsTs.matchAll(/name: '(ztm_[a-z_]+)'/g)].map((m) => m[1]));
  const used = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((x) => [...x.expr.matchAll(/\b(ztm_[a-z_]+?)(?:_bucket|_count|_sum)?\b/g)].map((m) => m[1]))));
  t.ok(used.size >= 8, `the dashboard uses ${used.size} platform metrics`);
  for (const m of used) t.ok(exported.has(m), `${m} is exported by lib/metrics.ts`);
});

t.test('the EKS example: Karpenter kata-metal NodePool that the tenant pods tolerate and select', async (t) => {
  const pool = one(eks, 'NodePool', 'kata-metal');
  t.equal(pool.apiVersion, 'karpenter.sh/v1');
  t.same(pool.spec.template.metadata.labels, { 'katacontainers.io/kata-runtime': 'true' });
  t.same(pool.spec.template.spec.taints, [{ key: 'kata-runtime', value: 'true', effect: 'NoSchedule' }]);
  t.ok(pool.spec.template.spec.requirements.some((r: any) => r.key === 'karpenter.k8s.aws/instance-size' && r.values.includes('metal')));
  t.equal(pool.spec.template.spec.nodeClassRef.name, one(eks, 'EC2NodeClass', 'kata').metadata.name);
  t.match(one(eks, 'EC2NodeClass', 'kata').spec.userData, /devmapper/);
  t.equal(one(eks, 'ServiceAccount', 'agentic-tenancy-runtime').metadata.annotations['eks.amazonaws.com/role-arn'], 'arn:aws:iam::<AWS_ACCOUNT_ID>:role/agentic-tenancy-runtime');
  t.same(byKind(eks, 'Secret'), [], 'the example uses an existing Secret');
});
