/**
 * Per-pod control secrets on Kubernetes. Each tenant pod's shim checks the platform's control calls
 * (`POST /claim`, `/state-urls`, `/checkpoint`) against a secret of its own,
 * HMAC(WARM_POOL_SECRET, `shim-control:<pod name>/<control id>`), where the control id is 64 random
 * bits chosen for that pod (annotation CONTROL_ID_ANNOTATION). The agent can read its shim's
 * environment (/proc/1/environ); what it finds there opens that one pod's shim, already its own,
 * and no other: not another tenant's pod, not a later pod of the same tenant (new control id).
 *
 * Delivery: the Secret `shim-control-<control id>`, created right after the pod with an
 * ownerReference to it (the pod's uid exists only then), so the garbage collector removes it with
 * the pod however the pod ends. Until it exists the kubelet holds the container
 * (CreateContainerConfigError, retried); the pod's sandbox start takes longer than the one API call
 * in between. The runtime never reads these Secrets: it derives a pod's secret from the master and
 * the pod object it already has, so no account needs `get` on them.
 */
import { randomBytes } from 'node:crypto';
import type { ConfigurationOptions, CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { shimControlSecret } from './shim-auth.js';
import { assertControlId, CONTROL_ID_ANNOTATION, controlSecretManifest } from './pod-spec.js';
import { isConflict } from './kube-client.js';
import { KubeApi, type CallContext, type CallTarget } from './kubernetes/kube-api.js';

/** A fresh control id: 64 random bits, like the local runtime's warm member names. */
export function newControlId(): string {
  return randomBytes(8).toString('hex');
}

/** The control secret of the pod `podName` with control id `controlId`. */
export function podControlSecret(master: string, podName: string, controlId: string): string {
  return shimControlSecret(master, `${podName}/${assertControlId(controlId)}`);
}

/**
 * The secret to sign a control call to this pod with: its own, or, for a pod started before per-pod
 * secrets (no control id; its shim was given the master itself), the master.
 */
export function controlSecretOf(master: string, pod: V1Pod): string {
  const id = pod.metadata?.annotations?.[CONTROL_ID_ANNOTATION];
  if (id === undefined) return master;
  return podControlSecret(master, pod.metadata?.name ?? '', id);
}

/** Thrown when the pod was created but its control Secret was not (the pod has been removed again). */
export class ControlSecretError extends Error {
  constructor(readonly pod: string, readonly apiError: unknown) {
    super(`control secret of pod ${pod} not created`);
  }
}

/**
 * Creates the pod `build(controlId)` returns, then its control Secret owned by it (through the
 * runtime's API call policy). If the Secret cannot be created the pod is deleted (it could never
 * start) and a ControlSecretError thrown; a failed pod create throws the API's error as it is (the
 * caller handles 409). A 409 on the pod whose control id is ours, or on the Secret, is this call's
 * own earlier create, carried out although its answer was lost and retried: it is there.
 */
export async function createPodWithControlSecret(client: KubeApi | CoreV1Api, namespace: string, master: string, build: (controlId: string) => V1Pod, ctx?: CallContext): Promise<V1Pod> {
  // Through the call policy when given the runtime's KubeApi; a bare client (tests) calls as it is.
  const run = <T>(target: CallTarget, fn: (core: CoreV1Api, opts: ConfigurationOptions | undefined) => Promise<T>): Promise<T> =>
    client instanceof KubeApi ? client.call(target, (opts) => fn(client.core, opts), ctx) : fn(client, undefined);
  const controlId = newControlId();
  const body = build(controlId);
  const podName = body.metadata?.name ?? '?';
  let pod: V1Pod;
  try {
    pod = await run({ verb: 'create', object: `pod ${podName}` }, (core, opts) => core.createNamespacedPod({ namespace, body }, opts));
  } catch (err) {
    if (!isConflict(err)) throw err;
    // Our own create, carried out but its answer lost (timed out) and retried: the pod there has our control id.
    const existing = await run({ verb: 'get', object: `pod ${podName}` }, (core, opts) => core.readNamespacedPod({ name: podName, namespace }, opts)).catch(() => undefined);
    if (existing?.metadata?.annotations?.[CONTROL_ID_ANNOTATION] !== controlId) throw err;
    pod = existing;
  }
  const name = pod.metadata?.name ?? '';
  const uid = pod.metadata?.uid ?? '';
  try {
    const secret = controlSecretManifest(namespace, { name, uid }, controlId, podControlSecret(master, name, controlId));
    await run({ verb: 'create', object: `secret ${secret.metadata?.name ?? '?'}` }, (core, opts) => core.createNamespacedSecret({ namespace, body: secret }, opts))
      .catch((err: unknown) => {
        if (!isConflict(err)) throw err;
      });
  } catch (err) {
    await run({ verb: 'delete', object: `pod ${name}` }, (core, opts) => core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0, body: { gracePeriodSeconds: 0, preconditions: { uid } } }, opts))
      .catch(() => undefined);
    throw new ControlSecretError(name, err);
  }
  return pod;
}
