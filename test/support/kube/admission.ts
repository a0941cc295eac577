/**
 * The admission chain and authorizer of the stand-in, for what refuses a tenant pod in
 * production, with the real plugins' messages (all `admission.NewForbidden`: 403 Forbidden,
 * `pods "<name>" is forbidden: <why>`, details {name, kind}):
 * - RBAC: `pods is forbidden: User "<user>" cannot create resource "pods" in API group "" in the
 *   namespace "<ns>"` (the name appears when the request has one);
 * - Priority: `no PriorityClass with name <n> was found`;
 * - RuntimeClass: `pod rejected: RuntimeClass "<n>" not found`;
 * - Pod Security (namespace label pod-security.kubernetes.io/enforce=restricted|baseline):
 *   `violates PodSecurity "restricted:latest": <check> (<detail>), ...`;
 * - ResourceQuota (pods count): `exceeded quota: <q>, requested: pods=1, used: pods=N, limited: pods=N`.
 * The classes, quotas and denials are behaviour knobs (behaviour.ts), not API objects.
 */
import { failure, RESOURCES, type ApiError, type KubeObject, type ResourceType } from './objects.js';
import type { Behaviour, Verb } from './behaviour.js';
import type { ObjectStore } from './store.js';

const NAMESPACES = RESOURCES.find((r) => r.resource === 'namespaces') as ResourceType;
const PODS = RESOURCES.find((r) => r.resource === 'pods') as ResourceType;
const rec = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : {});

export const POD_SECURITY_LABEL = 'pod-security.kubernetes.io/enforce';

function forbidden(rt: ResourceType, name: string | undefined, why: string): ApiError {
  const what = rt.group === '' ? rt.resource : `${rt.resource}.${rt.group}`;
  const subject = name ? `${what} "${name}"` : what;
  return failure(403, 'Forbidden', `${subject} is forbidden: ${why}`, {
    ...(name ? { name } : {}), ...(rt.group === '' ? {} : { group: rt.group }), kind: rt.resource,
  });
}

/** The authorizer: a denied (verb, resource) is 403 before anything else is looked at. */
export function authorize(b: Behaviour, verb: Verb, rt: ResourceType, namespace: string | undefined, name: string | undefined): void {
  const denied = b.admission.deny.some((d) => (d.verb === '*' || d.verb === verb) && d.resource === rt.resource
    && (d.namespace === undefined || d.namespace === namespace));
  if (!denied) return;
  const scope = namespace ? ` in the namespace "${namespace}"` : ' at the cluster scope';
  throw forbidden(rt, name, `User "${b.admission.user}" cannot ${verb} resource "${rt.resource}" in API group "${rt.group}"${scope}`);
}

/** Pod Security Standards checks of the levels the platform's namespace can enforce. */
function podSecurityViolations(level: string, pod: KubeObject): string[] {
  if (level !== 'restricted' && level !== 'baseline') return [];
  const spec = rec(pod.spec);
  const podSc = rec(spec.securityContext);
  const containers = [...(Array.isArray(spec.initContainers) ? spec.initContainers : []), ...(Array.isArray(spec.containers) ? spec.containers : [])].map(rec);
  const out: string[] = [];
  const names = (pred: (c: Record<string, unknown>, sc: Record<string, unknown>) => boolean): string[] =>
    containers.filter((c) => pred(c, rec(c.securityContext))).map((c) => String(c.name ?? ''));
  const list = (cs: string[]): string => cs.map((c) => `"${c}"`).join(', ');
  const plural = (cs: string[]): string => (cs.length === 1 ? 'container' : 'containers');
  const privileged = names((_c, sc) => sc.privileged === true);
  if (privileged.length > 0) out.push(`privileged (${plural(privileged)} ${list(privileged)} must not set securityContext.privileged=true)`);
  if (spec.hostNetwork === true || spec.hostPID === true || spec.hostIPC === true) out.push('host namespaces (hostNetwork=true)');
  const hostPaths = (Array.isArray(spec.volumes) ? spec.volumes : []).map(rec).filter((v) => v.hostPath !== undefined).map((v) => `"${String(v.name)}"`);
  if (hostPaths.length > 0) out.push(`hostPath volumes (volume ${hostPaths.join(', ')})`);
  if (level === 'baseline') return out;
  const escalation = names((_c, sc) => sc.allowPrivilegeEscalation !== false);
  if (escalation.length > 0) out.push(`allowPrivilegeEscalation != false (${plural(escalation)} ${list(escalation)} must set securityContext.allowPrivilegeEscalation=false)`);
  const caps = names((_c, sc) => !(Array.isArray(rec(sc.capabilities).drop) && (rec(sc.capabilities).drop as unknown[]).includes('ALL')));
  if (caps.length > 0) out.push(`unrestricted capabilities (${plural(caps)} ${list(caps)} must set securityContext.capabilities.drop=["ALL"])`);
  const nonRoot = names((_c, sc) => sc.runAsNonRoot !== true && !(podSc.runAsNonRoot === true && sc.runAsNonRoot !== false));
  if (nonRoot.length > 0) out.push(`runAsNonRoot != true (pod or ${plural(nonRoot)} ${list(nonRoot)} must set securityContext.runAsNonRoot=true)`);
  const seccompOk = (t: unknown): boolean => t === 'RuntimeDefault' || t === 'Localhost';
  const seccomp = names((_c, sc) => !seccompOk(rec(sc.seccompProfile).type) && !(seccompOk(rec(podSc.seccompProfile).type) && rec(sc.seccompProfile).type === undefined));
  if (seccomp.length > 0) out.push(`seccompProfile (pod or ${plural(seccomp)} ${list(seccomp)} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`);
  return out;
}

/** Admission of a pod create, in the apiserver's plugin order; throws the first refusal. */
export function admitPod(b: Behaviour, store: ObjectStore, ns: string, pod: KubeObject): void {
  const name = typeof pod.metadata.name === 'string' && pod.metadata.name !== '' ? pod.metadata.name : undefined;
  const spec = rec(pod.spec);
  const priorityClass = typeof spec.priorityClassName === 'string' ? spec.priorityClassName : '';
  if (priorityClass !== '' && b.admission.priorityClasses !== undefined && !b.admission.priorityClasses.includes(priorityClass)
    && priorityClass !== 'system-cluster-critical' && priorityClass !== 'system-node-critical') {
    throw forbidden(PODS, name, `no PriorityClass with name ${priorityClass} was found`);
  }
  const runtimeClass = typeof spec.runtimeClassName === 'string' ? spec.runtimeClassName : '';
  if (runtimeClass !== '' && b.admission.runtimeClasses !== undefined && !b.admission.runtimeClasses.includes(runtimeClass)) {
    throw forbidden(PODS, name, `pod rejected: RuntimeClass "${runtimeClass}" not found`);
  }
  const level = store.find(NAMESPACES, '', ns)?.metadata.labels?.[POD_SECURITY_LABEL];
  if (level !== undefined) {
    const violations = podSecurityViolations(level, pod);
    if (violations.length > 0) throw forbidden(PODS, name, `violates PodSecurity "${level}:latest": ${violations.join(', ')}`);
  }
  const quota = b.admission.podQuota[ns];
  if (quota !== undefined) {
    const used = store.list(PODS, ns).items.filter((p) => !['Succeeded', 'Failed'].includes(String(rec(p.status).phase))).length;
    if (used + 1 > quota.pods) {
      throw forbidden(PODS, name, `exceeded quota: ${quota.name}, requested: pods=1, used: pods=${used}, limited: pods=${quota.pods}`);
    }
  }
}
