/**
 * Failed authentications per client address, in memory: a small token bucket per address that only
 * failures drain. Checked before a presented credential is looked at, so a flood of made-up bearer
 * tokens (each well-formed one costs a Redis read) or of guessed dashboard passwords is cut off
 * after `burst` failures without touching Redis, at no cost to clients that authenticate. In memory
 * and per replica on purpose: it guards this process's Redis reads and CPU, not a shared budget
 * (the per-token limit in Redis is that). Bounded: at most `maxClients` addresses are remembered,
 * the least recently seen forgotten first. Behind a proxy every client shares the proxy's address;
 * the chart serves the API and the dashboard on ClusterIP Services, where the address is the pod's.
 */

/**
 * The bucket a client address falls in: an IPv4 address (also IPv4-mapped IPv6) itself, an IPv6
 * address its /64 (one host usually holds a whole /64: per address it could fail 2^64 times).
 */
export function clientKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const v4 = /^(?:::ffff:)?([0-9]{1,3}(?:\.[0-9]{1,3}){3})$/i.exec(address);
  if (v4) return v4[1] as string;
  const ip = address.split('%')[0] ?? '';
  if (!ip.includes(':')) return ip;
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const tl = ip.includes('::') && tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(Math.max(0, 8 - h.length - tl.length)).fill('0'), ...tl];
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

export interface FailedAuthLimits {
  /** Failures allowed at once (default 30). */
  burst?: number;
  /** Failures forgiven per minute (default 30). */
  perMin?: number;
  /** Addresses remembered at most (default 10 000). */
  maxClients?: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class FailedAuthLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly burst: number;
  private readonly perMs: number;
  private readonly maxClients: number;
  private readonly now: () => number;

  constructor(o: FailedAuthLimits = {}) {
    this.burst = o.burst ?? 30;
    this.perMs = (o.perMin ?? 30) / 60_000;
    this.maxClients = o.maxClients ?? 10_000;
    this.now = o.now ?? Date.now;
    if (!(this.burst >= 1 && this.perMs > 0 && this.maxClients >= 1)) throw new TypeError('FailedAuthLimiter: burst, perMin and maxClients must be positive');
  }

  /** Whole seconds until `client` may try again (0: it may try now). */
  blockedFor(client: string): number {
    const b = this.refilled(client);
    return b === undefined || b.tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000));
  }

  /** Records one failed authentication of `client`. */
  fail(client: string): void {
    const b = this.refilled(client) ?? { tokens: this.burst, at: this.now() };
    b.tokens = Math.max(0, b.tokens - 1);
    // Re-inserted: the Map's order is the order of last use, oldest first.
    this.buckets.delete(client);
    this.buckets.set(client, b);
    while (this.buckets.size > this.maxClients) {
      const oldest = this.buckets.keys().next().value as string;
      this.buckets.delete(oldest);
    }
  }

  /** Addresses currently remembered (for tests and bounds). */
  get size(): number {
    return this.buckets.size;
  }

  private refilled(client: string): Bucket | undefined {
    const b = this.buckets.get(client);
    if (!b) return undefined;
    const now = this.now();
    if (now > b.at) {
      b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.perMs);
      b.at = now;
    }
    if (b.tokens >= this.burst) {
      // Whole again: forget it (an address that stopped failing costs no memory).
      this.buckets.delete(client);
      return undefined;
    }
    return b;
  }
}
