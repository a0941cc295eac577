/**
 * The delivery layout: which hash slot a tenant's mailboxes, dedup, leases, slot-waits and dead
 * letters live in, and which BullMQ queue carries its drain jobs. Tenants are spread over
 * DELIVERY_SHARDS shards; a shard is one hash tag (`{mbox:<s>.<j>}`) and one queue
 * (`{forward-<s>.<j>}`), so every multi-key script of a tenant stays in one slot while the shards
 * spread over a Redis Cluster's masters. A single Redis node is the one-master case of the same code.
 *
 * The `.<j>` suffix is the smallest number that puts shard `s`'s tag in the s-th of N equal ranges
 * of the 16,384 slots: a cluster whose masters own contiguous, equal slot ranges (what
 * `redis-cli --cluster create` makes) then holds N / masters shards each, not a random split
 * (choose DELIVERY_SHARDS a multiple of the masters; the default 24 is for 1-4, 6, 8, 12).
 *
 * The legacy layout is the single-slot one of earlier versions (`{mbox}`, `{forward}`): the forwarder
 * still drains it and the ingress waits for it to be empty before accepting (docs/operations.md).
 */

/** 24: an even split over 1, 2, 3, 4, 6, 8 or 12 masters (shards per master = 24 / masters). */
export const DEFAULT_DELIVERY_SHARDS = 24;
export const MAX_DELIVERY_SHARDS = 256;
const SLOTS = 16_384;

/** One shard: its index, hash tag of its Redis keys and the name of its drain queue. */
export interface DeliveryShard {
  /** 0..N-1; -1 for the legacy layout. */
  index: number;
  /** Hash tag, braces included: `{mbox:3.17}` (legacy: `{mbox}`). */
  tag: string;
  /** BullMQ queue name: `{forward-3.5}`: BullMQ forbids ':' in queue names (legacy: `{forward}`). */
  queue: string;
}

export const LEGACY_SHARD: DeliveryShard = Object.freeze({ index: -1, tag: '{mbox}', queue: '{forward}' });

const CRC_TABLE = Uint16Array.from({ length: 256 }, (_, b) => {
  let crc = b << 8;
  for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  return crc;
});

/** CRC16/XMODEM, Redis Cluster's key hash, of an ASCII string (tags are ASCII). */
function crc16(s: string): number {
  let crc = 0;
  for (let i = 0; i < s.length; i++) crc = ((crc << 8) & 0xffff) ^ (CRC_TABLE[((crc >> 8) ^ s.charCodeAt(i)) & 0xff] as number);
  return crc;
}

/** The cluster slot of a hash tag's content (`mbox:3.17` for `{mbox:3.17}`). */
export function slotOfTag(inner: string): number {
  return crc16(inner) % SLOTS;
}

/**
 * `<prefix><sep><s>.<j>` whose slot falls in the middle half of the s-th of `count` equal slot
 * ranges (the whole range when it is narrower than 64 slots): away from the range's edges, so a
 * master boundary that is a slot or two off an even split (redis-cli's 5461/10923) still leaves
 * every master count / masters shards.
 */
function spreadTag(prefix: string, s: number, count: number, sep = ':'): string {
  let lo = (s * SLOTS) / count;
  let hi = ((s + 1) * SLOTS) / count;
  if (hi - lo >= 64) [lo, hi] = [lo + (hi - lo) / 4, hi - (hi - lo) / 4];
  for (let j = 0; ; j++) {
    const inner = `${prefix}${sep}${s}.${j}`;
    const slot = slotOfTag(inner);
    if (slot >= lo && slot < hi) return `{${inner}}`;
  }
}

/** FNV-1a 32 of the tenant id: stable across processes and versions (changing it moves tenants). */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const layouts = new Map<number, DeliveryLayout>();

export class DeliveryLayout {
  readonly shards: readonly DeliveryShard[];
  /** True for the single-slot layout of earlier versions (`{mbox}`, `{forward}`). */
  readonly legacy: boolean;

  private constructor(count: number | 'legacy') {
    this.legacy = count === 'legacy';
    if (count === 'legacy') {
      this.shards = [LEGACY_SHARD];
      return;
    }
    this.shards = Array.from({ length: count }, (_, s) => Object.freeze({ index: s, tag: spreadTag('mbox', s, count), queue: spreadTag('forward', s, count, '-') }));
  }

  /** The layout of `count` shards (cached: tags are computed once per process). */
  static of(count: number): DeliveryLayout {
    if (!Number.isInteger(count) || count < 1 || count > MAX_DELIVERY_SHARDS) throw new RangeError(`delivery shards must be an integer from 1 to ${MAX_DELIVERY_SHARDS}, got ${count}`);
    let l = layouts.get(count);
    if (!l) layouts.set(count, (l = new DeliveryLayout(count)));
    return l;
  }

  static readonly LEGACY = new DeliveryLayout('legacy');

  get count(): number {
    return this.shards.length;
  }

  shardOf(tenantId: string): DeliveryShard {
    return this.shards.length === 1 ? (this.shards[0] as DeliveryShard) : (this.shards[fnv1a(tenantId) % this.shards.length] as DeliveryShard);
  }

  tagOf(tenantId: string): string {
    return this.shardOf(tenantId).tag;
  }

  /** The shard whose queue is `queueName`, if it is one of this layout's. */
  shardOfQueue(queueName: string): DeliveryShard | undefined {
    return this.shards.find((s) => s.queue === queueName);
  }
}

let processLayout = DeliveryLayout.of(DEFAULT_DELIVERY_SHARDS);

/**
 * The layout every mailbox, dead-letter store and status reader of this process uses unless given
 * one: set once from DELIVERY_SHARDS when the configuration is parsed (lib/config.ts), because every
 * part of a process (the janitor's dead-letter retry too) must agree with the forwarders on it.
 */
export function deliveryLayout(): DeliveryLayout {
  return processLayout;
}

export function setDeliveryShards(count: number): void {
  processLayout = DeliveryLayout.of(count);
}
