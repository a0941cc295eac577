/**
 * Printing for `ztm`: human tables by default, JSON with --json. Everything printed passes through
 * redaction (lib/redact.ts: secret-named fields at any depth, secret-shaped text), so a token, a
 * password or a signed URL can never reach a terminal or a script.
 */
import { ZtmError } from '../lib/errors.js';
import { redactDeep, redactSecrets } from '../lib/redact.js';

export interface Printer {
  json: boolean;
  out: (line: string) => void;
  err: (line: string) => void;
}

export function printJson(p: Printer, value: unknown): void {
  p.out(JSON.stringify(redactDeep(value), null, 2));
}

export function printError(p: Printer, code: string, message: string): void {
  const text = redactSecrets(message).replace(/\s*\n\s*/g, ' ');
  if (p.json) p.err(JSON.stringify({ error: { code, message: text } }));
  else p.err(`ztm: ${text}`);
}

/** Prints a failure as one line, with the typed error's code (E_INTERNAL for anything else). */
export function printFailure(p: Printer, err: unknown): void {
  printError(p, err instanceof ZtmError ? err.code : 'E_INTERNAL', err instanceof Error ? err.message : String(err));
}

/** A fixed-width table; `columns` picks and orders the fields. */
export function printTable(p: Printer, rawRows: Array<Record<string, unknown>>, columns: string[]): void {
  const rows = redactDeep(rawRows) as Array<Record<string, unknown>>;
  const cell = (v: unknown): string => (v === undefined || v === null || v === '' ? '-' : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]): string => vals.map((v, i) => v.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  p.out(line(columns.map((c) => c.toUpperCase())));
  for (const r of rows) p.out(line(columns.map((c) => cell(r[c]))));
}

/** One `key: value` per line, for a single record. */
export function printRecord(p: Printer, rawRecord: Record<string, unknown>): void {
  const record = redactDeep(rawRecord) as Record<string, unknown>;
  const width = Math.max(...Object.keys(record).map((k) => k.length));
  for (const [k, v] of Object.entries(record)) {
    p.out(`${k.padEnd(width)}  ${v === undefined || v === null || v === '' ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  }
}
