/**
 * Closing a service: its steps in the order given (the reverse of construction), each on its own.
 * A step that throws is logged with its name and the rest still run; a step that hangs is logged and
 * left behind after `stepTimeoutMs`, so one stuck connection cannot eat the whole shutdown grace.
 * Never throws: a shutdown that half-failed must still release everything else.
 */
import type { Logger } from '../logger.js';

export type CloseStep = readonly [name: string, close: () => Promise<unknown> | undefined];

export interface CloseOptions {
  /** Bound on each step (default 10 s); a hung step is logged and skipped. */
  stepTimeoutMs?: number;
}

export const DEFAULT_STEP_TIMEOUT_MS = 10_000;

export const TIMED_OUT = Symbol('timed out');

/**
 * `work()`'s outcome, or TIMED_OUT once `ms` passed first (the work is left running). A synchronous
 * throw of `work` rejects like a rejection. The timer is not unref'd: a hung step must not let the
 * process slip out before the bound is reached.
 */
export async function withTimeout<T>(work: () => Promise<T> | T, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<typeof TIMED_OUT>((resolve) => { timer = setTimeout(() => resolve(TIMED_OUT), ms); });
  try {
    return await Promise.race([Promise.resolve().then(work), bound]);
  } finally {
    clearTimeout(timer);
  }
}

export async function closeInOrder(steps: readonly CloseStep[], log: Pick<Logger, 'warn'>, options: CloseOptions = {}): Promise<void> {
  const timeoutMs = options.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
  for (const [name, close] of steps) {
    try {
      if ((await withTimeout(close, timeoutMs)) === TIMED_OUT) log.warn({ step: name, timeout_ms: timeoutMs }, `closing ${name} timed out: skipped`);
    } catch (err) {
      log.warn({ err, step: name }, `closing ${name} failed`);
    }
  }
}
