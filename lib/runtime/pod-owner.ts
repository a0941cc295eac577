/**
 * The owner of every tenant pod, warm pool member and tenant Secret: the release's anchor, a Secret
 * the chart creates in the tenants namespace (`agentic-tenancy-owner`, K8S_POD_OWNER; type
 * POD_OWNER_SECRET_TYPE, no data, immutable). `helm uninstall` deletes it, and the garbage collector
 * then deletes everything that names it in ownerReferences (pods gracefully, with their own grace
 * period; each pod's control Secret after its pod), in whichever namespace layout: the anchor is
 * always in the tenants namespace, because an owner reference cannot cross namespaces.
 *
 * Why a Secret and not a ConfigMap: the runtime's Roles already reach Secrets there (the pool-keeper
 * gets `get` on this one name only), so no new resource enters any Role. Why no finalizer: a
 * finalizer that only a platform pod removes blocks the namespace's deletion for ever once that pod
 * is gone; the garbage collector needs nobody.
 *
 * Read once when the runtime starts: its uid goes into every object created afterwards. A pod
 * created after the anchor was deleted (a pool-keeper still running during an uninstall) names a
 * uid that no longer exists: the collector deletes it too. A missing anchor stops the service with
 * one line (ConfigError K8S_POD_OWNER); so does an anchor being deleted. The read goes through the
 * runtime's call policy (kubernetes/kube-api.ts: a timeout per attempt, 429/5xx/connection errors
 * retried with backoff), so a slow or hung API server at start delays the first pod, never hangs it.
 */
import type { CoreV1Api, V1OwnerReference, V1Secret } from '@kubernetes/client-node';
import { ConfigError, RuntimeError } from '../errors.js';
import { apiStatus, describeKubeError } from './kube-client.js';
import { KubeApi } from './kubernetes/kube-api.js';
import { assertDnsLabel, assertDnsSubdomain, assertOwnerReference, LABEL_INSTANCE } from './pod-spec.js';

/** The anchor's name in the chart (templates/pod-owner.yaml); K8S_POD_OWNER names it. */
export const POD_OWNER_SECRET_NAME = 'agentic-tenancy-owner';
/** The anchor's Secret type: it holds nothing (`kubectl get secrets` says what it is). */
export const POD_OWNER_SECRET_TYPE = 'agentic-tenancy.io/owner';

/** What the runtime puts on every pod and tenant Secret (PodSpecOptions `owner`, `instance`). */
export interface PodOwnership {
  owner: V1OwnerReference;
  /** The Helm release (the anchor's `app.kubernetes.io/instance`), when it has one. */
  instance?: string;
}

/**
 * The ownership of the release's objects from its anchor `name` in `namespace` (the tenants
 * namespace): its owner reference and the release name (its `app.kubernetes.io/instance` label).
 * Through the call policy when given the runtime's KubeApi; a bare client (tests) calls as it is.
 */
export async function readPodOwner(client: KubeApi | CoreV1Api, namespace: string, name: string): Promise<PodOwnership> {
  assertDnsLabel('namespace', namespace);
  assertDnsSubdomain('K8S_POD_OWNER', name);
  const where = `Secret ${namespace}/${name}`;
  let secret: V1Secret;
  try {
    secret = client instanceof KubeApi
      ? await client.call({ verb: 'get', object: `secret ${name}` }, (opts) => client.core.readNamespacedSecret({ name, namespace }, opts))
      : await client.readNamespacedSecret({ name, namespace });
  } catch (err) {
    // The policy's refusal (403) and exhausted retries are RuntimeErrors around the API's answer.
    const answer = err instanceof RuntimeError && err.cause !== undefined ? err.cause : err;
    const status = apiStatus(answer);
    if (status === 404) {
      throw new ConfigError('K8S_POD_OWNER', `${where} not found: the chart creates it (templates/pod-owner.yaml); without it tenant pods would outlive helm uninstall (unset K8S_POD_OWNER to run without an owner)`);
    }
    if (status === 403 || status === 401) {
      throw new RuntimeError(`cannot read the pod owner ${where} (get secrets: ${describeKubeError(answer)}); the runtime's Role must grant get on it`, { cause: err, reason: 'api_refused' });
    }
    if (err instanceof RuntimeError) throw new RuntimeError(`cannot read the pod owner ${where}: ${err.message}`, { cause: err, reason: err.reason ?? 'api_unavailable' });
    throw new RuntimeError(`cannot read the pod owner ${where}: ${describeKubeError(err)}`, { cause: err, reason: 'api_unavailable' });
  }
  if (secret.type !== POD_OWNER_SECRET_TYPE) {
    throw new ConfigError('K8S_POD_OWNER', `${where} is not the chart's pod owner (type ${JSON.stringify(String(secret.type ?? '').slice(0, 60))}, expected ${POD_OWNER_SECRET_TYPE})`);
  }
  if (secret.metadata?.deletionTimestamp !== undefined && secret.metadata.deletionTimestamp !== null) {
    throw new ConfigError('K8S_POD_OWNER', `${where} is being deleted (helm uninstall?): pods owned by it would be deleted with it`);
  }
  const owner = assertOwnerReference({ apiVersion: 'v1', kind: 'Secret', name, uid: secret.metadata?.uid });
  const instance = secret.metadata?.labels?.[LABEL_INSTANCE];
  return instance !== undefined && instance !== '' ? { owner, instance } : { owner };
}

/**
 * What the runtime puts on every object it creates, read once: the anchor's ownership when
 * K8S_POD_OWNER names one, none when it is unset (local clusters, tests without the chart). A read
 * that failed is tried again on the next call; one that succeeded is kept for the process's life
 * (a re-created anchor is another owner: restart the services, README "Uninstall and cleanup").
 */
export function podOwnership(client: KubeApi | CoreV1Api, namespace: string, name: string | undefined): () => Promise<PodOwnership | Record<string, never>> {
  if (name === undefined) return () => Promise.resolve({});
  let read: Promise<PodOwnership> | undefined;
  return () => {
    read ??= readPodOwner(client, namespace, name).catch((err: unknown) => {
      read = undefined;
      throw err;
    });
    return read;
  };
}
