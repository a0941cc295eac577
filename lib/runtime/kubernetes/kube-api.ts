/**
 * The call policy of every Kubernetes API request the runtime makes (KubeApi.call):
 *
 * - a timeout per attempt (K8S_API_TIMEOUT_S, default 15 s), so a hung API server never hangs a wake;
 * - 429 retried after the server's Retry-After (capped), 5xx and connection errors (refused, reset,
 *   timed out) retried with capped exponential backoff and jitter; the attempts are bounded in
 *   number and by the caller's deadline (a start's own);
 * - 401/403/422 are refusals, not outages: a RuntimeError with reason `api_refused` naming the verb,
 *   the object and the API's own Status message (a missing PriorityClass, Pod Security, a quota,
 *   RBAC: each says so itself);
 * - what is left (404, 409, 410, 400) is thrown as the client's ApiException: callers decide
 *   (gone, conflict, re-list).
 *
 * Retrying a create that timed out may meet its own earlier success as 409: the callers of creates
 * treat 409 as "exists" already (adopt, or re-read).
 */
import { randomInt } from 'node:crypto';
import { ApiException, CoreV1Api, type ConfigurationOptions, type KubeConfig, type ObservableMiddleware, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../logger.js';
import { RuntimeError } from '../../errors.js';
import { apiStatus, describeKubeError, isNotFound } from '../kube-client.js';

export interface KubeApiOptions {
  kubeConfig: KubeConfig;
  /** K8S_NAMESPACE: where the pod helpers below look. */
  namespace: string;
  log: Logger;
  /** Bound of one attempt (ms); K8S_API_TIMEOUT_S. */
  timeoutMs: number;
  /** Attempts per call, the first included; default 6. */
  maxAttempts?: number;
  /** First backoff (ms); doubles per attempt up to maxBackoffMs. Defaults 200 / 5000. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** The longest Retry-After honoured (ms); default 30 000. */
  maxRetryAfterMs?: number;
}

export interface CallContext {
  /** Epoch ms: no attempt starts, and no attempt lasts, past it. */
  deadlineMs?: number | undefined;
}

/** The verb and object of a call, for errors and logs: `create` + `pod zeroclaw-alice`. */
export interface CallTarget {
  verb: string;
  object: string;
}

/** How a failed attempt is handled. */
type Verdict = { kind: 'retry'; afterMs: number | undefined } | { kind: 'refused' } | { kind: 'throw' };

const RETRIED_STATUS = new Set([429, 500, 502, 503, 504]);
const REFUSED_STATUS = new Set([401, 403, 422]);

/** Seconds of Retry-After (header, or the Status' details.retryAfterSeconds), if any. */
export function retryAfterMs(err: unknown): number | undefined {
  if (!(err instanceof ApiException)) return undefined;
  const headers = (err.headers ?? {}) as Record<string, string | undefined>;
  const header = headers['retry-after'] ?? headers['Retry-After'];
  const fromHeader = header !== undefined && /^\d+$/.test(header.trim()) ? Number(header.trim()) : undefined;
  let fromBody: number | undefined;
  let body: unknown = err.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      body = undefined;
    }
  }
  const details = (body as { details?: { retryAfterSeconds?: unknown } } | undefined)?.details;
  if (typeof details?.retryAfterSeconds === 'number' && details.retryAfterSeconds >= 0) fromBody = details.retryAfterSeconds;
  const s = fromHeader ?? fromBody;
  return s === undefined ? undefined : s * 1000;
}

export function classify(err: unknown): Verdict {
  if (err instanceof RuntimeError) return { kind: 'throw' };
  const status = apiStatus(err);
  if (status !== undefined) {
    if (REFUSED_STATUS.has(status)) return { kind: 'refused' };
    if (RETRIED_STATUS.has(status)) return { kind: 'retry', afterMs: status === 429 ? retryAfterMs(err) : undefined };
    return { kind: 'throw' };
  }
  // No HTTP answer at all: refused or reset connection, DNS, our own timeout.
  return { kind: 'retry', afterMs: undefined };
}

/** The API's own message of a refusal: `HTTP 403 Forbidden: pods "x" is forbidden: ...`. */
function refusal(target: CallTarget, err: unknown): RuntimeError {
  return new RuntimeError(`${target.verb} ${target.object} refused by the Kubernetes API: ${describeKubeError(err)}`, { cause: err, reason: 'api_refused' });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref?.());

export class KubeApi {
  readonly core: CoreV1Api;
  readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly closing = new AbortController();
  /** Attempts made and retried, for tests and logs. */
  readonly stats = { attempts: 0, retries: 0, timeouts: 0 };

  constructor(private readonly o: KubeApiOptions) {
    this.core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.timeoutMs = o.timeoutMs;
    this.maxAttempts = o.maxAttempts ?? 6;
    this.minBackoffMs = o.minBackoffMs ?? 200;
    this.maxBackoffMs = o.maxBackoffMs ?? 5000;
    this.maxRetryAfterMs = o.maxRetryAfterMs ?? 30_000;
  }

  /**
   * Runs `request` under the policy. `request` gets the options to pass to the client call (they
   * carry the attempt's abort signal; `base` options, such as a patch's Content-Type, are kept).
   */
  async call<T>(target: CallTarget, request: (options: ConfigurationOptions) => Promise<T>, ctx: CallContext = {}, base?: ConfigurationOptions): Promise<T> {
    let lastError: unknown;
    for (let attempt = 1; ; attempt++) {
      if (this.closing.signal.aborted) throw new RuntimeError('kubernetes runtime closed');
      const left = (ctx.deadlineMs ?? Number.POSITIVE_INFINITY) - Date.now();
      if (left <= 0) throw this.unavailable(target, lastError, attempt - 1, true);
      const timeoutMs = Math.max(1, Math.min(this.timeoutMs, left));
      const timer = AbortSignal.timeout(timeoutMs);
      const signal = AbortSignal.any([timer, this.closing.signal]);
      this.stats.attempts++;
      try {
        return await request(withSignal(signal, base));
      } catch (err) {
        if (this.closing.signal.aborted) throw new RuntimeError('kubernetes runtime closed', { cause: err });
        const timedOut = timer.aborted;
        if (timedOut) this.stats.timeouts++;
        lastError = timedOut ? new Error(`no answer within ${timeoutMs} ms`) : err;
        const verdict = classify(lastError);
        if (verdict.kind === 'refused') throw refusal(target, err);
        if (verdict.kind === 'throw') throw err;
        if (attempt >= this.maxAttempts) throw this.unavailable(target, lastError, attempt, false);
        const backoff = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** (attempt - 1));
        const jittered = Math.round(backoff / 2 + randomInt(Math.max(1, Math.round(backoff / 2))));
        const delay = verdict.afterMs !== undefined ? Math.min(this.maxRetryAfterMs, Math.max(verdict.afterMs, jittered)) : jittered;
        if (Date.now() + delay >= (ctx.deadlineMs ?? Number.POSITIVE_INFINITY)) throw this.unavailable(target, lastError, attempt, true);
        this.stats.retries++;
        this.o.log.warn({ verb: target.verb, object: target.object, attempt, retry_in_ms: delay, err: describeKubeError(lastError) }, 'kubernetes API call failed: retrying');
        await sleep(delay);
      }
    }
  }

  private unavailable(target: CallTarget, err: unknown, attempts: number, deadline: boolean): RuntimeError {
    // The start's time ran out with the API healthy (no failed attempt): a timeout of the start, not an outage.
    if (err === undefined) return new RuntimeError(`${target.verb} ${target.object}: the start's deadline passed`, { reason: 'start_timeout' });
    const why = describeKubeError(err);
    const bound = deadline ? 'the start\'s deadline passed' : `${attempts} attempts`;
    return new RuntimeError(`${target.verb} ${target.object}: the Kubernetes API did not answer (${why}; ${bound})`, { cause: err, reason: 'api_unavailable' });
  }

  /** Pods matching a label selector. */
  async listPods(labelSelector: string, ctx?: CallContext): Promise<V1Pod[]> {
    try {
      const res = await this.call({ verb: 'list', object: `pods ${labelSelector}` },
        (opts) => this.core.listNamespacedPod({ namespace: this.o.namespace, labelSelector }, opts), ctx);
      return res.items;
    } catch (err) {
      throw apiError(`list pods ${labelSelector}`, err);
    }
  }

  /** The pod, or undefined when there is none of that name. */
  async readPod(name: string, ctx?: CallContext): Promise<V1Pod | undefined> {
    try {
      return await this.call({ verb: 'get', object: `pod ${name}` }, (opts) => this.core.readNamespacedPod({ name, namespace: this.o.namespace }, opts), ctx);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw apiError(`read pod ${name}`, err);
    }
  }

  /** Ends calls in flight (they throw "closed"); later calls throw at once. */
  close(): void {
    this.closing.abort();
  }

  get closed(): boolean {
    return this.closing.signal.aborted;
  }
}

/**
 * A RuntimeError for a call that failed in a way its caller does not handle: the policy's own
 * errors as they are; any other answer of the API (400, an unexpected 404/409) is a refusal.
 */
export function apiError(what: string, err: unknown): RuntimeError {
  if (err instanceof RuntimeError) return err;
  const status = apiStatus(err);
  return new RuntimeError(`${what} failed: ${describeKubeError(err)}`, { cause: err, reason: status !== undefined && status < 500 ? 'api_refused' : 'api_unavailable' });
}

/** The client's Observable, as its own stub implements it (a promise with toPromise/pipe). */
function observableOf<T>(value: T): ReturnType<ObservableMiddleware['post']> {
  const promise = Promise.resolve(value);
  const observable = { promise, toPromise: () => promise, pipe: (cb: (v: T) => unknown) => observableOf(promise.then(cb)) };
  return observable as unknown as ReturnType<ObservableMiddleware['post']>;
}

/** The client options with a middleware that gives the request our abort signal. */
function withSignal(signal: AbortSignal, base?: ConfigurationOptions): ConfigurationOptions {
  const setSignal: ObservableMiddleware = {
    pre: (context) => {
      context.setSignal(signal as never);
      return observableOf(context) as unknown as ReturnType<ObservableMiddleware['pre']>;
    },
    post: (response) => observableOf(response),
  };
  return { ...base, middleware: [...(base?.middleware ?? []), setSignal], middlewareMergeStrategy: 'append' };
}
