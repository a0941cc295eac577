/**
 * `ztm top [--interval 2] [--once] [--count n]`: `ztm status` refreshing in place: jobs per queue and
 * state, wakes in flight, tenants awake, the warm pool, dead letters. The figures and their table
 * are `ztm status`'s own (lib/ops/queue-stats.ts, cli/status.ts renderStatus), read from Redis every
 * interval.
 *
 * On a terminal: the alternate screen, each frame drawn from the top (cursor home, lines cleared),
 * the cursor hidden; q, Ctrl-C or SIGTERM quits and restores the terminal. Anywhere else (a pipe, a
 * file, `kubectl exec` without a TTY): one plain frame per interval, separated by a blank line, until
 * --count frames, a signal, or q on stdin; --once prints one. With --json each frame is one line of
 * `ztm status --json`'s object (NDJSON).
 */
import { redactDeep } from '../lib/redact.js';
import { closeRedis, describeRedisUrl, type RedisClient } from '../lib/redis.js';
import { QueueStats, type PlatformStatus } from '../lib/ops/queue-stats.js';
import { connectRedis, renderStatus } from './status.js';
import { printFailure, type Printer } from './output.js';
import type { TopInvocation } from './top-options.js';

/** The terminal ztm top draws on (process.stdout when it is a TTY); without one, lines go through the printer. */
export interface TopTerminal {
  write(s: string): void;
  columns: number;
  rows: number;
  onResize(listener: () => void): () => void;
}

export interface TopIo {
  term?: TopTerminal | undefined;
  /** Where q / Ctrl-C are read while frames repeat (process.stdin; raw mode when it is a TTY and so is the output). */
  keys?: NodeJS.ReadStream | undefined;
}

const ESC = '\x1b[';
const ENTER = `${ESC}?1049h${ESC}?25l`;
const LEAVE = `${ESC}?25h${ESC}?1049l`;

/** The frame's lines: a title, wakes in flight, then `ztm status`'s table and figures. */
export function frameLines(s: PlatformStatus, o: { redis: string; intervalS: number | undefined; tty: boolean }, now = Date.now()): string[] {
  const lines: string[] = [];
  const wake = s.queues.find((q) => q.queue === 'wake');
  lines.push(`ztm top · ${o.redis} · ${s.at.slice(11, 19)} UTC${o.intervalS === undefined ? '' : ` · every ${o.intervalS}s`}${o.tty ? ' · q to quit' : ''}`);
  lines.push(wake ? `wakes in flight ${wake.active}  (queued ${wake.waiting + wake.prioritized}, retrying ${wake.delayed})` : 'wakes in flight -');
  lines.push('');
  renderStatus({ json: false, out: (l) => lines.push(l), err: () => undefined }, s, now);
  return lines;
}

/** Draws a frame in place: home, each line cut to the width and cleared to its end, the rest cleared. */
function draw(term: TopTerminal, lines: string[]): void {
  const width = Math.max(20, term.columns);
  const shown = lines.slice(0, Math.max(1, term.rows - 1)).map((l) => `${l.length > width ? l.slice(0, width - 1) : l}${ESC}K`);
  term.write(`${ESC}H${shown.join('\r\n')}\r\n${ESC}J`);
}

export async function runTop(inv: TopInvocation, url: string, p: Printer, cluster: boolean | undefined, io: TopIo = {}): Promise<number> {
  const { term, keys } = io;
  let redis: RedisClient | undefined;
  let stats: QueueStats | undefined;
  const tty = term !== undefined && !p.json;
  let quit!: () => void;
  const quitting = new Promise<void>((resolve) => (quit = resolve));
  let stopped = false;
  const stop = () => {
    stopped = true;
    quit();
  };
  const onKey = (d: Buffer | string) => {
    const s = d.toString();
    if (s.includes('q') || s.includes('Q') || s.includes('\x03')) stop();
  };
  const rawMode = tty && keys?.isTTY === true;
  let offResize = () => undefined as void;
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  // Output gone (the pipe's reader or kubectl exec ended): stop instead of dying on EPIPE.
  if (keys) process.stdout.once('error', stop);
  try {
    redis = await connectRedis(url, 'ztm-top', cluster);
    stats = new QueueStats(redis);
    if (keys && inv.count !== 1) {
      // Keys quit only while frames repeat; a single frame never touches stdin.
      if (rawMode) keys.setRawMode(true);
      keys.on('data', onKey);
      keys.on('error', () => undefined);
      keys.resume();
    }
    if (tty) term.write(ENTER);
    let last: string[] | undefined;
    if (tty) offResize = term.onResize(() => last && draw(term, last));
    let failed = false;
    for (let frame = 0; !stopped && (inv.count === undefined || frame < inv.count); frame++) {
      let status: PlatformStatus | undefined;
      try {
        status = await stats.status({ workers: true });
      } catch (err) {
        // A frame that could not be read: said on it, and the next frame tries again.
        if (inv.count === 1) throw err;
        failed = true;
        if (tty) draw(term, [...(last ?? []).slice(0, 1), `ztm: ${err instanceof Error ? err.message : String(err)}`.slice(0, 300)]);
        else printFailure(p, err);
      }
      if (status) {
        failed = false;
        if (p.json) p.out(JSON.stringify(redactDeep(status)));
        else {
          last = frameLines(status, { redis: describeRedisUrl(url), intervalS: inv.count === 1 ? undefined : inv.intervalS, tty });
          if (tty) draw(term, last);
          else p.out(`${frame > 0 ? '\n' : ''}${last.join('\n')}`);
        }
      }
      if (inv.count !== undefined && frame + 1 >= inv.count) break;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([quitting, new Promise<void>((resolve) => (timer = setTimeout(resolve, inv.intervalS * 1000)))]);
      clearTimeout(timer);
    }
    return failed ? 1 : 0;
  } catch (err) {
    printFailure(p, err);
    return 1;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    process.stdout.off('error', stop);
    offResize();
    if (keys) {
      keys.off('data', onKey);
      if (rawMode) keys.setRawMode(false);
      keys.pause();
    }
    if (tty) term.write(LEAVE);
    await stats?.close();
    await closeRedis(redis);
  }
}

/** process.stdout as a TopTerminal when it is a TTY, else undefined (plain frames). */
export function processTerminal(): TopTerminal | undefined {
  const out = process.stdout;
  if (!out.isTTY) return undefined;
  return {
    write: (s) => void out.write(s),
    get columns() {
      return out.columns || 80;
    },
    get rows() {
      return out.rows || 24;
    },
    onResize(listener) {
      out.on('resize', listener);
      return () => void out.off('resize', listener);
    },
  };
}
