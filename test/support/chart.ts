/**
 * charts/agentic-tenancy through the real helm (test/support/helm.ts): `helm template` and `helm
 * lint --strict` as an operator runs them (helm's own values.schema.json check included), every
 * rendered object validated against the Kubernetes OpenAPI schemas (kubernetes-models) and the
 * custom resources against their CRDs' published schemas (test/fixtures/crd-schemas).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { validateCustomResource } from './crd-schemas.js';
import { helm, type HelmResult } from './helm.js';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

/** Beside test/: not through ./platform.js, so rendering loads none of the platform. */
export const CHART = fileURLToPath(new URL('../../charts/agentic-tenancy', import.meta.url));
export const RELEASE = 'agentic-tenancy';
export const SERVICES = ['ingress', 'forwarder', 'waker', 'janitor', 'pool-keeper', 'dashboard'] as const;

export type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: any }; [k: string]: any };

const valueArgs = (valueFiles: string[]): string[] => valueFiles.flatMap((f) => ['-f', path.resolve(CHART, f)]);

/** `helm template agentic-tenancy charts/agentic-tenancy -n <namespace> -f …` (files relative to the chart), as helm answers. */
export function templateChart(valueFiles: string[], namespace = 'tenants', extra: string[] = []): Promise<HelmResult> {
  return helm(['template', RELEASE, CHART, '--namespace', namespace, ...valueArgs(valueFiles), ...extra]);
}

/** `helm lint --strict charts/agentic-tenancy -f …`. */
export function lintChart(valueFiles: string[], namespace = 'tenants'): Promise<HelmResult> {
  return helm(['lint', '--strict', CHART, '--namespace', namespace, ...valueArgs(valueFiles)]);
}

/** The objects `helm template` renders (`extra`: more arguments, e.g. --set); rejects with helm's message when it refuses. */
export async function renderChart(valueFiles: string[], namespace = 'tenants', extra: string[] = []): Promise<Manifest[]> {
  const out = await templateChart(valueFiles, namespace, extra);
  if (out.code !== 0) throw new Error(`helm template exited ${out.code}: ${out.stderr.trim()}`);
  const manifests: Manifest[] = [];
  for (const doc of parseAllDocuments(out.stdout, { uniqueKeys: true })) {
    if (doc.errors.length > 0) throw new Error(`helm template output: ${doc.errors[0]?.message}`);
    const m = doc.toJS() as Manifest | null;
    if (m !== null) manifests.push(m);
  }
  return manifests;
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

/** undefined when valid, else the first problem. */
export function validateManifest(m: Manifest): string | undefined {
  if (!m.apiVersion || !m.kind || !m.metadata?.name) return 'needs apiVersion, kind and metadata.name';
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(m.metadata.name) || m.metadata.name.length > 253) return `invalid name ${m.metadata.name}`;
  const custom = validateCustomResource(m);
  if (custom !== 'unknown') return custom;
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

/** The test's Secret values (the chart refuses to render without them). */
export const TEST_SECRETS = path.join(CHART, '../../test/fixtures/chart-secrets.yaml');

/** Runs `use` with a values file holding these values (removed after). */
export async function withValuesFile<T>(values: unknown, use: (file: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-chart-'));
  try {
    const file = path.join(dir, 'values.yaml');
    writeFileSync(file, stringify(values));
    return await use(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `helm template` with the test secrets plus these values (helm merges them over values.yaml). */
export const renderWith = (values: unknown): Promise<Manifest[]> => withValuesFile(values, (file) => renderChart([TEST_SECRETS, file]));
