/**
 * The runtime's one view of its pods: a single list+watch of every tenant pod and warm pool member
 * in the namespace (`app in (zeroclaw,warm-pool)`), with a cache by name. Every waiter (a start
 * waiting for Ready or for a previous pod's deletion, a stop's wait for the pod to go) and the
 * exit handling are fed from it: however many wakes are in flight, the runtime holds one watch.
 *
 * - List, then watch from the list's resourceVersion with `allowWatchBookmarks` (bookmarks keep the
 *   version fresh, so a reconnect does not fall out of the history window); a watch that ends
 *   (the server's timeoutSeconds) continues from the last version seen.
 * - `410 Gone`/`Expired` (as a Status or an ERROR event): re-list at once; the diff against the
 *   cache is delivered as events (a pod missing from the new list is DELETED), so no waiter misses
 *   a change it slept through.
 * - Errors and dropped connections: reconnect with capped backoff and jitter; a watch that sends
 *   nothing (not even a bookmark) for longer than its own timeout plus the API timeout is treated
 *   as hung and reconnected.
 *
 * The watch stream is read with node:http(s) and the kubeconfig's agent and headers (the client's
 * Watch cannot be aborted while it waits for response headers).
 */
import http from 'node:http';
import https from 'node:https';
import { randomInt } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../logger.js';
import { RuntimeError } from '../../errors.js';
import { describeKubeError } from '../kube-client.js';
import type { KubeApi } from './kube-api.js';

export type PodEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface PodEvent {
  type: PodEventType;
  pod: V1Pod;
  /** From the informer's first list: what already existed when this process first looked. */
  initial: boolean;
}

export interface PodInformerOptions {
  api: KubeApi;
  kubeConfig: KubeConfig;
  namespace: string;
  labelSelector: string;
  log: Logger;
  /** Server-side timeout of each watch request; default 240 s (the loop continues from the last version). */
  watchTimeoutS?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** What a waiter sees of its pod: there (this object), gone (deleted, or replaced by a newer pod of the name), or not known yet. */
export type PodView = { state: 'present'; pod: V1Pod } | { state: 'gone' } | { state: 'unknown' };

export interface WaitOptions<T> {
  /** Called with the pod's view on every change (and every `tickMs`); a value ends the wait, a throw fails it. */
  decide: (view: PodView) => T | undefined;
  timeoutMs: number;
  timeoutError: (last: V1Pod | undefined) => Error;
  /** Also re-decide this often (time-based decisions, progress heartbeats). */
  tickMs?: number;
}

interface Waiter {
  name: string;
  evaluate(): void;
  abort(err: Error): void;
}

const nameOf = (pod: V1Pod): string => pod.metadata?.name ?? '';
const uidOf = (pod: V1Pod): string => pod.metadata?.uid ?? '';
const rvOf = (pod: V1Pod): string | undefined => pod.metadata?.resourceVersion;

/** resourceVersions are opaque; etcd's (and the stand-in's) are integers, which lets a waiter know the cache caught up. */
function rvNumber(rv: string | undefined): bigint | undefined {
  return rv !== undefined && /^\d{1,30}$/.test(rv) ? BigInt(rv) : undefined;
}

export class PodInformer {
  private readonly pods = new Map<string, V1Pod>();
  private readonly listeners = new Set<(e: PodEvent) => void>();
  private readonly waiters = new Set<Waiter>();
  private resourceVersion: string | undefined;
  private synced = false;
  private started = false;
  private stopped = false;
  private backoffMs: number;
  private timer: NodeJS.Timeout | undefined;
  private request: http.ClientRequest | undefined;
  private readonly syncWaiters: Array<() => void> = [];
  /** Watch requests opened and lists made, for tests and metrics. */
  readonly stats = { watches: 0, lists: 0, relistsOn410: 0, errors: 0 };

  constructor(private readonly o: PodInformerOptions) {
    this.backoffMs = o.minBackoffMs ?? 200;
  }

  /** Starts the list+watch once (later calls do nothing). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    void this.list();
  }

  /** Resolves after the first list (starting the informer if needed). */
  async ready(): Promise<void> {
    this.start();
    if (this.synced) return;
    await new Promise<void>((resolve) => this.syncWaiters.push(resolve));
  }

  /** Every later change; the pods already cached are replayed first as `initial` ADDED events. */
  subscribe(listener: (e: PodEvent) => void): () => void {
    for (const pod of this.pods.values()) listener({ type: 'ADDED', pod, initial: true });
    this.listeners.add(listener);
    this.start();
    return () => this.listeners.delete(listener);
  }

  /** The cached pod of this name, if any. */
  get(name: string): V1Pod | undefined {
    return this.pods.get(name);
  }

  /** Pods of the cache matching `filter`. */
  cached(filter: (p: V1Pod) => boolean = () => true): V1Pod[] {
    return [...this.pods.values()].filter(filter);
  }

  /**
   * How `pod` (by name and uid; `pod.resourceVersion` as a floor) looks now. Gone only when the
   * cache is known to be at least as new as the pod object given: a pod just created is not yet
   * "gone" because its ADDED event has not arrived.
   */
  view(pod: V1Pod): PodView {
    const cached = this.pods.get(nameOf(pod));
    const uid = uidOf(pod);
    if (cached && (!uid || uidOf(cached) === uid)) return { state: 'present', pod: cached };
    if (!this.synced) return { state: 'unknown' };
    if (cached) return { state: 'gone' }; // another pod of that name now: ours was deleted
    const floor = rvNumber(rvOf(pod));
    const seen = rvNumber(this.resourceVersion);
    if (floor !== undefined && (seen === undefined || seen < floor)) return { state: 'unknown' };
    return { state: 'gone' };
  }

  /** Follows one pod until `decide` returns a value (or throws), the timeout, or close. */
  waitFor<T>(pod: V1Pod, w: WaitOptions<T>): Promise<T> {
    if (this.stopped) return Promise.reject(new RuntimeError('kubernetes runtime closed'));
    this.start();
    return new Promise<T>((resolve, reject) => {
      let done = false;
      let last: V1Pod | undefined = pod;
      const finish = (settle: () => void): void => {
        if (done) return;
        done = true;
        clearTimeout(timeout);
        if (tick) clearInterval(tick);
        this.waiters.delete(waiter);
        settle();
      };
      const waiter: Waiter = {
        name: nameOf(pod),
        evaluate: () => {
          if (done) return;
          const v = this.view(pod);
          if (v.state === 'present') last = v.pod;
          try {
            const out = w.decide(v);
            if (out !== undefined) finish(() => resolve(out));
          } catch (err) {
            finish(() => reject(err));
          }
        },
        abort: (err) => finish(() => reject(err)),
      };
      const timeout = setTimeout(() => finish(() => reject(w.timeoutError(last))), Math.max(1, w.timeoutMs));
      const tick = w.tickMs ? setInterval(() => waiter.evaluate(), w.tickMs) : undefined;
      tick?.unref?.();
      this.waiters.add(waiter);
      waiter.evaluate();
    });
  }

  /** Open waits right now (for tests). */
  get waiting(): number {
    return this.waiters.size;
  }

  close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.request?.destroy();
    this.request = undefined;
    for (const w of [...this.waiters]) w.abort(new RuntimeError('kubernetes runtime closed'));
    for (const resolve of this.syncWaiters.splice(0)) resolve();
  }

  // ------------------------------------------------------------ list + watch

  private schedule(step: () => void, immediate = false): void {
    if (this.stopped) return;
    const base = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.o.maxBackoffMs ?? 5000);
    const delay = immediate ? 0 : Math.round(base / 2 + randomInt(Math.max(1, Math.round(base / 2))));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      step();
    }, delay);
    this.timer.unref?.();
  }

  private async list(): Promise<void> {
    if (this.stopped) return;
    this.stats.lists++;
    let items: V1Pod[];
    let rv: string | undefined;
    try {
      const res = await this.o.api.call({ verb: 'list', object: `pods ${this.o.labelSelector}` },
        (opts) => this.o.api.core.listNamespacedPod({ namespace: this.o.namespace, labelSelector: this.o.labelSelector }, opts));
      items = res.items;
      rv = res.metadata?.resourceVersion;
    } catch (err) {
      if (this.stopped) return;
      this.stats.errors++;
      this.o.log.warn({ err: describeKubeError(err) }, 'pod informer: list failed, retrying');
      this.schedule(() => void this.list());
      return;
    }
    if (this.stopped) return;
    const initial = !this.synced;
    const present = new Set<string>();
    for (const pod of items) {
      present.add(nameOf(pod));
      const cached = this.pods.get(nameOf(pod));
      if (cached && uidOf(cached) !== uidOf(pod)) this.apply('DELETED', cached, initial);
      if (!cached || uidOf(cached) !== uidOf(pod)) this.apply('ADDED', pod, initial);
      else if (rvOf(cached) !== rvOf(pod)) this.apply('MODIFIED', pod, initial);
    }
    for (const [name, cached] of [...this.pods]) if (!present.has(name)) this.apply('DELETED', cached, initial);
    this.resourceVersion = rv;
    this.synced = true;
    for (const resolve of this.syncWaiters.splice(0)) resolve();
    for (const w of [...this.waiters]) w.evaluate();
    this.watch();
  }

  /** Applies one change to the cache, tells the listeners, then the waiters of that pod. */
  private apply(type: PodEventType, pod: V1Pod, initial: boolean): void {
    const name = nameOf(pod);
    if (!name) return;
    if (type === 'DELETED') {
      const cached = this.pods.get(name);
      if (cached && uidOf(cached) !== uidOf(pod)) return; // an older incarnation's late event
      this.pods.delete(name);
    } else {
      this.pods.set(name, pod);
    }
    for (const l of this.listeners) {
      try {
        l({ type, pod, initial });
      } catch (err) {
        this.o.log.error({ err }, 'pod informer: listener failed');
      }
    }
    for (const w of [...this.waiters]) if (w.name === name) w.evaluate();
  }

  private watch(): void {
    if (this.stopped) return;
    const timeoutS = this.o.watchTimeoutS ?? 240;
    void this.o.kubeConfig.applyToFetchOptions({}).then((init) => {
      if (this.stopped) return;
      const cluster = this.o.kubeConfig.getCurrentCluster();
      if (!cluster) throw new RuntimeError('kubeconfig has no current cluster');
      const url = new URL(`${cluster.server.replace(/\/$/, '')}/api/v1/namespaces/${encodeURIComponent(this.o.namespace)}/pods`);
      url.searchParams.set('watch', 'true');
      url.searchParams.set('labelSelector', this.o.labelSelector);
      url.searchParams.set('allowWatchBookmarks', 'true');
      url.searchParams.set('timeoutSeconds', String(timeoutS));
      if (this.resourceVersion) url.searchParams.set('resourceVersion', this.resourceVersion);
      const headers: Record<string, string> = {};
      (init.headers as unknown as { forEach(cb: (v: string, k: string) => void): void } | undefined)?.forEach((v, k) => {
        headers[k] = v;
      });
      this.stats.watches++;
      const lib = url.protocol === 'https:' ? https : http;
      const req = lib.request(url, { method: 'GET', headers, agent: init.agent as http.Agent | undefined });
      this.request = req;
      let gotLine = false;
      let relist = false;
      let failed: Error | undefined;
      let ended = false;
      // Idle bound: the server ends a watch at timeoutS; one silent for longer is hung.
      const idleMs = timeoutS * 1000 + this.o.api.timeoutMs;
      let idle = setTimeout(() => req.destroy(new Error(`watch silent for ${idleMs} ms`)), this.o.api.timeoutMs);
      const bump = (): void => {
        clearTimeout(idle);
        idle = setTimeout(() => req.destroy(new Error(`watch silent for ${idleMs} ms`)), idleMs);
      };
      const end = (cause: unknown): void => {
        if (ended) return;
        ended = true;
        clearTimeout(idle);
        if (this.request === req) this.request = undefined;
        if (this.stopped) return;
        const err = failed ?? cause;
        if (relist) {
          this.stats.relistsOn410++;
          this.schedule(() => void this.list(), true);
          return;
        }
        if (err) {
          this.stats.errors++;
          this.o.log.warn({ err: describeKubeError(err) }, 'pod watch failed: reconnecting');
          this.schedule(() => void this.list());
          return;
        }
        if (gotLine) {
          this.backoffMs = this.o.minBackoffMs ?? 200;
          this.watch(); // the server's timeout: carry on from the last version
        } else {
          this.schedule(() => this.watch());
        }
      };
      req.on('error', end);
      req.on('response', (res) => {
        bump();
        if (res.statusCode !== 200) {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            if (text.length < 4096) text += c;
          });
          res.on('end', () => {
            if (res.statusCode === 410) relist = true;
            end(Object.assign(new Error(`watch answered HTTP ${res.statusCode}: ${text.slice(0, 300)}`), { statusCode: res.statusCode }));
          });
          res.on('error', end);
          return;
        }
        const lines = createInterface({ input: res });
        lines.on('error', end);
        lines.on('line', (line) => {
          if (this.stopped || relist) return;
          bump();
          let event: { type?: string; object?: { metadata?: { resourceVersion?: string }; code?: number } };
          try {
            event = JSON.parse(line) as typeof event;
          } catch {
            return;
          }
          gotLine = true;
          if (event.type === 'ERROR') {
            // 410 Expired (the version fell out of the history): re-list at once; another error: after a backoff.
            if (event.object?.code === 410) relist = true;
            else failed = new Error(`watch ERROR event ${event.object?.code ?? '?'}`);
            req.destroy();
            return;
          }
          const version = event.object?.metadata?.resourceVersion;
          if (version) this.resourceVersion = version;
          if (event.type === 'ADDED' || event.type === 'MODIFIED' || event.type === 'DELETED') this.apply(event.type, event.object as V1Pod, false);
        });
        res.on('error', end);
        res.on('close', () => end(undefined));
      });
      req.end();
    }).catch((err: unknown) => {
      if (this.stopped) return;
      this.stats.errors++;
      this.o.log.warn({ err: describeKubeError(err) }, 'pod watch could not start: retrying');
      this.schedule(() => void this.list());
    });
  }
}
