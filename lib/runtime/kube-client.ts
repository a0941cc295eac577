/**
 * A thin layer over @kubernetes/client-node 1.x for the Kubernetes runtime: API error codes and
 * safe messages (an ApiException's own message embeds the whole response body and headers), and a
 * list-then-watch loop over pods that survives watch timeouts, dropped connections and `410 Gone`
 * (it re-lists), used both to wait for one pod and to follow every tenant pod.
 */
import { ApiException, CoreV1Api, Watch, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { redactSecrets } from '../redact.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

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

export interface PodWatchHandlers {
  /** After every (re)list: the full current set. */
  onSync(pods: V1Pod[]): void;
  onEvent(type: WatchEventType, pod: V1Pod): void;
  /** A list or watch request failed; the loop retries with backoff. */
  onError?(err: unknown): void;
}

export interface PodWatchOptions {
  namespace: string;
  labelSelector?: string | undefined;
  fieldSelector?: string | undefined;
  /** Server-side timeout of each watch request (the loop then continues from the last version). */
  watchTimeoutS?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * List, then watch from the list's resourceVersion; re-watch from the last seen version when a
 * watch ends, re-list when the version is too old (410) or after an error (with backoff). An
 * informer without a cache: the handlers keep what they need.
 */
export class PodWatch {
  private stopped = false;
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private resourceVersion: string | undefined;
  private backoffMs: number;
  private readonly watch: Watch;

  constructor(
    private readonly core: CoreV1Api,
    kubeConfig: KubeConfig,
    private readonly o: PodWatchOptions,
    private readonly h: PodWatchHandlers,
  ) {
    this.watch = new Watch(kubeConfig);
    this.backoffMs = o.minBackoffMs ?? 200;
  }

  start(): this {
    void this.list();
    return this;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.controller?.abort();
    this.controller = undefined;
  }

  get active(): boolean {
    return !this.stopped;
  }

  private retry(step: () => Promise<void>): void {
    if (this.stopped) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.o.maxBackoffMs ?? 5000);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void step();
    }, delay);
    this.timer.unref?.();
  }

  private async list(): Promise<void> {
    if (this.stopped) return;
    try {
      const res = await this.core.listNamespacedPod({
        namespace: this.o.namespace,
        labelSelector: this.o.labelSelector,
        fieldSelector: this.o.fieldSelector,
      });
      if (this.stopped) return;
      this.resourceVersion = res.metadata?.resourceVersion;
      this.h.onSync(res.items);
    } catch (err) {
      if (this.stopped) return;
      this.h.onError?.(err);
      this.retry(() => this.list());
      return;
    }
    void this.watchFrom();
  }

  private async watchFrom(): Promise<void> {
    if (this.stopped) return;
    let relist = false;
    let gotEvent = false;
    let settle!: (err: unknown) => void;
    const ended = new Promise<unknown>((resolve) => (settle = resolve));
    const params: Record<string, string | number | boolean | undefined> = {
      labelSelector: this.o.labelSelector,
      fieldSelector: this.o.fieldSelector,
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: this.o.watchTimeoutS ?? 240,
    };
    let controller: AbortController | undefined;
    try {
      controller = await this.watch.watch(
        `/api/v1/namespaces/${encodeURIComponent(this.o.namespace)}/pods`,
        params,
        (type: string, obj: unknown) => {
          if (this.stopped) return;
          const o = obj as { metadata?: { resourceVersion?: string }; code?: number } | undefined;
          if (type === 'ERROR') {
            // 410 Gone (version too old) or another server-side error: start over from a list.
            relist = true;
            controller?.abort();
            return;
          }
          gotEvent = true;
          if (o?.metadata?.resourceVersion) this.resourceVersion = o.metadata.resourceVersion;
          if (type === 'BOOKMARK') return;
          if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') this.h.onEvent(type, obj as V1Pod);
        },
        (err: unknown) => settle(err),
      );
    } catch (err) {
      settle(err);
    }
    if (this.stopped) {
      controller?.abort();
      return;
    }
    this.controller = controller;
    const err = await ended;
    if (this.controller === controller) this.controller = undefined;
    if (this.stopped) return;
    const aborted = err instanceof Error && err.name === 'AbortError';
    if (err && !aborted) {
      this.h.onError?.(err);
      if (apiStatus(err) === 410) relist = true;
      // Connection refused, 5xx...: back off, then list again (events may have been missed).
      this.retry(() => this.list());
      return;
    }
    if (gotEvent) this.backoffMs = this.o.minBackoffMs ?? 200;
    if (relist) {
      this.retry(() => this.list());
      return;
    }
    // A server-side timeout ended the watch: continue where it left off.
    if (gotEvent) void this.watchFrom();
    else this.retry(() => this.watchFrom());
  }
}
