/**
 * The tenants view's data: one page of tenants from the registry, each with what Redis knows of it
 * (last activity and idle deadline from the activity index, recent wake times and today's
 * messages from lib/tenants/tenant-stats.ts, dead letters from the dead-letter index).
 *
 * Paginated by the registry's own cursor (a DynamoDB Scan with Limit + ExclusiveStartKey, one
 * page per call), so a page view never reads the whole table. A search (id prefix, status) filters
 * the scanned items as a FilterExpression would: each scan call asks for no more items than the
 * page still lacks (a page never overflows, its cursor is exact), and a page view stops after
 * SCAN_CALLS_MAX calls, with a cursor to go on; a selective search may show short pages.
 *
 * Only the fields below leave this module: never the bot token, the incarnation or an address.
 */
import { ValidationError } from '../errors.js';
import type { RedisClient } from '../redis.js';
import { activityKey, deadIndexKey, IDLE_DEADLINE_KEY } from '../keys.js';
import { DEAD_LETTER_INDEX } from '../delivery/dead-letters.js';
import { deliveryLayout } from '../delivery/shards.js';
import { TENANT_STATUSES, isTenantStatus, type TenantStatus } from '../registry/tenant.js';
import { messagesToday, percentile, wakeTimes } from '../tenants/tenant-stats.js';

/** What the view needs of a registry record (a PublicTenant or a Tenant has these). */
export interface ListedTenant {
  tenant_id: string;
  status: TenantStatus;
  pod_name?: string;
  idle_timeout_s: number;
  last_active_at?: string;
}

/** One page of the registry (TenantRegistry.list, or `tenant.list` through the admin queue). */
export type ListTenants = (args: { limit: number; cursor?: string }) => Promise<{ items: ListedTenant[]; cursor?: string }>;

export interface TenantsQuery {
  /** Tenant id prefix (`a`, `acme-`); empty: every tenant. */
  prefix: string;
  status: TenantStatus | undefined;
  cursor: string | undefined;
  limit: number;
}

export interface WakeFigures {
  /** Wakes recorded (the last WAKE_TIMES_KEPT at most). */
  count: number;
  p50_ms: number | null;
  p99_ms: number | null;
}

export interface TenantRow {
  tenant_id: string;
  status: TenantStatus;
  pod: string | null;
  /** ISO time of the last delivery: the activity index while awake, else the registry's last_active_at. */
  last_activity: string | null;
  /** ISO time the idle check stops the agent; null while asleep. */
  idle_deadline: string | null;
  idle_timeout_s: number;
  wakes: WakeFigures;
  messages_today: number;
  dead_letters: number;
}

export interface TenantsPage {
  at: string;
  query: { prefix: string; status: TenantStatus | null; limit: number };
  rows: TenantRow[];
  /** Registry items read for this page (a search reads more than it shows). */
  scanned: number;
  /** Pass back as `cursor` for the next page; absent on the last. */
  next_cursor?: string;
  /** Dead letters counted per tenant from at most this many entries of the index (the rest not counted). */
  dead_letters_capped: boolean;
}

export const PAGE_SIZE_DEFAULT = 25;
export const PAGE_SIZE_MAX = 200;
/** Registry calls one page view may make while searching. */
export const SCAN_CALLS_MAX = 10;
/** Dead-letter index entries read per page view and index (ids only) to count them per tenant. */
export const DEAD_LETTERS_READ_MAX = 10_000;

const PREFIX_PATTERN = /^[a-z0-9-]{0,40}$/;
const CURSOR_PATTERN = /^[A-Za-z0-9_-]{1,512}$/;

/** Validates the view's query string (`q`, `status`, `cursor`, `limit`); ValidationError names the bad one. */
export function parseTenantsQuery(raw: Record<string, unknown>): TenantsQuery {
  const one = (name: string): string | undefined => {
    const v = raw[name];
    if (v === undefined || v === '') return undefined;
    if (typeof v !== 'string') throw new ValidationError(`invalid ${name}: give it once`);
    return v;
  };
  const prefix = (one('q') ?? '').trim().toLowerCase();
  if (!PREFIX_PATTERN.test(prefix)) throw new ValidationError("invalid q: a tenant id prefix (lowercase letters, digits, '-', at most 40)");
  const status = one('status');
  if (status !== undefined && !isTenantStatus(status)) throw new ValidationError(`invalid status: one of ${TENANT_STATUSES.join('|')}`);
  const cursor = one('cursor');
  if (cursor !== undefined && !CURSOR_PATTERN.test(cursor)) throw new ValidationError('invalid cursor: pass back the one the previous page gave');
  const limitRaw = one('limit');
  const limit = limitRaw === undefined ? PAGE_SIZE_DEFAULT : Number(limitRaw);
  if (!/^[0-9]{1,4}$/.test(limitRaw ?? '1') || !Number.isInteger(limit) || limit < 1 || limit > PAGE_SIZE_MAX) {
    throw new ValidationError(`invalid limit: a whole number from 1 to ${PAGE_SIZE_MAX}`);
  }
  return { prefix, status, cursor, limit };
}

export function matches(t: ListedTenant, q: Pick<TenantsQuery, 'prefix' | 'status'>): boolean {
  return t.tenant_id.startsWith(q.prefix) && (q.status === undefined || t.status === q.status);
}

/** What Redis holds for the page's tenants, aligned with them. */
export interface RedisFacts {
  lastActivityMs: Array<number | null>;
  idleDeadlineMs: Array<number | null>;
  wakeTimes: number[][];
  messagesToday: number[];
  deadLetters: Map<string, number>;
}

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined || !Number.isFinite(ms) ? null : new Date(ms).toISOString());

/** Pure: the rows of a page from the registry's records and Redis's facts. */
export function assembleRows(tenants: readonly ListedTenant[], f: RedisFacts): TenantRow[] {
  return tenants.map((t, i) => {
    const indexed = f.lastActivityMs[i] ?? null;
    const stored = t.last_active_at ? Date.parse(t.last_active_at) : null;
    const last = indexed !== null && (stored === null || indexed >= stored) ? indexed : stored;
    // The idle deadline exists only while the tenant is in the activity index (awake).
    const deadline = f.idleDeadlineMs[i] ?? (indexed !== null ? indexed + t.idle_timeout_s * 1000 : null);
    const wakes = f.wakeTimes[i] ?? [];
    return {
      tenant_id: t.tenant_id,
      status: t.status,
      pod: t.pod_name ?? null,
      last_activity: iso(last),
      idle_deadline: iso(deadline),
      idle_timeout_s: t.idle_timeout_s,
      wakes: { count: wakes.length, p50_ms: percentile(wakes, 50) ?? null, p99_ms: percentile(wakes, 99) ?? null },
      messages_today: f.messagesToday[i] ?? 0,
      dead_letters: f.deadLetters.get(t.tenant_id) ?? 0,
    };
  });
}

/** Dead letters per tenant, from the index's ids (`<tenant>.<chat>.<update>`; a tenant id has no dot). */
export function countDeadLetters(ids: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const id of ids) {
    const tenant = id.slice(0, id.indexOf('.'));
    if (tenant) out.set(tenant, (out.get(tenant) ?? 0) + 1);
  }
  return out;
}

const scores = (values: Array<string | null>): Array<number | null> => values.map((v) => (v === null ? null : Number(v)));

export class TenantsView {
  constructor(private readonly o: { redis: RedisClient; list: ListTenants }) {}

  /** One page: the registry read a page at a time (see the module comment), then Redis for those tenants. */
  async page(q: TenantsQuery, now = Date.now()): Promise<TenantsPage> {
    const picked: ListedTenant[] = [];
    let cursor = q.cursor;
    let scanned = 0;
    const filtering = q.prefix !== '' || q.status !== undefined;
    for (let calls = 0; calls < SCAN_CALLS_MAX && picked.length < q.limit; calls++) {
      const page = await this.o.list({ limit: q.limit - picked.length, ...(cursor ? { cursor } : {}) });
      scanned += page.items.length;
      for (const t of page.items) if (!filtering || matches(t, q)) picked.push(t);
      cursor = page.cursor;
      if (!cursor || !filtering) break;
    }
    const facts = await this.facts(picked.map((t) => t.tenant_id), now);
    return {
      at: new Date(now).toISOString(),
      query: { prefix: q.prefix, status: q.status ?? null, limit: q.limit },
      rows: assembleRows(picked, facts),
      scanned,
      ...(cursor ? { next_cursor: cursor } : {}),
      dead_letters_capped: facts.capped,
    };
  }

  /**
   * Redis reads for a page: two ZMSCOREs, the day's counts (a HMGET and a TTL per delivery shard of
   * the page's tenants and of the earlier single hash), one LRANGE per tenant, and one ZRANGE of
   * dead-letter ids per index the page's tenants write to (their delivery shards', at most one per
   * tenant) and the legacy one (letters from before sharding); sent together.
   */
  private async facts(ids: string[], now: number): Promise<RedisFacts & { capped: boolean }> {
    const r = this.o.redis;
    if (ids.length === 0) return { lastActivityMs: [], idleDeadlineMs: [], wakeTimes: [], messagesToday: [], deadLetters: new Map(), capped: false };
    const layout = deliveryLayout();
    const indexes = [...new Set([DEAD_LETTER_INDEX, ...(layout.legacy ? [] : ids.map((id) => deadIndexKey(layout.shardOf(id).tag)))])];
    const [last, deadline, wakes, messages, dead] = await Promise.all([
      r.zmscore(activityKey, ...ids), r.zmscore(IDLE_DEADLINE_KEY, ...ids), wakeTimes(r, ids), messagesToday(r, ids, now),
      Promise.all(indexes.map((key) => r.zrange(key, 0, DEAD_LETTERS_READ_MAX - 1))),
    ]);
    return {
      lastActivityMs: scores(last), idleDeadlineMs: scores(deadline), wakeTimes: wakes, messagesToday: messages,
      deadLetters: countDeadLetters(dead.flat()), capped: dead.some((d) => d.length >= DEAD_LETTERS_READ_MAX),
    };
  }
}
