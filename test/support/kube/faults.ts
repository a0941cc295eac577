/**
 * Request-level faults of the stand-in apiserver, as a client meets them in production: an error
 * Status (429 with Retry-After as API Priority and Fairness answers it, 5xx, any code), a hung
 * request (accepted, never answered until the client gives up or the server closes; optionally
 * carried out first, so a retried create meets its own success as 409), a connection
 * reset (RST, no response). Rules match a verb and/or a path and fire `times` times (default once;
 * Infinity until removed). Latency per verb is in behaviour.ts (`latencyMs`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { failure, type ApiError, type StatusReason } from './objects.js';
import type { Verb } from './behaviour.js';

export interface FaultRule {
  /** HTTP method ('GET', 'POST', ...) or '*'; or use `verb`. */
  method?: string;
  /** The API verb (a GET is `get`, `list` or `watch`). */
  verb?: Verb;
  /** Matched against the URL path (no query). */
  path?: RegExp;
  /** How many requests it hits; default 1. */
  times?: number;
  /** Answer with this status (and Status reason/message). */
  status?: number;
  reason?: StatusReason;
  message?: string;
  /** With 429 (or any status): the Retry-After header and details.retryAfterSeconds. */
  retryAfterS?: number;
  /** Accept the request and never answer (until the client closes it or the server stops). */
  hang?: boolean;
  /** Carry the request out (a create is stored), then never answer: the client cannot know it succeeded. */
  applyThenHang?: boolean;
  /** Reset the connection (no HTTP response at all). */
  reset?: boolean;
}

const DEFAULT_REASONS: Record<number, StatusReason> = {
  400: 'BadRequest', 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict', 410: 'Expired', 422: 'Invalid',
  429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout',
};
const DEFAULT_MESSAGES: Record<number, string> = {
  429: 'Too many requests, please try again later.',
  500: 'Internal error occurred: etcdserver: request timed out',
  503: 'the server is currently unable to handle the request',
  504: 'Timeout: request did not complete within the allotted timeout',
};

export type FaultOutcome =
  | { kind: 'none' }
  | { kind: 'error'; error: ApiError; retryAfterS: number | undefined }
  | { kind: 'hang' }
  | { kind: 'apply-then-hang' }
  | { kind: 'reset' };

interface Armed extends FaultRule { left: number }

export class FaultInjector {
  private readonly rules: Armed[] = [];
  private readonly hung = new Set<ServerResponse>();
  /** Requests each rule was applied to, in order (method + path), for assertions. */
  readonly fired: Array<{ method: string; path: string; kind: FaultOutcome['kind'] }> = [];

  /** Arms a rule; returns a function that disarms it. */
  add(rule: FaultRule): () => void {
    const armed: Armed = { ...rule, method: rule.method?.toUpperCase(), left: rule.times ?? 1 };
    this.rules.push(armed);
    return () => {
      const i = this.rules.indexOf(armed);
      if (i >= 0) this.rules.splice(i, 1);
    };
  }

  clear(): void {
    this.rules.length = 0;
  }

  /** Requests held open by `hang` right now. */
  get hanging(): number {
    return this.hung.size;
  }

  /** The first armed rule for this request, consumed once. */
  take(method: string, verb: Verb, path: string): FaultOutcome {
    const i = this.rules.findIndex((r) => (r.method === undefined || r.method === '*' || r.method === method)
      && (r.verb === undefined || r.verb === verb) && (r.path === undefined || r.path.test(path)));
    if (i < 0) return { kind: 'none' };
    const rule = this.rules[i] as Armed;
    if (--rule.left <= 0) this.rules.splice(i, 1);
    let outcome: FaultOutcome;
    if (rule.reset) outcome = { kind: 'reset' };
    else if (rule.hang) outcome = { kind: 'hang' };
    else if (rule.applyThenHang) outcome = { kind: 'apply-then-hang' };
    else {
      const status = rule.status ?? 500;
      const details = rule.retryAfterS !== undefined ? { retryAfterSeconds: rule.retryAfterS } : undefined;
      const error = failure(status, rule.reason ?? DEFAULT_REASONS[status], rule.message ?? DEFAULT_MESSAGES[status] ?? `injected failure (${status})`, details);
      outcome = { kind: 'error', error, retryAfterS: rule.retryAfterS };
    }
    this.fired.push({ method, path, kind: outcome.kind });
    return outcome;
  }

  /** Holds the request open; released (destroyed) when the client goes away or on `releaseHung`. */
  hold(req: IncomingMessage, res: ServerResponse): void {
    this.hung.add(res);
    res.once('close', () => this.hung.delete(res));
    req.socket.setTimeout(0);
  }

  /** Ends every hung request by dropping its connection (server close). */
  releaseHung(): void {
    for (const res of [...this.hung]) res.destroy();
    this.hung.clear();
  }

  static reset(req: IncomingMessage): void {
    const socket = req.socket as IncomingMessage['socket'] & { resetAndDestroy?: () => void };
    if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
    else socket.destroy();
  }
}

export { DEFAULT_REASONS };
