/**
 * The Kubernetes objects the Kubernetes runtime creates, as pure functions (no I/O), so every field
 * of a tenant pod can be checked by a unit test.
 *
 * - Every pod starts unbound (`WARM=1`): the shim waits for the platform's signed `POST /claim`,
 *   which carries the tenant, its bot token and its presigned state URLs. Nothing of a tenant's
 *   (token, state URLs, derived secrets) is ever a value in a pod spec, which anyone who can
 *   `get pods` reads; a cold pod differs from a warm one only in its name, labels and priority.
 * - Cold pod `zeroclaw-<id>` (labels `app=zeroclaw,tenant=<id>`), claimed as soon as its shim listens.
 * - Warm pod `warm-pool-<control id>` (label `app=warm-pool`), claimed by a wake later.
 * - Each pod's shim checks control calls against its own secret (lib/runtime/pod-secrets.ts),
 *   delivered by its own Secret `shim-control-<control id>` (secretKeyRef), owned by the pod.
 * - Ownership (`owner`, lib/runtime/pod-owner.ts): with one, every pod, token Secret and the warm
 *   pool Secret names the release's anchor (the chart's Secret `agentic-tenancy-owner` in the same
 *   namespace) in ownerReferences, so the garbage collector deletes them when `helm uninstall`
 *   deletes the anchor. No blockOwnerDeletion (it needs update on the owner's finalizers; nothing
 *   here must hold the anchor's deletion back) and no controller flag (no controller adopts them).
 *
 * Kata nodes (assumption, the Go system's Karpenter NodePool `kata-metal`): nodes that can run the
 * kata RuntimeClass carry the label `katacontainers.io/kata-runtime=true` (kata-deploy sets the same
 * label) and the taint `kata-runtime=true:NoSchedule`, so nothing else lands on the expensive metal
 * nodes. Both are options (`nodeSelector`, `tolerations`) for clusters that label them differently;
 * a RuntimeClass with its own `scheduling` section is also honoured by Kubernetes on top of these.
 */
import type {
  V1Container,
  V1EnvVar,
  V1ObjectMeta,
  V1OwnerReference,
  V1Pod,
  V1PodSecurityContext,
  V1Probe,
  V1ResourceRequirements,
  V1Secret,
  V1Toleration,
} from '@kubernetes/client-node';
import { ValidationError } from '../errors.js';
import { assertTenantId } from '../validate.js';
import { podNameOf } from './runtime.js';

export const LABEL_APP = 'app';
export const LABEL_TENANT = 'tenant';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
/** The Helm release the pods and Secrets belong to (copied from their owner's label; operators: `-l app.kubernetes.io/instance=<release>`). */
export const LABEL_INSTANCE = 'app.kubernetes.io/instance';
export const MANAGED_BY = 'agentic-tenancy';
/** `app` of a tenant pod (the runbook's `kubectl get pods -l app=zeroclaw`). */
export const TENANT_APP = 'zeroclaw';
/** `app` of a warm pool member (`kubectl get pods -l app=warm-pool`). */
export const WARM_APP = 'warm-pool';
export const WARM_POD_PREFIX = 'warm-pool-';
/** Set on a warm pod when a waker claims it for a tenant: ISO time of the claim. */
export const CLAIMED_AT_ANNOTATION = 'agentic-tenancy/claimed-at';
/** The pod's control id (64-bit random hex): names its control Secret and enters its control secret's derivation. */
export const CONTROL_ID_ANNOTATION = 'agentic-tenancy/control-id';
/** On a control Secret: the pod it belongs to (operators: which Secret is whose). */
export const LABEL_POD = 'agentic-tenancy/pod';
/** The key of a pod's control Secret that holds its shim's control secret. */
export const CONTROL_SECRET_KEY = 'SHIM_CONTROL_SECRET';
const CONTROL_ID = /^[0-9a-f]{16}$/;

export const TENANT_SELECTOR = `${LABEL_APP}=${TENANT_APP}`;
export const WARM_SELECTOR = `${LABEL_APP}=${WARM_APP}`;
export const tenantSelector = (tenantId: string): string => `${LABEL_APP}=${TENANT_APP},${LABEL_TENANT}=${tenantId}`;

export const BOT_TOKEN_KEY = 'BOT_TOKEN';
export const WARM_POOL_SECRET_NAME = 'zeroclaw-warm-pool';
/** What `zeroclaw-warm-pool` held before per-pod control secrets; removed from it on upgrade. */
export const LEGACY_WARM_POOL_SECRET_KEY = 'WARM_POOL_SECRET';
/** In the tenant's token Secret: its derived webhook secret (telegram-protocol agents verify deliveries with it). */
export const TENANT_WEBHOOK_SECRET_KEY = 'TENANT_WEBHOOK_SECRET';
/** In `zeroclaw-warm-pool`: the model provider's key every agent is given (AGENT_LLM_API_KEY). */
export const AGENT_LLM_API_KEY_KEY = 'AGENT_LLM_API_KEY';
export const tokenSecretName = (tenantId: string): string => `zeroclaw-${assertTenantId(tenantId)}-token`;

export function assertControlId(value: unknown): string {
  if (typeof value !== 'string' || !CONTROL_ID.test(value)) fail('control id: expected 16 lowercase hex digits');
  return value;
}
export const controlSecretName = (controlId: string): string => `shim-control-${assertControlId(controlId)}`;
export const warmPodName = (controlId: string): string => `${WARM_POD_PREFIX}${assertControlId(controlId)}`;

export const CONTAINER_NAME = 'shim';
export const WORKSPACE_PATH = '/workspace';
export const WORKSPACE_VOLUME = 'workspace';
/** The only other writable place of a tenant pod (its root filesystem is read-only). */
export const TMP_VOLUME = 'tmp';
export const TMP_PATH = '/tmp';

export const DEFAULT_KATA_NODE_SELECTOR: Readonly<Record<string, string>> = Object.freeze({ 'katacontainers.io/kata-runtime': 'true' });
export const DEFAULT_KATA_TOLERATIONS: readonly V1Toleration[] = Object.freeze([
  Object.freeze({ key: 'kata-runtime', operator: 'Equal', value: 'true', effect: 'NoSchedule' }),
]);
/** The Go system's sizing of a ZeroClaw pod; Kata adds the VM overhead of its RuntimeClass. */
export const DEFAULT_RESOURCES: Readonly<PodResources> = Object.freeze({
  requests: Object.freeze({ cpu: '100m', memory: '384Mi' }),
  limits: Object.freeze({ cpu: '500m', memory: '512Mi' }),
});
/** A non-root uid (distroless `nonroot`); the image must not need root. */
export const DEFAULT_RUN_AS_USER = 65_532;

/** Variables the runtime sets itself; `extraEnv` may not override them. */
export const RESERVED_ENV: ReadonlySet<string> = new Set([
  'TENANT_ID', 'BOT_TOKEN', 'SHIM_PORT', 'SHIM_HOST', 'AGENT_PORT', 'WORKSPACE', 'STATE_GET_URL', 'STATE_PUT_URL',
  'WARM', 'WARM_POOL_SECRET', 'STATE_LEGACY_GET_URL', 'TENANT_WEBHOOK_SECRET', 'AGENT_TOKEN_SHA256', 'AGENT_LLM_API_KEY',
]);

export interface PodResources {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

export interface PodSpecOptions {
  namespace: string;
  image: string;
  runtimeClassName: string;
  shimPort: number;
  agentPort: number;
  priorityClassName: string;
  warmPriorityClassName: string;
  terminationGracePeriodSeconds: number;
  resources: PodResources;
  nodeSelector: Record<string, string>;
  tolerations: V1Toleration[];
  runAsUser: number;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never' | undefined;
  serviceAccountName?: string | undefined;
  /** emptyDir size limit of /workspace, e.g. `2Gi`; none when unset. */
  workspaceSizeLimit?: string | undefined;
  /** Extra plain variables for the shim and agent (e.g. LOG_LEVEL, CHECKPOINT_INTERVAL_S). Not for secrets. */
  extraEnv?: Record<string, string> | undefined;
  /** Owner of every pod and tenant Secret (the release's anchor in this namespace; lib/runtime/pod-owner.ts). */
  owner?: V1OwnerReference | undefined;
  /** `app.kubernetes.io/instance` of every pod and tenant Secret: the release's name. */
  instance?: string | undefined;
}

/** What makes an object the release's: its owner and its release label (both optional). */
export type Ownership = Pick<PodSpecOptions, 'owner' | 'instance'>;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

function fail(msg: string): never {
  throw new ValidationError(msg);
}

export function assertDnsLabel(what: string, value: unknown): string {
  if (typeof value !== 'string' || !DNS_LABEL.test(value)) fail(`${what}: expected a DNS label (lowercase letters, digits, '-', at most 63)`);
  return value;
}

export function assertDnsSubdomain(what: string, value: unknown): string {
  if (typeof value !== 'string' || !DNS_SUBDOMAIN.test(value)) fail(`${what}: expected a Kubernetes object name (lowercase letters, digits, '-', '.')`);
  return value;
}

export function assertPort(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65_535) fail(`${what}: expected a port 1-65535`);
  return value;
}

function assertResources(value: unknown): PodResources {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('resources: expected { requests?, limits? }');
  const out: PodResources = {};
  for (const [kind, list] of Object.entries(value as Record<string, unknown>)) {
    if (kind !== 'requests' && kind !== 'limits') fail(`resources: unknown field ${JSON.stringify(kind.slice(0, 30))}`);
    if (list === undefined) continue;
    if (list === null || typeof list !== 'object' || Array.isArray(list)) fail(`resources.${kind}: expected an object of quantities`);
    const copy: Record<string, string> = {};
    for (const [name, q] of Object.entries(list as Record<string, unknown>)) {
      if (!LABEL_KEY.test(name)) fail(`resources.${kind}: invalid resource name ${JSON.stringify(name.slice(0, 40))}`);
      if (typeof q !== 'string' || !QUANTITY.test(q)) fail(`resources.${kind}.${name}: expected a quantity such as 500m or 512Mi`);
      copy[name] = q;
    }
    out[kind] = copy;
  }
  return out;
}

/**
 * The owner reference as the runtime writes it: exactly apiVersion, kind, name, uid (no
 * blockOwnerDeletion, no controller, whatever was passed). A namespaced owner must be in the
 * dependent's namespace (the API does not check; the garbage collector treats one elsewhere as
 * absent and deletes the dependent), which pod-owner.ts guarantees by reading it there.
 */
export function assertOwnerReference(value: unknown): V1OwnerReference {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('owner: expected { apiVersion, kind, name, uid }');
  const o = value as Record<string, unknown>;
  if (typeof o.apiVersion !== 'string' || !/^([a-z0-9.-]+\/)?v[0-9]+((alpha|beta)[0-9]+)?$/.test(o.apiVersion)) fail('owner.apiVersion: expected e.g. v1');
  if (typeof o.kind !== 'string' || !/^[A-Z][A-Za-z0-9]{0,62}$/.test(o.kind)) fail('owner.kind: expected a kind such as Secret');
  const name = assertDnsSubdomain('owner.name', o.name);
  if (typeof o.uid !== 'string' || !/^[0-9a-f-]{8,64}$/i.test(o.uid)) fail('owner.uid: expected the owner\'s uid');
  return { apiVersion: o.apiVersion, kind: o.kind, name, uid: o.uid };
}

function assertOwnership(o: Ownership): Ownership {
  const out: Ownership = {};
  if (o.owner !== undefined) out.owner = assertOwnerReference(o.owner);
  if (o.instance !== undefined) {
    if (typeof o.instance !== 'string' || o.instance === '' || !LABEL_VALUE.test(o.instance)) fail('instance: expected a label value (the Helm release name)');
    out.instance = o.instance;
  }
  return out;
}

/** labels + ownerReferences of an object of the release (validated). */
function ownedMeta(o: Ownership, labels: Record<string, string>): Pick<V1ObjectMeta, 'labels' | 'ownerReferences'> {
  const { owner, instance } = assertOwnership(o);
  const meta: Pick<V1ObjectMeta, 'labels' | 'ownerReferences'> = {
    labels: { ...labels, [LABEL_MANAGED_BY]: MANAGED_BY, ...(instance !== undefined ? { [LABEL_INSTANCE]: instance } : {}) },
  };
  if (owner !== undefined) meta.ownerReferences = [owner];
  return meta;
}

/** Checks every option once (the runtime calls this at construction); returns a normalised copy. */
export function validatePodSpecOptions(o: PodSpecOptions): PodSpecOptions {
  if (o === null || typeof o !== 'object') fail('pod spec options: expected an object');
  assertDnsLabel('namespace', o.namespace);
  if (typeof o.image !== 'string' || o.image === '' || /\s/.test(o.image) || o.image.length > 512) fail('image: expected an image reference such as zeroclaw:latest');
  assertDnsSubdomain('runtimeClassName', o.runtimeClassName);
  assertPort('shimPort', o.shimPort);
  assertPort('agentPort', o.agentPort);
  if (o.shimPort === o.agentPort) fail(`agentPort must differ from shimPort (${o.shimPort})`);
  assertDnsSubdomain('priorityClassName', o.priorityClassName);
  assertDnsSubdomain('warmPriorityClassName', o.warmPriorityClassName);
  const g = o.terminationGracePeriodSeconds;
  if (typeof g !== 'number' || !Number.isInteger(g) || g < 0 || g > 86_400) fail('terminationGracePeriodSeconds: expected a whole number of seconds 0-86400');
  const resources = assertResources(o.resources);
  if (o.nodeSelector === null || typeof o.nodeSelector !== 'object' || Array.isArray(o.nodeSelector)) fail('nodeSelector: expected an object of labels');
  for (const [k, v] of Object.entries(o.nodeSelector)) {
    if (!LABEL_KEY.test(k) || typeof v !== 'string' || !LABEL_VALUE.test(v)) fail(`nodeSelector: invalid label ${JSON.stringify(k.slice(0, 60))}`);
  }
  if (!Array.isArray(o.tolerations)) fail('tolerations: expected an array');
  for (const t of o.tolerations) {
    if (t === null || typeof t !== 'object') fail('tolerations: expected objects');
    if (t.operator !== undefined && t.operator !== 'Exists' && t.operator !== 'Equal') fail('tolerations: operator must be Exists or Equal');
    if (t.effect !== undefined && !['NoSchedule', 'PreferNoSchedule', 'NoExecute'].includes(t.effect)) fail('tolerations: effect must be NoSchedule, PreferNoSchedule or NoExecute');
  }
  if (typeof o.runAsUser !== 'number' || !Number.isInteger(o.runAsUser) || o.runAsUser < 1 || o.runAsUser > 2_147_483_647) fail('runAsUser: expected a non-root uid (1 or more)');
  if (o.imagePullPolicy !== undefined && !['Always', 'IfNotPresent', 'Never'].includes(o.imagePullPolicy)) fail('imagePullPolicy: expected Always, IfNotPresent or Never');
  if (o.serviceAccountName !== undefined) assertDnsSubdomain('serviceAccountName', o.serviceAccountName);
  if (o.workspaceSizeLimit !== undefined && (typeof o.workspaceSizeLimit !== 'string' || !QUANTITY.test(o.workspaceSizeLimit))) fail('workspaceSizeLimit: expected a quantity such as 2Gi');
  const extraEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.extraEnv ?? {})) {
    if (!ENV_NAME.test(k)) fail(`extraEnv: invalid variable name ${JSON.stringify(k.slice(0, 40))}`);
    if (RESERVED_ENV.has(k)) fail(`extraEnv: ${k} is set by the runtime`);
    if (typeof v !== 'string') fail(`extraEnv.${k}: expected a string`);
    extraEnv[k] = v;
  }
  const { owner, instance, ...rest } = o;
  return {
    ...rest,
    resources,
    nodeSelector: { ...o.nodeSelector },
    tolerations: o.tolerations.map((t) => ({ ...t })),
    extraEnv,
    ...assertOwnership({ owner, instance }),
  };
}

function resourcesOf(r: PodResources): V1ResourceRequirements {
  const out: V1ResourceRequirements = {};
  if (r.requests && Object.keys(r.requests).length > 0) out.requests = { ...r.requests };
  if (r.limits && Object.keys(r.limits).length > 0) out.limits = { ...r.limits };
  return out;
}

function podSecurityContext(o: PodSpecOptions): V1PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: o.runAsUser,
    runAsGroup: o.runAsUser,
    // emptyDir /workspace group-writable for the non-root user.
    fsGroup: o.runAsUser,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

function probe(path: string, port: number): V1Probe {
  // Fast: a wake waits for this; readiness never restarts anything.
  return { httpGet: { path, port, scheme: 'HTTP' }, periodSeconds: 1, timeoutSeconds: 2, failureThreshold: 3, successThreshold: 1 };
}

function container(o: PodSpecOptions, env: V1EnvVar[], readinessPath: string): V1Container {
  const c: V1Container = {
    name: CONTAINER_NAME,
    image: o.image,
    ports: [
      { name: 'shim', containerPort: o.shimPort, protocol: 'TCP' },
      { name: 'agent', containerPort: o.agentPort, protocol: 'TCP' },
    ],
    env,
    readinessProbe: probe(readinessPath, o.shimPort),
    resources: resourcesOf(o.resources),
    securityContext: {
      allowPrivilegeEscalation: false,
      // Nothing the agent writes outlives the pod except through its checkpointed workspace.
      readOnlyRootFilesystem: true,
      privileged: false,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [{ name: WORKSPACE_VOLUME, mountPath: WORKSPACE_PATH }, { name: TMP_VOLUME, mountPath: TMP_PATH }],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (o.imagePullPolicy) c.imagePullPolicy = o.imagePullPolicy;
  return c;
}

function baseEnv(o: PodSpecOptions, controlId: string): V1EnvVar[] {
  return [
    // Unbound until the platform's claim (the same path for cold and warm pods).
    { name: 'WARM', value: '1' },
    { name: 'SHIM_PORT', value: String(o.shimPort) },
    { name: 'AGENT_PORT', value: String(o.agentPort) },
    { name: 'WORKSPACE', value: WORKSPACE_PATH },
    // This pod's own control secret (the shim's name for it is WARM_POOL_SECRET), by reference only.
    { name: 'WARM_POOL_SECRET', valueFrom: { secretKeyRef: { name: controlSecretName(controlId), key: CONTROL_SECRET_KEY, optional: false } } },
    // The model provider's key, by reference only (absent when the platform was given none).
    { name: 'AGENT_LLM_API_KEY', valueFrom: { secretKeyRef: { name: WARM_POOL_SECRET_NAME, key: AGENT_LLM_API_KEY_KEY, optional: true } } },
  ];
}

function extraEnvOf(o: PodSpecOptions): V1EnvVar[] {
  return Object.entries(o.extraEnv ?? {}).map(([name, value]) => ({ name, value }));
}

function podBody(o: PodSpecOptions, priorityClassName: string, c: V1Container): NonNullable<V1Pod['spec']> {
  const spec: NonNullable<V1Pod['spec']> = {
    runtimeClassName: o.runtimeClassName,
    priorityClassName,
    nodeSelector: { ...o.nodeSelector },
    tolerations: o.tolerations.map((t) => ({ ...t })),
    restartPolicy: 'Never',
    terminationGracePeriodSeconds: o.terminationGracePeriodSeconds,
    // An untrusted agent gets no API credentials and no view of the cluster's services.
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    securityContext: podSecurityContext(o),
    containers: [c],
    volumes: [
      { name: WORKSPACE_VOLUME, emptyDir: o.workspaceSizeLimit ? { sizeLimit: o.workspaceSizeLimit } : {} },
      { name: TMP_VOLUME, emptyDir: { sizeLimit: '256Mi' } },
    ],
  };
  if (o.serviceAccountName) spec.serviceAccountName = o.serviceAccountName;
  return spec;
}

/**
 * Both pods' readiness probe is the shim's `/healthz` (listening, claimable): its `/readyz` only
 * answers 200 once an agent runs, which it does only after the claim. After a claim the agent's
 * readiness is what the claim's 200 answer says (and the runtime's `find` asks `/readyz`).
 */
function unboundPod(o: PodSpecOptions, name: string, controlId: string, labels: Record<string, string>, priorityClassName: string): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: o.namespace,
      ...ownedMeta(o, labels),
      annotations: { [CONTROL_ID_ANNOTATION]: assertControlId(controlId) },
    },
    spec: podBody(o, priorityClassName, container(o, [...baseEnv(o, controlId), ...extraEnvOf(o)], '/healthz')),
  };
}

/** The cold pod `zeroclaw-<id>`: unbound like a warm one, claimed for its tenant as soon as it listens. */
export function coldPodManifest(o: PodSpecOptions, tenantId: string, controlId: string): V1Pod {
  const id = assertTenantId(tenantId);
  return unboundPod(o, podNameOf(id), controlId, { [LABEL_APP]: TENANT_APP, [LABEL_TENANT]: id }, o.priorityClassName);
}

/** A warm pool member `warm-pool-<control id>`: its name is known before its spec (its Secret is named after the same id). */
export function warmPodManifest(o: PodSpecOptions, controlId: string): V1Pod {
  return unboundPod(o, warmPodName(controlId), controlId, { [LABEL_APP]: WARM_APP }, o.warmPriorityClassName);
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** `zeroclaw-<id>-token` with the bot token under BOT_TOKEN (base64, as Secret data is); owned like the pods. */
export function tokenSecretManifest(namespace: string, tenantId: string, botToken: string, webhookSecret?: string, ownership: Ownership = {}): V1Secret {
  const id = assertTenantId(tenantId);
  if (typeof botToken !== 'string' || botToken === '') fail('bot token: expected a non-empty string');
  const data: Record<string, string> = { [BOT_TOKEN_KEY]: b64(botToken) };
  if (webhookSecret !== undefined) data[TENANT_WEBHOOK_SECRET_KEY] = b64(webhookSecret);
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name: tokenSecretName(id),
      namespace: assertDnsLabel('namespace', namespace),
      ...ownedMeta(ownership, { [LABEL_TENANT]: id }),
    },
    data,
  };
}

/**
 * `zeroclaw-warm-pool`: what every pod may hold, the model provider's key (empty without one). No
 * control secret: each pod has its own (controlSecretManifest), the master stays with the platform.
 * Owned like the pods.
 */
export function warmPoolSecretManifest(namespace: string, llmApiKey?: string, ownership: Ownership = {}): V1Secret {
  const data: Record<string, string> = {};
  if (llmApiKey !== undefined) data[AGENT_LLM_API_KEY_KEY] = b64(llmApiKey);
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name: WARM_POOL_SECRET_NAME,
      namespace: assertDnsLabel('namespace', namespace),
      ...ownedMeta(ownership, {}),
    },
    data,
  };
}

/**
 * `shim-control-<control id>`: one pod's control secret, owned by that pod (ownerReferences: the
 * garbage collector removes it with the pod, however the pod ends). Created right after the pod
 * (its uid is needed); the kubelet starts the container once the Secret exists.
 */
export function controlSecretManifest(namespace: string, pod: { name: string; uid: string }, controlId: string, secret: string): V1Secret {
  if (typeof secret !== 'string' || secret.length < 16) fail('control secret: expected at least 16 characters');
  if (typeof pod.uid !== 'string' || pod.uid === '') fail('control secret: the owning pod\'s uid is required');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name: controlSecretName(controlId),
      namespace: assertDnsLabel('namespace', namespace),
      labels: { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_POD]: assertDnsSubdomain('pod name', pod.name) },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: pod.name, uid: pod.uid }],
    },
    data: { [CONTROL_SECRET_KEY]: b64(secret) },
  };
}

/** The JSON merge patch that binds a warm pod to a tenant; the resourceVersion makes it conditional. */
export function claimPatch(tenantId: string, resourceVersion: string, claimedAt: Date): Record<string, unknown> {
  const id = assertTenantId(tenantId);
  if (typeof resourceVersion !== 'string' || resourceVersion === '') fail('claim patch: resourceVersion is required (optimistic concurrency)');
  return {
    metadata: {
      resourceVersion,
      labels: { [LABEL_APP]: TENANT_APP, [LABEL_TENANT]: id },
      annotations: { [CLAIMED_AT_ANNOTATION]: claimedAt.toISOString() },
    },
  };
}

const sameOwners = (a: V1OwnerReference[] | undefined, b: V1OwnerReference[]): boolean =>
  (a ?? []).length === b.length && b.every((r, i) => {
    const x = a?.[i];
    return x !== undefined && x.apiVersion === r.apiVersion && x.kind === r.kind && x.name === r.name && x.uid === r.uid;
  });

/**
 * The JSON merge patch that makes an existing Secret what `manifest` says (the runtime's upsert
 * after a 409): its data keys (with `exact`, no other keys: null removes one), its labels and,
 * when the manifest has one, its owner (a merge patch replaces the list: a Secret from before the
 * owner, or of an older anchor, is adopted). Undefined when it already is all that (no write).
 */
export function secretUpdatePatch(manifest: V1Secret, existing: V1Secret, options: { exact?: boolean } = {}): Record<string, unknown> | undefined {
  const data = manifest.data ?? {};
  const extra = options.exact ? Object.keys(existing.data ?? {}).filter((k) => !(k in data)) : [];
  const labels = manifest.metadata?.labels ?? {};
  const owners = manifest.metadata?.ownerReferences;
  const current = extra.length === 0
    && Object.entries(data).every(([k, v]) => existing.data?.[k] === v)
    && Object.entries(labels).every(([k, v]) => existing.metadata?.labels?.[k] === v)
    && (owners === undefined || sameOwners(existing.metadata?.ownerReferences, owners));
  if (current) return undefined;
  return {
    metadata: { labels: { ...labels }, ...(owners !== undefined ? { ownerReferences: owners.map((r) => ({ ...r })) } : {}) },
    data: { ...data, ...Object.fromEntries(extra.map((k) => [k, null])) },
  };
}
