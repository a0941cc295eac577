/**
 * Human-readable log lines for a terminal (pino-pretty's shape, without its worker thread):
 * `12:04:05.123 INFO  janitor  started embedded redis-server  url=redis://127.0.0.1:6379`. It reads
 * the JSON line pino has already written, so redaction (lib/logger.ts) has run before anything is
 * shown here; a line that is not JSON passes through as it is.
 */
import type { DestinationStream } from 'pino';

export type LogFormat = 'json' | 'pretty' | 'auto';
export const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'pretty'];

const LEVELS: Record<number, { name: string; color: string }> = {
  10: { name: 'TRACE', color: '90' },
  20: { name: 'DEBUG', color: '36' },
  30: { name: 'INFO ', color: '32' },
  40: { name: 'WARN ', color: '33' },
  50: { name: 'ERROR', color: '31' },
  60: { name: 'FATAL', color: '35' },
};

/** Fields shown in the line's head, not repeated as key=value. */
const HEAD = new Set(['level', 'time', 'service', 'msg', 'pid', 'hostname']);

export interface PrettyOptions {
  colors: boolean;
  write: (text: string) => void;
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) || v === '' ? JSON.stringify(v) : v;
  return JSON.stringify(v) ?? String(v);
}

/** One JSON log line → one readable line (exported for tests). */
export function prettyLine(line: string, colors: boolean): string {
  let rec: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return line.endsWith('\n') ? line : `${line}\n`;
    rec = parsed as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const paint = (code: string, s: string): string => (colors ? `\x1b[${code}m${s}\x1b[0m` : s);
  const time = typeof rec.time === 'string' ? rec.time.slice(11, 23) : typeof rec.time === 'number' ? new Date(rec.time).toISOString().slice(11, 23) : '';
  const level = LEVELS[Number(rec.level)] ?? { name: String(rec.level ?? '?').toUpperCase().padEnd(5), color: '0' };
  const service = typeof rec.service === 'string' ? rec.service : '';
  const msg = typeof rec.msg === 'string' ? rec.msg : '';
  const fields = Object.entries(rec).filter(([k]) => !HEAD.has(k)).map(([k, v]) => `${paint('90', `${k}=`)}${formatValue(v)}`);
  const head = [time && paint('90', time), paint(level.color, level.name), service && paint('1', service), msg].filter(Boolean).join(' ');
  return `${fields.length > 0 ? `${head}  ${fields.join(' ')}` : head}\n`;
}

/** A pino destination that writes each line pretty. pino writes whole lines, one per call. */
export function prettyDestination(options: PrettyOptions): DestinationStream {
  return {
    write(chunk: string): void {
      for (const line of chunk.split('\n')) if (line !== '') options.write(prettyLine(line, options.colors));
    },
  };
}

/** Whether `format` means pretty output on a stream that `isTTY` says is (or is not) a terminal. */
export function wantsPretty(format: LogFormat, isTTY: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && isTTY);
}
