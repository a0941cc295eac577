/**
 * What every service builder (services/<name>/build.ts) shares: the `{ start, close }` shape, and
 * the rule for the parts a process may share: a part passed in (the one-process platform's runtime,
 * metrics registry) is the caller's and is never closed here; a part the builder makes itself is
 * closed by it. Close steps are kept in construction order and run reversed (closeInOrder).
 */
import type { Logger } from '../logger.js';
import { createMetrics, type Metrics } from '../metrics.js';
import type { RedisClient } from '../redis.js';
import { instrumentQueueMetrics } from '../ops/queue-metrics.js';
import { closeInOrder, type CloseStep } from './close-steps.js';

export interface BuiltService {
  /** Begins taking work (workers, listeners, loops); everything it needs is built already. */
  start(): Promise<void>;
  /** Stops in reverse order of construction, each step caught, logged and bounded; never throws. */
  close(): Promise<void>;
}

/** Starts `service`; if that fails, closes what it built (then rethrows): nothing is left open. */
export async function startOrClose<T extends BuiltService>(service: T): Promise<T> {
  try {
    await service.start();
    return service;
  } catch (err) {
    await service.close();
    throw err;
  }
}

/** Close steps in construction order; `close()` runs them reversed. */
export class CloseChain {
  private readonly steps: CloseStep[] = [];
  constructor(private readonly log: Logger, private readonly stepTimeoutMs?: number) {}
  add(name: string, close: CloseStep[1]): void {
    this.steps.push([name, close]);
  }
  close(): Promise<void> {
    return closeInOrder([...this.steps].reverse(), this.log, this.stepTimeoutMs === undefined ? {} : { stepTimeoutMs: this.stepTimeoutMs });
  }
}

/**
 * The given registry, or a new one for `service` with the cluster-wide queue gauges read through
 * `redis` (a shared registry already has them: they may be registered once per registry).
 */
export function serviceMetrics(service: string, given: Metrics | undefined, redis: RedisClient, chain: CloseChain): Metrics {
  if (given) return given;
  const metrics = createMetrics({ service });
  const queueMetrics = instrumentQueueMetrics(metrics, redis);
  chain.add('queue metrics', () => queueMetrics.close());
  return metrics;
}

/** A part made by start(): reading it before then is a programming error, said plainly. */
export function startedPart<T>(service: string, part: string, value: T | undefined): T {
  if (value === undefined) throw new Error(`${service}: ${part} exists only after start()`);
  return value;
}
