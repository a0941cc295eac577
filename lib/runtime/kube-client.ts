/**
 * A thin layer over @kubernetes/client-node 1.x for the Kubernetes runtime: API error codes and
 * safe messages (an ApiException's own message embeds the whole response body and headers), and
 * predicates on pod objects. The call policy is kubernetes/kube-api.ts; the watch is
 * kubernetes/pod-informer.ts.
 */
import { ApiException, type V1Pod } from '@kubernetes/client-node';
import { redactSecrets } from '../redact.js';

/** HTTP status of a failed API call (ApiException) or a failed watch request, if any. */
export function apiStatus(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  if (e && typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}

export const isNotFound = (err: unknown): boolean => apiStatus(err) === 404;
export const isConflict = (err: unknown): boolean => apiStatus(err) === 409;

/** `HTTP 409 AlreadyExists: pods "zeroclaw-a" already exists`: status, reason and message only. */
export function describeKubeError(err: unknown): string {
  if (err instanceof ApiException) {
    let reason = '';
    let message = '';
    const body: unknown = err.body;
    let parsed: unknown = body;
    if (typeof body === 'string') {
      try {
        parsed = JSON.parse(body);
      } catch {
        parsed = undefined;
        message = body.slice(0, 200);
      }
    }
    if (parsed && typeof parsed === 'object') {
      const s = parsed as { reason?: unknown; message?: unknown };
      if (typeof s.reason === 'string') reason = s.reason;
      if (typeof s.message === 'string') message = s.message;
    }
    return redactSecrets(`HTTP ${err.code}${reason ? ` ${reason}` : ''}${message ? `: ${message.slice(0, 300)}` : ''}`);
  }
  const status = apiStatus(err);
  const msg = err instanceof Error ? err.message : String(err);
  return redactSecrets(`${status !== undefined ? `HTTP ${status}: ` : ''}${msg.split('\n', 1)[0]?.slice(0, 300) ?? ''}`);
}

export function podReady(pod: V1Pod | undefined): boolean {
  return pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

export function podDeleting(pod: V1Pod | undefined): boolean {
  return pod?.metadata?.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null;
}

export function podTerminated(pod: V1Pod | undefined): boolean {
  const phase = pod?.status?.phase;
  return phase === 'Failed' || phase === 'Succeeded';
}

/** Running, Ready, with an IP and not being deleted: something that can take traffic. */
export function podLive(pod: V1Pod | undefined): boolean {
  return pod?.status?.phase === 'Running' && podReady(pod) && !podDeleting(pod) && typeof pod.status?.podIP === 'string' && pod.status.podIP !== '';
}

/** Why a pod ended, from its container statuses (exit code and reason), for error messages. */
export function podExitReason(pod: V1Pod | undefined): string {
  const parts: string[] = [];
  for (const cs of pod?.status?.containerStatuses ?? []) {
    const term = cs.state?.terminated;
    if (term) parts.push(`${cs.name} exited ${term.exitCode}${term.reason ? ` (${term.reason})` : ''}`);
    const waiting = cs.state?.waiting;
    if (waiting?.reason) parts.push(`${cs.name} waiting: ${waiting.reason}`);
  }
  if (pod?.status?.reason) parts.push(pod.status.reason);
  return redactSecrets(parts.join('; ') || `phase ${pod?.status?.phase ?? 'unknown'}`);
}

/** creationTimestamp in ms: a Date from the API client, an ISO string from a watch event. */
export function createdMs(pod: V1Pod): number {
  const t = pod.metadata?.creationTimestamp as Date | string | undefined;
  const ms = t instanceof Date ? t.getTime() : typeof t === 'string' ? Date.parse(t) : Number.NaN;
  return Number.isFinite(ms) ? ms : 0;
}
