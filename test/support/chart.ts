/**
 * Rendering and checking charts/agentic-tenancy without helm. test/support/helm-render/main.go
 * renders the templates with Go's text/template and sprig (the libraries Helm uses) from Debian's
 * golang-go and golang-github-masterminds-sprig-dev (+ ghodss-yaml), built in a scratch GOPATH;
 * manifests are validated with kubernetes-models (the Kubernetes OpenAPI schemas). .ci/run installs
 * the Debian packages when they are missing, so this never silently skips.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, symlinkSync, copyFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './platform.js';

const run = promisify(execFile);
const require = createRequire(import.meta.url);

export const CHART = path.join(ROOT, 'charts/agentic-tenancy');
export const SERVICES = ['ingress', 'forwarder', 'waker', 'janitor', 'pool-keeper', 'dashboard'] as const;
const GOCODE = '/usr/share/gocode';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: any }; [k: string]: any };

let binary: Promise<string> | undefined;

/** Builds the renderer once per process (Debian's Go in GOPATH mode, no network). */
function renderer(): Promise<string> {
  binary ??= (async () => {
    if (!existsSync(`${GOCODE}/src/github.com/Masterminds/sprig`)) {
      throw new Error('Go and sprig are missing: apt-get install -y golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev (.ci/run does)');
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-helm-render-'));
    const gopath = path.join(dir, 'gopath');
    const src = path.join(gopath, 'src/helmrender');
    mkdirSync(src, { recursive: true });
    copyFileSync(path.join(ROOT, 'test/support/helm-render/main.go'), path.join(src, 'main.go'));
    // Debian installs these /v3 modules without the suffix; GOPATH mode needs the import path.
    for (const mod of ['sprig', 'semver']) {
      mkdirSync(path.join(gopath, 'src/github.com/Masterminds', mod), { recursive: true });
      symlinkSync(`${GOCODE}/src/github.com/Masterminds/${mod}`, path.join(gopath, 'src/github.com/Masterminds', mod, 'v3'));
    }
    const out = path.join(dir, 'helm-render');
    await run('go', ['build', '-o', out, '.'], {
      cwd: src,
      env: { PATH: process.env.PATH ?? '', HOME: dir, GO111MODULE: 'off', GOPATH: `${gopath}:${GOCODE}`, GOCACHE: path.join(dir, 'cache'), GOFLAGS: '', CGO_ENABLED: '0' },
      timeout: 170_000,
    });
    return out;
  })();
  return binary;
}

export interface Rendered {
  values: unknown;
  manifests: Manifest[];
}

/** `helm template agentic-tenancy charts/agentic-tenancy -n tenants -f …` (files relative to the chart). */
export async function renderChart(valueFiles: string[], namespace = 'tenants'): Promise<Rendered> {
  const bin = await renderer();
  const args = ['-chart', CHART, '-namespace', namespace, ...valueFiles.flatMap((f) => ['-f', path.resolve(CHART, f)])];
  let stdout: string;
  try {
    ({ stdout } = await run(bin, args, { maxBuffer: 32 * 1024 * 1024 }));
  } catch (err) {
    throw new Error(String((err as { stderr?: string }).stderr ?? err).trim());
  }
  const out = JSON.parse(stdout) as { values: unknown; templates: Record<string, string> };
  const manifests: Manifest[] = [];
  for (const [file, text] of Object.entries(out.templates)) {
    for (const doc of parseAllDocuments(text, { uniqueKeys: true })) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]?.message}`);
      const m = doc.toJS() as Manifest | null;
      if (m !== null) manifests.push(m);
    }
  }
  return { values: out.values, manifests };
}

const MODEL_PATH: Record<string, string> = {
  v1: 'v1',
  'apps/v1': 'apps/v1',
  'policy/v1': 'policy/v1',
  'networking.k8s.io/v1': 'networking.k8s.io/v1',
  'rbac.authorization.k8s.io/v1': 'rbac.authorization.k8s.io/v1',
  'scheduling.k8s.io/v1': 'scheduling.k8s.io/v1',
  'autoscaling/v2': 'autoscaling/v2',
};

/** Custom resources the cluster gets from KEDA, Karpenter and the Prometheus Operator: the fields they require. */
const CUSTOM: Record<string, { apiVersion: string; check: (m: Manifest) => string | undefined }> = {
  ScaledObject: { apiVersion: 'keda.sh/v1alpha1', check: (m) => (m.spec?.scaleTargetRef?.name && Array.isArray(m.spec.triggers) && m.spec.triggers.length > 0 ? undefined : 'needs scaleTargetRef.name and triggers') },
  NodePool: { apiVersion: 'karpenter.sh/v1', check: (m) => (m.spec?.template?.spec?.nodeClassRef?.name && Array.isArray(m.spec.template.spec.requirements) ? undefined : 'needs template.spec.nodeClassRef and requirements') },
  EC2NodeClass: { apiVersion: 'karpenter.k8s.aws/v1', check: (m) => (m.spec?.role && m.spec.amiSelectorTerms && m.spec.subnetSelectorTerms && m.spec.securityGroupSelectorTerms ? undefined : 'needs role, amiSelectorTerms, subnet and security group selectors') },
  PodMonitor: { apiVersion: 'monitoring.coreos.com/v1', check: (m) => (m.spec?.selector && Array.isArray(m.spec.podMetricsEndpoints) ? undefined : 'needs selector and podMetricsEndpoints') },
};

/** undefined when valid, else the first problem. */
export function validateManifest(m: Manifest): string | undefined {
  if (!m.apiVersion || !m.kind || !m.metadata?.name) return 'needs apiVersion, kind and metadata.name';
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(m.metadata.name) || m.metadata.name.length > 253) return `invalid name ${m.metadata.name}`;
  const custom = CUSTOM[m.kind];
  if (custom) return m.apiVersion === custom.apiVersion ? custom.check(m) : `expected apiVersion ${custom.apiVersion}`;
  const dir = MODEL_PATH[m.apiVersion];
  if (!dir) return `no schema for ${m.apiVersion}`;
  let Model: new (data: unknown) => { validate(): void };
  try {
    Model = (require(`kubernetes-models/${dir}/${m.kind}`) as Record<string, new (data: unknown) => { validate(): void }>)[m.kind] as typeof Model;
  } catch {
    return `no schema for ${m.apiVersion} ${m.kind}`;
  }
  try {
    new Model(m).validate();
    return undefined;
  } catch (err) {
    return (err as Error).message.slice(0, 500);
  }
}

export const byKind = (list: Manifest[], kind: string): Manifest[] => list.filter((m) => m.kind === kind);

export function one(list: Manifest[], kind: string, name: string): Manifest {
  const found = list.filter((m) => m.kind === kind && m.metadata.name === name);
  if (found.length !== 1) throw new Error(`expected one ${kind}/${name}, found ${found.length}`);
  return found[0] as Manifest;
}
