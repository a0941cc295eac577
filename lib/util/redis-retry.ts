/**
 * A Redis write that must not be given up on during a failover. When a master dies, its replica
 * takes over within seconds (cluster-node-timeout plus the election); a write that fails in between
 * with a connection-class error is retried until `deadlineMs`, so that a drain does not give its chat
 * back (and resend an answer Telegram already took) over a hiccup. Only for idempotent calls: the
 * mailbox scripts compare the head and the lease they are given, so a retry of a write that did
 * land answers `moved` or `lost-lease`, never acts twice.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Redis reply prefixes (the protocol's own error codes) that mean "the cluster is moving, try again". */
const TRANSIENT_REPLIES = ['CLUSTERDOWN', 'TRYAGAIN', 'LOADING', 'READONLY', 'MASTERDOWN'];
const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENOTCONN']);

/** True for errors of the connection or of a cluster between masters, not of the command itself. */
export function isTransientRedisError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
  // ioredis: a command on a closed connection, or one that ran out of reconnect attempts.
  if (err.name === 'MaxRetriesPerRequestError' || err.message === 'Connection is closed.') return true;
  const first = err.message.split(' ', 1)[0] ?? '';
  return err.name === 'ReplyError' && TRANSIENT_REPLIES.includes(first);
}

export interface RetryOptions {
  deadlineMs: number;
  /** Called before each retry (for a log line). */
  onRetry?: (err: unknown, attempt: number) => void;
}

export async function retryTransient<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  const deadline = Date.now() + options.deadlineMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransientRedisError(err) || Date.now() >= deadline) throw err;
      options.onRetry?.(err, attempt);
      await sleep(Math.min(100 * 2 ** Math.min(attempt - 1, 4), Math.max(0, deadline - Date.now())));
    }
  }
}
