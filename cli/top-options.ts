/**
 * `ztm top`'s options, apart from cli/top.ts so that cli/main.ts parses them without loading
 * BullMQ (a CLI answers `--help` in ~0.1 s).
 */
import { ValidationError } from '../lib/errors.js';

export interface TopInvocation {
  intervalS: number;
  /** Frames to print before exiting; undefined: until quit. --once is 1. */
  count: number | undefined;
}

export const DEFAULT_TOP_INTERVAL_S = 2;
const INTERVAL_MIN_S = 0.2;
const INTERVAL_MAX_S = 3600;

/** Validates --interval, --once and --count (one clear line each). */
export function topOptions(o: { interval?: unknown; once?: unknown; count?: unknown }): TopInvocation {
  const raw = o.interval === undefined ? String(DEFAULT_TOP_INTERVAL_S) : String(o.interval);
  const intervalS = Number(raw);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(raw) || intervalS < INTERVAL_MIN_S || intervalS > INTERVAL_MAX_S) {
    throw new ValidationError(`invalid --interval ${JSON.stringify(raw.slice(0, 20))}: seconds from ${INTERVAL_MIN_S} to ${INTERVAL_MAX_S}`);
  }
  let count: number | undefined;
  if (o.count !== undefined) {
    const c = String(o.count);
    if (!/^[0-9]{1,6}$/.test(c) || Number(c) < 1) throw new ValidationError(`invalid --count ${JSON.stringify(c.slice(0, 20))}: a whole number of frames, at least 1`);
    count = Number(c);
  }
  if (o.once === true) {
    if (count !== undefined && count !== 1) throw new ValidationError('--once and --count: give one of them');
    count = 1;
  }
  return { intervalS, count };
}
