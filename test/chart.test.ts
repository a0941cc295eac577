/**
 * The Helm chart through the real helm (v4.1.4 from npm, test/support/helm.ts): `helm lint --strict`
 * and `helm template` with the default values, the test values, the EKS example and every override
 * below; bad values refused by helm's own values.schema.json check (its exit code and the field it
 * names); every rendered object validated against the Kubernetes OpenAPI schemas (kubernetes-models)
 * and the KEDA, Karpenter and Prometheus Operator CRDs (test/support/crd-schemas.ts); the platform's
 * promises checked on the objects: probes, PDBs, RBAC, isolation, autoscaling, metrics.
 * The trust boundary (issue 11, item 7): tenants in their own namespace under Pod Security Admission
 * `restricted`, secrets key by key, /metrics off the webhook port, IPv6 egress; the Roles and each
 * runtime service's code path under its own Role: test/chart-rbac.test.ts.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { ROOT } from './support/platform.js';
import { CHART, SERVICES, TEST_SECRETS, byKind, lintChart, one, renderChart, renderWith, templateChart, validateManifest, withValuesFile, type Manifest } from './support/chart.js';
import { restrictedViolations } from './support/pod-security.js';
import { loadConfig } from '../lib/config.js';
import { POD_OWNER_SECRET_NAME, POD_OWNER_SECRET_TYPE } from '../lib/runtime/pod-owner.js';

const valuesOf = (file: string): unknown => parse(readFileSync(path.join(CHART, file), 'utf8'));

let plain: Manifest[];
let eks: Manifest[];
const RUNTIME_SERVICES = ['waker', 'janitor', 'pool-keeper'] as const;
/** Where tenant pods go by default, for a release in namespace `tenants`. */
const TENANTS_NS = 'tenants-agents';

t.before(async () => {
  plain = await renderChart([TEST_SECRETS]);
  eks = await renderChart(['values-eks-karpenter.yaml']);
});


/** Every object valid against its schema (Kubernetes or CRD). */
function allValid(t: Test, manifests: Manifest[], what: string): void {
  for (const m of manifests) {
    const problem = validateManifest(m);
    t.equal(problem, undefined, `${what}: ${m.kind}/${m.metadata.name} ${problem ?? 'valid'}`);
  }
}


/** 64:ff9b::/96 (RFC 6052) form of an IPv4 CIDR, as a NAT64 gateway would carry it. */
function nat64(cidr: string): string {
  const [ip, bits] = cidr.split('/') as [string, string];
  const [a, b, c, d] = ip.split('.').map(Number) as [number, number, number, number];
  return `64:ff9b::${((a << 8) + b).toString(16)}:${((c << 8) + d).toString(16)}/${96 + Number(bits)}`;
}

t.test('helm lint --strict passes: the defaults, the test values, the EKS/Karpenter example', async (t) => {
  for (const files of [[], [TEST_SECRETS], ['values-eks-karpenter.yaml']]) {
    const out = await lintChart(files);
    t.equal(out.code, 0, `helm lint --strict ${files.join(' ') || '(defaults)'}: exit 0${out.code === 0 ? '' : ` ${out.stdout}${out.stderr}`}`);
    t.match(out.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

t.test('helm refuses values that would break an install, through values.schema.json, naming the field', async (t) => {
  const defaults = valuesOf('values.yaml') as Record<string, any>;
  // Overrides merged over values.yaml as helm merges them (null deletes a default).
  const bad: Array<[string, unknown, RegExp]> = [
    ['a typo at the top', { sevices: {} }, /at '': additional properties 'sevices' not allowed/],
    ['negative replicas', { services: { forwarder: { replicas: -1 } } }, /at '\/services\/forwarder\/replicas': minimum/],
    ['no memory limit', { services: { waker: { resources: { limits: { memory: null } } } } }, /at '\/services\/waker\/resources\/limits': missing property 'memory'/],
    ['a PDB with both fields', { services: { ingress: { pdb: { minAvailable: 1, maxUnavailable: 1 } } } }, /at '\/services\/ingress\/pdb\/maxUnavailable': got number, want null/],
    ['a PDB bound that is neither a count nor a percentage', { services: { ingress: { pdb: { minAvailable: 'half' } } } }, /at '\/services\/ingress\/pdb\/minAvailable'/],
    ['an unknown protocol', { agent: { custom: { protocol: 'http' } } }, /at '\/agent\/custom\/protocol'/],
    ['an unknown agent profile', { agent: { profile: 'hermes' } }, /at '\/agent\/profile'/],
    ['openclaw without a model', { agent: { profile: 'openclaw' } }, /at '\/agent\/llm\/model'/],
    ['an agent quantity that is not a string', { agent: { resources: { openclaw: { limits: { cpu: 2 } } } } }, /at '\/agent\/resources\/openclaw\/limits\/cpu': got number, want string/],
    ['an env value that is a list', { config: { extraEnv: { FOO: ['a'] } } }, /at '\/config\/extraEnv\/FOO'/],
    ['a short webhook secret', { secrets: { webhookSecret: 'short' } }, /at '\/secrets\/webhookSecret': 'short' does not match pattern/],
    ['a redis URL without scheme', { secrets: { redisUrl: 'redis.example:6379' } }, /at '\/secrets\/redisUrl'/],
    ['KEDA without Prometheus', { autoscaling: { keda: { enabled: true } } }, /at '\/autoscaling\/keda\/prometheusServerAddress'/],
    ['Karpenter without a cluster name', { karpenter: { enabled: true } }, /at '\/karpenter\/clusterName'/],
    ['tenant egress that allows the metadata endpoint', { networkPolicy: { tenantEgressDeny: ['10.0.0.0/8'] } }, /at '\/networkPolicy\/tenantEgressDeny'/],
    ['a malformed IPv4 deny entry', { networkPolicy: { tenantEgressDeny: [...defaults.networkPolicy.tenantEgressDeny, '10.0/8'] } }, /at '\/networkPolicy\/tenantEgressDeny\/6'/],
    ['IPv6 egress without the cluster\'s own IPv6 ranges', { networkPolicy: { ipv6: { enabled: true } } }, /at '\/networkPolicy\/ipv6\/clusterRanges'/],
    ['an IPv4 range as an IPv6 cluster range', { networkPolicy: { ipv6: { enabled: true, clusterRanges: ['10.0.0.0/8'] } } }, /at '\/networkPolicy\/ipv6\/clusterRanges\/0'/],
    ['the old shared runtime service account', { serviceAccounts: { runtime: { create: true, name: 'agentic-tenancy-runtime' } } }, /at '\/serviceAccounts': additional properties 'runtime' not allowed/],
    ['a Pod Security version that is not one', { tenants: { podSecurityVersion: 'newest' } }, /at '\/tenants\/podSecurityVersion'/],
  ];
  for (const [what, override, field] of bad) {
    const out = await withValuesFile(override, (file) => templateChart([TEST_SECRETS, file]));
    t.equal(out.code, 1, `refused: ${what} (helm template exit 1)`);
    t.match(out.stderr, /values don't meet the specifications of the schema\(s\)/, `${what}: by the schema check`);
    t.match(out.stderr, field, `${what}: names the field (${out.stderr.split('\n').filter((l) => l.includes("at '")).join(' | ').slice(0, 300)})`);
    const lint = await withValuesFile(override, (file) => lintChart([TEST_SECRETS, file]));
    t.equal(lint.code, 1, `${what}: helm lint --strict fails too`);
  }
});

t.test('without secrets the chart refuses to render, naming what to set', async (t) => {
  const out = await templateChart([]);
  t.equal(out.code, 1);
  t.match(out.stderr, /set secrets\.existingSecret, or secrets\.webhookSecret/);
});

t.test('PDB overrides: minAvailable or maxUnavailable (a count, 0 or a percentage) replaces the default maxUnavailable 1', async (t) => {
  const spec = (manifests: Manifest[], service: string): Record<string, unknown> => {
    const { selector: _selector, ...bounds } = one(manifests, 'PodDisruptionBudget', service).spec as Record<string, unknown>;
    return bounds;
  };
  for (const service of SERVICES) t.same(spec(plain, service), { maxUnavailable: 1 }, `${service}: maxUnavailable 1 by default`);
  const overridden = await renderWith({ services: { ingress: { pdb: { minAvailable: 1 } }, forwarder: { pdb: { maxUnavailable: 2 } }, waker: { pdb: { maxUnavailable: 0 } }, janitor: { pdb: { minAvailable: '50%' } } } });
  t.same(spec(overridden, 'ingress'), { minAvailable: 1 }, 'minAvailable 1 alone (not merged with the default maxUnavailable)');
  t.same(spec(overridden, 'forwarder'), { maxUnavailable: 2 });
  t.same(spec(overridden, 'waker'), { maxUnavailable: 0 }, 'maxUnavailable 0 is kept (no eviction), not taken for unset');
  t.same(spec(overridden, 'janitor'), { minAvailable: '50%' });
  t.same(spec(overridden, 'dashboard'), { maxUnavailable: 1 }, 'the others keep the default');
  allValid(t, byKind(overridden, 'PodDisruptionBudget'), 'PDB overrides');
  // An explicit null beside the other field (the way to unset a default in helm; the schema takes it), and --set.
  const nulled = await renderWith({ services: { ingress: { pdb: { minAvailable: 1, maxUnavailable: null } }, forwarder: { pdb: { minAvailable: null, maxUnavailable: 2 } } } });
  t.same(spec(nulled, 'ingress'), { minAvailable: 1 }, 'minAvailable 1 beside maxUnavailable null');
  t.same(spec(nulled, 'forwarder'), { maxUnavailable: 2 }, 'maxUnavailable 2 beside minAvailable null');
  const set = await renderChart([TEST_SECRETS], 'tenants', ['--set', 'services.ingress.pdb.minAvailable=1']);
  t.same(spec(set, 'ingress'), { minAvailable: 1 }, '--set services.ingress.pdb.minAvailable=1');
});

t.test('extraEnv: every value a quoted string of what was written, integers of 10^6 and more included (not 1e+06)', async (t) => {
  const extraEnv = { BIG: 1000000, EIGHT_DIGITS: 12345678, RATIO: 0.25, FLAG: true, PADDED: '007', TEXT: 'a b' };
  const m = await renderWith({ config: { extraEnv }, services: { forwarder: { extraEnv } } });
  const expected = { BIG: '1000000', EIGHT_DIGITS: '12345678', RATIO: '0.25', FLAG: 'true', PADDED: '007', TEXT: 'a b' };
  const cm = one(m, 'ConfigMap', 'agentic-tenancy-config');
  for (const [k, v] of Object.entries(expected)) t.equal(cm.data[k], v, `ConfigMap ${k}: ${JSON.stringify(v)}`);
  const env = Object.fromEntries((one(m, 'Deployment', 'forwarder').spec.template.spec.containers[0].env as Array<{ name: string; value?: string }>)
    .filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
  t.same(env, expected, 'the forwarder\'s env: the same strings');
  const set = await renderChart([TEST_SECRETS], 'tenants', ['--set', 'config.extraEnv.BIG=1000000', '--set', 'config.extraEnv.EIGHT_DIGITS=12345678']);
  t.match(one(set, 'ConfigMap', 'agentic-tenancy-config').data, { BIG: '1000000', EIGHT_DIGITS: '12345678' }, 'through --set too');
  allValid(t, [cm, one(m, 'Deployment', 'forwarder')], 'extraEnv');
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
    t.equal(c.readinessProbe.httpGet.port, ['ingress', 'dashboard'].includes(name) ? 'http' : 'admin', `${name}: probed on its named port`);
    t.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, `${name}: resources`);
    t.ok(spec.terminationGracePeriodSeconds >= 25, `${name}: grace covers the 25 s shutdown`);
    t.equal(spec.securityContext.runAsNonRoot, true, `${name}: non-root`);
    t.equal(c.securityContext.readOnlyRootFilesystem, true, `${name}: read-only root`);
    const pdb = pdbs.find((p) => Object.entries(p.spec.selector.matchLabels).every(([k, v]) => spec && d.spec.template.metadata.labels[k] === v));
    t.ok(pdb, `${name}: a PodDisruptionBudget selects it`);
    const runtime = (RUNTIME_SERVICES as readonly string[]).includes(name);
    t.equal(spec.automountServiceAccountToken, runtime, `${name}: API token only for the runtime services`);
    t.equal(spec.serviceAccountName, runtime ? `agentic-tenancy-${name}` : 'agentic-tenancy', `${name}: ${runtime ? 'its own account (its own Role)' : 'the app account (no API access)'}`);
    t.same(restrictedViolations(spec), [], `${name}: the pod would pass Pod Security "restricted" too`);
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
  t.equal(cm.data.K8S_NAMESPACE, TENANTS_NS, 'tenant pods in their own namespace');
  t.equal(cm.data.AGENT_PROFILE, 'reference');
  t.same(JSON.parse(cm.data.AGENT_POD_RESOURCES), { requests: { cpu: '50m', memory: '96Mi' }, limits: { cpu: '500m', memory: '256Mi' } }, 'the profile\'s resources');
});

t.test('the openclaw profile: its resources, its port, the key only in the Secret', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-chart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'openclaw.yaml');
  writeFileSync(file, stringify({ agent: { profile: 'openclaw', llm: { baseUrl: 'https://llm.example/v1', model: 'gpt-x' } }, secrets: { agentLlmApiKey: 'sk-abcdef' } }));
  const manifests = await renderChart([TEST_SECRETS, file]);
  allValid(t, manifests, 'openclaw');
  const cm = one(manifests, 'ConfigMap', 'agentic-tenancy-config');
  t.equal(cm.data.AGENT_PROFILE, 'openclaw');
  t.equal(cm.data.AGENT_PORT, '8787', 'OpenClaw\'s webhook listener');
  t.same(JSON.parse(cm.data.AGENT_POD_RESOURCES).limits, { cpu: '2', memory: '2Gi' });
  t.equal(cm.data.AGENT_LLM_MODEL, 'gpt-x');
  t.notOk(Object.values(cm.data).some((v) => String(v).includes('sk-abcdef')), 'no key in the ConfigMap');
  t.equal(one(manifests, 'Secret', 'agentic-tenancy-secrets').stringData.AGENT_LLM_API_KEY, 'sk-abcdef');
  t.equal(cm.data.AGENT_PROTOCOL, undefined, 'the profile decides the protocol');
});

t.test('tenants in their own namespace, with Pod Security Admission "restricted" enforced', async (t) => {
  const cm = one(plain, 'ConfigMap', 'agentic-tenancy-config');
  const ns = one(plain, 'Namespace', TENANTS_NS);
  t.equal(cm.data.K8S_NAMESPACE, ns.metadata.name, 'the runtime creates tenant pods in the namespace the chart creates');
  t.not(ns.metadata.name, 'tenants', 'not the release namespace (its Secret, Helm\'s release Secrets)');
  t.match(ns.metadata.labels, {
    'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest',
    'pod-security.kubernetes.io/audit': 'restricted', 'pod-security.kubernetes.io/warn': 'restricted',
  });
  for (const kind of ['Role', 'RoleBinding']) {
    for (const m of byKind(plain, kind)) t.equal(m.metadata.namespace, TENANTS_NS, `${kind}/${m.metadata.name} in the tenants namespace`);
  }
  t.equal(one(plain, 'NetworkPolicy', 'tenant-isolation').metadata.namespace, TENANTS_NS);
  const deny = one(plain, 'NetworkPolicy', 'default-deny');
  t.equal(deny.metadata.namespace, TENANTS_NS);
  t.same(deny.spec, { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }, 'a pod there without the tenant labels reaches nothing either');
  for (const m of plain) {
    if (m.kind === 'Secret' && m.metadata.name === POD_OWNER_SECRET_NAME) continue; // beside what it owns (below)
    if (['Deployment', 'Secret', 'ConfigMap', 'Service', 'ServiceAccount'].includes(m.kind)) t.equal(m.metadata.namespace, 'tenants', `${m.kind}/${m.metadata.name} stays in the release namespace`);
  }

  const named = await renderWith({ tenants: { namespace: 'bots' } });
  t.equal(one(named, 'ConfigMap', 'agentic-tenancy-config').data.K8S_NAMESPACE, 'bots', 'tenants.namespace names it');
  t.equal(one(named, 'Namespace', 'bots').metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
  const existing = await renderWith({ tenants: { namespace: 'bots', createNamespace: false } });
  t.same(byKind(existing, 'Namespace'), [], 'createNamespace false: an existing namespace (labelled by its owner, README)');
  const shared = await renderWith({ tenants: { namespace: 'tenants' } });
  t.same(byKind(shared, 'Namespace'), [], 'the chart never takes over its own release namespace');
  t.same(byKind(shared, 'NetworkPolicy').filter((m) => m.metadata.name === 'default-deny'), [], 'nor denies everything in it');
});


t.test('uninstall: the pod owner Secret sits beside the tenant pods in every layout, and nothing keeps it', async (t) => {
  const layouts: Array<[string, unknown, string]> = [
    ['default (own namespace, created)', {}, TENANTS_NS],
    ['named', { tenants: { namespace: 'bots' } }, 'bots'],
    ['an existing namespace', { tenants: { namespace: 'bots', createNamespace: false } }, 'bots'],
    ['the release namespace', { tenants: { namespace: 'tenants' } }, 'tenants'],
  ];
  for (const [what, values, ns] of layouts) {
    const manifests = await renderWith(values);
    const anchor = one(manifests, 'Secret', POD_OWNER_SECRET_NAME);
    const cm = one(manifests, 'ConfigMap', 'agentic-tenancy-config');
    t.equal(anchor.metadata.namespace, ns, `${what}: in the tenants namespace (an owner reference cannot cross namespaces)`);
    t.equal(cm.data.K8S_NAMESPACE, ns, `${what}: where the runtime creates what it owns`);
    t.equal(cm.data.K8S_POD_OWNER, POD_OWNER_SECRET_NAME, `${what}: the runtime is told its name`);
    t.equal(anchor.type, POD_OWNER_SECRET_TYPE, `${what}: typed as the pod owner (pod-owner.ts refuses any other Secret)`);
    t.equal(anchor.immutable, true);
    t.same([anchor.data, anchor.stringData], [undefined, undefined], `${what}: holds nothing`);
    t.equal(anchor.metadata.annotations?.['helm.sh/resource-policy'], undefined, `${what}: helm uninstall deletes it (no resource-policy keep)`);
    t.equal(anchor.metadata.finalizers, undefined, `${what}: no finalizer`);
    t.equal(anchor.metadata.labels['app.kubernetes.io/instance'], 'agentic-tenancy', `${what}: the release's name, copied onto what it owns`);
    t.same(validateManifest(anchor), undefined);
  }
  const readme = readFileSync(path.join(CHART, 'README.md'), 'utf8');
  t.match(readme, /## Uninstall and cleanup/, 'the README says what uninstall removes');
});

t.test('secrets key by key: each Deployment references only the Secret keys its service uses', async (t) => {
  const expected: Record<string, string[]> = {
    ingress: ['REDIS_URL', 'WEBHOOK_SECRET'],
    forwarder: ['REDIS_URL', 'WEBHOOK_SECRET'],
    waker: ['AGENT_LLM_API_KEY', 'REDIS_URL', 'WARM_POOL_SECRET', 'WEBHOOK_SECRET'],
    janitor: ['REDIS_URL', 'WARM_POOL_SECRET', 'WEBHOOK_SECRET'],
    'pool-keeper': ['AGENT_LLM_API_KEY', 'REDIS_URL', 'WARM_POOL_SECRET'],
    dashboard: ['DASHBOARD_PASSWORD', 'DASHBOARD_USER', 'REDIS_URL'],
  };
  const cm = one(plain, 'ConfigMap', 'agentic-tenancy-config');
  const secret = one(plain, 'Secret', 'agentic-tenancy-secrets');
  for (const d of byKind(plain, 'Deployment')) {
    const name = d.metadata.name;
    const c = d.spec.template.spec.containers[0];
    t.same(c.envFrom, [{ configMapRef: { name: 'agentic-tenancy-config' } }], `${name}: envFrom only for the non-secret ConfigMap`);
    const refs = (c.env ?? []).filter((e: any) => e.valueFrom?.secretKeyRef);
    for (const e of refs) {
      t.equal(e.valueFrom.secretKeyRef.name, 'agentic-tenancy-secrets');
      t.equal(e.valueFrom.secretKeyRef.key, e.name);
      t.equal(e.valueFrom.secretKeyRef.optional, e.name === 'AGENT_LLM_API_KEY', `${name}: ${e.name} ${e.name === 'AGENT_LLM_API_KEY' ? 'optional' : 'required'}`);
    }
    t.same(refs.map((e: any) => e.name).sort(), expected[name], `${name}: exactly its secrets`);
    // What services/<name>/main.ts itself refuses to start without.
    const main = readFileSync(path.join(ROOT, 'services', name, 'main.ts'), 'utf8');
    for (const [, key] of main.matchAll(/ConfigError\('([A-Z_]+)', 'is required/g)) t.ok(refs.some((e: any) => e.name === key), `${name}: gets ${key}, which its main.ts requires`);
    // lib/config.ts with exactly this environment.
    const env: Record<string, string> = { ...cm.data };
    for (const e of c.env ?? []) {
      const value = e.value ?? secret.stringData[e.valueFrom.secretKeyRef.key];
      if (value !== undefined) env[e.name] = value;
    }
    let error: string | undefined;
    try {
      loadConfig(env);
    } catch (err) {
      error = (err as Error).message;
    }
    t.equal(error, undefined, `${name}: lib/config.ts accepts its environment`);
  }
  t.notOk(JSON.stringify(one(plain, 'Deployment', 'ingress').spec).match(/WARM_POOL_SECRET|AGENT_LLM_API_KEY|DASHBOARD_/), 'the internet-facing ingress holds no control, model or dashboard secret');
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

t.test('IPv6 egress: none by default; when enabled, ::/0 minus unique-local, link-local, NAT64 forms and the cluster\'s own ranges', async (t) => {
  const v6Blocks = (manifests: Manifest[]): any[] => one(manifests, 'NetworkPolicy', 'tenant-isolation').spec.egress
    .flatMap((e: any) => e.to).filter((to: any) => to.ipBlock?.cidr.includes(':')).map((to: any) => to.ipBlock);
  t.same(v6Blocks(plain), [], 'IPv6 off: tenant pods reach no IPv6 destination (the policy lists none)');
  const clusterRanges = ['2600:1f14:abc:de00::/56', 'fd12:3456::/108'];
  const on = await renderWith({ networkPolicy: { ipv6: { enabled: true, clusterRanges }, tenantEgressDeny: [...(valuesOf('values.yaml') as any).networkPolicy.tenantEgressDeny, '2001:db8::/32'] } });
  const [block, ...more] = v6Blocks(on);
  t.same(more, []);
  t.equal(block.cidr, '::/0');
  for (const cidr of ['fc00::/7', 'fe80::/10', ...clusterRanges, '2001:db8::/32']) t.ok(block.except.includes(cidr), `IPv6 egress excludes ${cidr}`);
  t.notOk(block.except.includes('fd00::/8'), 'fc00::/7 replaces the narrower fd00::/8 (fc00::/8 was open)');
  const v4 = one(on, 'NetworkPolicy', 'tenant-isolation').spec.egress.flatMap((e: any) => e.to).find((to: any) => to.ipBlock?.cidr === '0.0.0.0/0').ipBlock.except as string[];
  for (const cidr of v4) t.ok(block.except.includes(nat64(cidr)), `IPv6 egress excludes ${nat64(cidr)}, the NAT64 form of ${cidr}`);
  t.ok(block.except.includes('64:ff9b::a9fe:a9fe/128'), 'the metadata endpoint through NAT64 included');
  t.equal(new Set(block.except).size, block.except.length, 'no duplicates');
  t.equal(validateManifest(one(on, 'NetworkPolicy', 'tenant-isolation')), undefined);
  const refused = await withValuesFile({ networkPolicy: { ipv6: { enabled: true } } }, (file) => templateChart([TEST_SECRETS, file]));
  t.equal(refused.code, 1, 'helm refuses IPv6 on without the cluster ranges');
  t.match(refused.stderr, /clusterRanges/, 'naming clusterRanges');
});

t.test('the README says the CNI must enforce NetworkPolicy, and what is lost when it does not', async (t) => {
  const readme = readFileSync(path.join(CHART, 'README.md'), 'utf8');
  t.match(readme, /The CNI must enforce NetworkPolicy/);
  t.match(readme, /enableNetworkPolicy/, 'how, on the EKS VPC CNI');
  t.match(readme, /pod-security\.kubernetes\.io\/enforce=restricted/, 'and how to label a tenants namespace the chart does not create');
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
  t.same(svc.spec.ports.map((p: any) => p.targetPort), ['http'], 'the (possibly public) Service exposes the webhook port only, not metrics');
  const ing = one(eks, 'Ingress', 'ingress');
  t.same(ing.spec.rules[0].http.paths.map((p: any) => p.path), ['/tg/']);
  t.equal(ing.spec.rules[0].host, 'bots.example.com');
});

t.test('metrics: off the ingress\'s webhook port; scrape annotations, PodMonitors, a Grafana dashboard on metrics the code exports', async (t) => {
  for (const d of byKind(plain, 'Deployment')) t.equal(d.spec.template.metadata.annotations['prometheus.io/path'], '/metrics');
  const ingress = one(plain, 'Deployment', 'ingress');
  const ports = Object.fromEntries(ingress.spec.template.spec.containers[0].ports.map((p: any) => [p.name, p.containerPort]));
  t.same(ports, { http: 8080, admin: 9090 }, 'the ingress: webhooks on one port, /metrics on ADMIN_PORT');
  t.equal(one(plain, 'ConfigMap', 'agentic-tenancy-config').data.ADMIN_PORT, '9090', 'ADMIN_PORT is the port the ingress serves /metrics on');
  t.equal(ingress.spec.template.metadata.annotations['prometheus.io/port'], '9090', 'scraped on the admin port');
  t.same(one(plain, 'NetworkPolicy', 'ingress-webhooks').spec.ingress, [{ ports: [{ port: 8080, protocol: 'TCP' }] }], 'only the webhook port is open beyond the platform and monitoring');
  for (const d of byKind(plain, 'Deployment')) {
    const c = d.spec.template.spec.containers[0];
    const metricsPort = d.metadata.name === 'dashboard' ? 3001 : 9090;
    t.equal(d.spec.template.metadata.annotations['prometheus.io/port'], String(metricsPort), `${d.metadata.name}: scraped on ${metricsPort}`);
    t.ok(c.ports.some((p: any) => p.containerPort === metricsPort && p.name === (d.metadata.name === 'dashboard' ? 'http' : 'admin')), `${d.metadata.name}: its metrics port is named for the PodMonitor`);
  }
  const monitor = one(eks, 'PodMonitor', 'agentic-tenancy');
  t.same(monitor.spec.podMetricsEndpoints.map((e: any) => e.port), ['admin'], 'the PodMonitor scrapes the admin port, never the webhook port');
  t.same(monitor.spec.selector.matchExpressions[0].values, ['ingress', 'forwarder', 'waker', 'janitor', 'pool-keeper']);
  const board = one(eks, 'PodMonitor', 'agentic-tenancy-dashboard');
  t.same(board.spec.podMetricsEndpoints.map((e: any) => e.port), ['http']);
  t.equal(board.spec.selector.matchLabels['app.kubernetes.io/component'], 'dashboard');
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
  for (const service of RUNTIME_SERVICES) {
    t.equal(one(eks, 'ServiceAccount', `agentic-tenancy-${service}`).metadata.annotations['eks.amazonaws.com/role-arn'], 'arn:aws:iam::<AWS_ACCOUNT_ID>:role/agentic-tenancy-runtime', `${service}: IRSA`);
  }
  t.same(byKind(eks, 'Secret').map((s) => s.metadata.name), [POD_OWNER_SECRET_NAME], 'the example uses an existing Secret (the chart\'s only Secret is the pod owner, which holds nothing)');
});

t.test('delivery settings: the ConfigMap gives every service the same shards, dedup bounds and WAIT, and the schema bounds them', async (t) => {
  const cm = one(plain, 'ConfigMap', 'agentic-tenancy-config');
  t.match(cm.data, { DELIVERY_SHARDS: '24', DEDUP_WINDOW_S: '3600', DEDUP_MAX_PER_TENANT: '1000', DELIVERY_WAIT_REPLICAS: '0', DELIVERY_WAIT_TIMEOUT_MS: '500', SHARD_RUNNER_LEASE_MS: '15000', SHARD_RUNNER_BACKLOG: '8', SHARD_RUNNER_MAX: '4' });
  const set = one(await renderWith({ config: { deliveryShards: 12, dedupWindowS: 600, deliveryWaitReplicas: 1 } }), 'ConfigMap', 'agentic-tenancy-config');
  const secret = one(plain, 'Secret', 'agentic-tenancy-secrets');
  const secrets = { WEBHOOK_SECRET: secret.stringData.WEBHOOK_SECRET, WARM_POOL_SECRET: secret.stringData.WARM_POOL_SECRET, REDIS_URL: secret.stringData.REDIS_URL };
  t.match(loadConfig({ ...set.data, ...secrets }), { deliveryShards: 12, dedupWindowS: 600, deliveryWaitReplicas: 1 }, 'what the services parse');
  loadConfig({ ...cm.data, ...secrets }); // parsing sets the process's delivery layout: back to the chart's default
  const refused = await withValuesFile({ config: { deliveryShards: 0 } }, (file) => templateChart([TEST_SECRETS, file]));
  t.not(refused.code, 0, 'deliveryShards 0 refused by the schema');
  t.match(refused.stderr, /deliveryShards/);
});
