/**
 * The tenants view as server-rendered HTML: a search form (GET), one table, links to the next and
 * first page. No script at all and the style sheet from the same origin, so the page runs under a
 * CSP of `default-src 'none'`. Every value is escaped; the rows carry only TenantRow's fields.
 */
import { TENANT_STATUSES } from '../registry/tenant.js';
import type { TenantRow, TenantsPage } from './tenants-view.js';

export const TENANTS_CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

export const TENANTS_CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1b1f24; background: #f6f7f9; }
header { display: flex; align-items: baseline; gap: 24px; padding: 12px 24px; background: #1f2937; color: #fff; }
header h1 { font-size: 18px; margin: 0; }
header a { color: #c7d2fe; }
main { padding: 16px 24px; }
form { display: flex; gap: 16px; align-items: end; margin-bottom: 12px; }
label { display: flex; flex-direction: column; font-size: 12px; color: #4b5563; }
input, select, button { font: inherit; padding: 4px 8px; }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e5e7eb; white-space: nowrap; }
th { background: #eef0f3; font-weight: 600; }
td.num, th.num { text-align: right; }
.status { padding: 1px 8px; border-radius: 9px; background: #e5e7eb; }
.status-running { background: #d1fae5; } .status-provisioning { background: #fef3c7; } .status-stopping { background: #fde2e2; }
.dead { color: #b91c1c; font-weight: 600; }
.summary, .empty { color: #4b5563; }
.error { color: #b91c1c; font-weight: 600; }
nav.pages { margin-top: 12px; display: flex; gap: 16px; }
`;

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/** `850 ms`, `12.3 s`, `2m 05s`. */
export function formatDuration(ms: number | null): string {
  if (ms === null) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
}

/** `12s ago` / `in 4m` relative to `now`. */
export function formatRelative(iso: string | null, now: number): string {
  if (iso === null) return '–';
  const d = Math.round((Date.parse(iso) - now) / 1000);
  const a = Math.abs(d);
  const text = a < 120 ? `${a}s` : a < 7200 ? `${Math.round(a / 60)}m` : a < 172_800 ? `${Math.round(a / 3600)}h` : `${Math.round(a / 86_400)}d`;
  return d < 0 ? `${text} ago` : `in ${text}`;
}

/** The columns, in order: key (data-col), header, cell. */
const COLUMNS: Array<{ key: string; title: string; num?: boolean; cell: (r: TenantRow, now: number) => string }> = [
  { key: 'tenant', title: 'Tenant', cell: (r) => escapeHtml(r.tenant_id) },
  { key: 'status', title: 'Status', cell: (r) => `<span class="status status-${escapeHtml(r.status)}">${escapeHtml(r.status)}</span>` },
  { key: 'pod', title: 'Pod', cell: (r) => (r.pod ? escapeHtml(r.pod) : '–') },
  { key: 'last-activity', title: 'Last activity', cell: (r, now) => time(r.last_activity, now) },
  { key: 'idle-deadline', title: 'Idle deadline', cell: (r, now) => time(r.idle_deadline, now) },
  { key: 'wake-p50', title: 'Wake p50', num: true, cell: (r) => formatDuration(r.wakes.p50_ms) },
  { key: 'wake-p99', title: 'Wake p99', num: true, cell: (r) => formatDuration(r.wakes.p99_ms) },
  { key: 'wakes', title: 'Wakes', num: true, cell: (r) => String(r.wakes.count) },
  { key: 'messages-today', title: 'Messages today', num: true, cell: (r) => String(r.messages_today) },
  { key: 'dead-letters', title: 'Dead letters', num: true, cell: (r) => (r.dead_letters > 0 ? `<span class="dead">${r.dead_letters}</span>` : '0') },
];
export const TENANT_COLUMNS = COLUMNS.map((c) => c.title);

function time(iso: string | null, now: number): string {
  return iso === null ? '–' : `<time datetime="${escapeHtml(iso)}" title="${escapeHtml(iso)}">${escapeHtml(formatRelative(iso, now))}</time>`;
}

function href(params: Record<string, string | undefined>): string {
  const qs = new URLSearchParams(Object.entries(params).filter((e): e is [string, string] => Boolean(e[1]))).toString();
  return `tenants${qs ? `?${qs}` : ''}`;
}

export interface PageContext {
  /** The current query as given (shown back in the form), even when it was refused. */
  form: { q: string; status: string; limit?: number };
  page?: TenantsPage;
  error?: string;
  /** This page was reached through a cursor (a "first page" link is shown). */
  paged?: boolean;
}

export function renderTenantsPage(c: PageContext): string {
  const now = c.page ? Date.parse(c.page.at) : Date.now();
  const options = ['', ...TENANT_STATUSES].map((s) => `<option value="${s}"${s === c.form.status ? ' selected' : ''}>${s || 'any'}</option>`).join('');
  const limit = c.form.limit !== undefined ? String(c.form.limit) : undefined;
  const parts: string[] = [
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>Tenants · Agentic Tenancy</title><link rel="stylesheet" href="tenants.css"></head><body>',
    '<header><h1>Tenants</h1><a href="./">Queues (Bull Board)</a></header><main>',
    `<form method="get" action="tenants" role="search"><label>Tenant id starts with<input name="q" value="${escapeHtml(c.form.q)}" maxlength="40" autocomplete="off"></label>`,
    `<label>Status<select name="status">${options}</select></label>${limit ? `<input type="hidden" name="limit" value="${escapeHtml(limit)}">` : ''}<button type="submit">Search</button></form>`,
  ];
  if (c.error) parts.push(`<p class="error" role="alert">${escapeHtml(c.error)}</p>`);
  const p = c.page;
  if (p) {
    parts.push(`<p class="summary">${p.rows.length} tenant${p.rows.length === 1 ? '' : 's'} on this page · ${p.scanned} registry record${p.scanned === 1 ? '' : 's'} read · as of <time datetime="${p.at}">${p.at.slice(11, 19)} UTC</time>${p.dead_letters_capped ? ' · dead letters counted from the newest entries only' : ''}</p>`);
    parts.push('<table id="tenants"><thead><tr>', ...COLUMNS.map((col) => `<th scope="col" data-col="${col.key}"${col.num ? ' class="num"' : ''}>${col.title}</th>`), '</tr></thead><tbody>');
    for (const r of p.rows) {
      parts.push(`<tr data-tenant="${escapeHtml(r.tenant_id)}">`, ...COLUMNS.map((col) => `<td data-col="${col.key}"${col.num ? ' class="num"' : ''}>${col.cell(r, now)}</td>`), '</tr>');
    }
    parts.push('</tbody></table>');
    if (p.rows.length === 0) parts.push(`<p class="empty">No tenant ${p.next_cursor ? 'in this part of the registry' : 'matches'}${p.next_cursor ? ': the next page searches on' : '.'}</p>`);
    const q = c.form.q || undefined;
    const status = c.form.status || undefined;
    const links = [
      ...(c.paged ? [`<a href="${escapeHtml(href({ q, status, limit }))}">First page</a>`] : []),
      ...(p.next_cursor ? [`<a rel="next" href="${escapeHtml(href({ q, status, limit, cursor: p.next_cursor }))}">Next page</a>`] : []),
    ];
    if (links.length) parts.push(`<nav class="pages">${links.join('')}</nav>`);
  }
  parts.push('</main></body></html>');
  return parts.join('');
}
