/**
 * Presigned GET URLs of one bucket's objects, as the SDK's getSignedUrl makes them (the same
 * S3RequestPresigner, so byte for byte the same URL for the same instant), without what getSignedUrl
 * repeats on every call: the S3 endpoint rules and a clone of the client's middleware stack, ~2.7 ms
 * of CPU per URL on a two-core machine against ~0.15 ms for the signature itself. A wake signs two
 * of them before its start (docs/benchmarks.md), a burst of twenty wakes forty in one process.
 *
 * The bucket's endpoint (scheme, host, the path before the key, the signing region and service) is
 * learnt once from one getSignedUrl of a probe key and reused: it depends on the client's region,
 * endpoint and path style, which never change. Credentials are asked of the client at every
 * signature (its provider caches and refreshes them: IRSA's expire). A key outside the plain
 * characters state keys use, or a bucket whose URL does not end in the probe key, goes through
 * getSignedUrl as before.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { S3RequestPresigner, getSignedUrl } from '@aws-sdk/s3-request-presigner';

/** What the probe URL told about the bucket's URLs. */
interface BucketUrl {
  protocol: string;
  hostname: string;
  port: number | undefined;
  /** The path up to the key, e.g. `/bucket/` (path style) or `/` (virtual host). */
  prefix: string;
  /** Query parameters the SDK adds that are not the signature's (e.g. `x-id=GetObject`), in order. */
  query: Array<[string, string]>;
  region: string;
  service: string;
  presigner: S3RequestPresigner;
}

const PROBE_KEY = 'ztm-endpoint-probe';
/** Keys signed here: what stateKey() makes (tenant ids and incarnations are of these characters). */
const PLAIN_KEY = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/;

export interface SignOptions {
  expiresIn: number;
  /** The signature's instant (default: now); tests compare with getSignedUrl at the same one. */
  signingDate?: Date;
}

export class ObjectUrlSigner {
  private bucketUrl: Promise<BucketUrl | undefined> | undefined;

  constructor(private readonly s3: S3Client, private readonly bucket: string) {}

  /** A presigned GET of `key`, valid for `expiresIn` seconds. */
  async getUrl(key: string, options: SignOptions): Promise<string> {
    const url = PLAIN_KEY.test(key) ? await this.resolved() : undefined;
    if (!url) return getSignedUrl(this.s3, new GetObjectCommand({ Bucket: this.bucket, Key: key }), signOptions(options));
    const signed = await url.presigner.presign({
      method: 'GET', protocol: url.protocol, hostname: url.hostname, port: url.port, path: `${url.prefix}${key}`,
      query: Object.fromEntries(url.query), headers: {},
    }, { ...signOptions(options), signingRegion: url.region, signingService: url.service });
    return formatUrl(signed);
  }

  /** The bucket's URL shape, learnt once (signing is local: no request to S3); a probe that failed (credentials not resolvable yet) is tried again next time. */
  private resolved(): Promise<BucketUrl | undefined> {
    this.bucketUrl ??= this.probe().catch((err: unknown) => {
      this.bucketUrl = undefined;
      throw err;
    });
    return this.bucketUrl;
  }

  private async probe(): Promise<BucketUrl | undefined> {
    const probe = new URL(await getSignedUrl(this.s3, new GetObjectCommand({ Bucket: this.bucket, Key: PROBE_KEY }), { expiresIn: 60 }));
    const [, , region, service, terminator] = (probe.searchParams.get('X-Amz-Credential') ?? '').split('/');
    if (!probe.pathname.endsWith(`/${PROBE_KEY}`) || !region || !service || terminator !== 'aws4_request') return undefined;
    return {
      protocol: probe.protocol,
      hostname: probe.hostname,
      port: probe.port ? Number(probe.port) : undefined,
      prefix: probe.pathname.slice(0, -PROBE_KEY.length),
      query: [...probe.searchParams].filter(([k]) => !k.startsWith('X-Amz-')),
      region,
      service,
      // As getSignedUrl builds it: the client's configuration, the endpoint's signing name and region.
      presigner: new S3RequestPresigner({ ...this.s3.config, signingName: service, region: async () => region }),
    };
  }
}

function signOptions(o: SignOptions): { expiresIn: number; signingDate?: Date } {
  return o.signingDate ? { expiresIn: o.expiresIn, signingDate: o.signingDate } : { expiresIn: o.expiresIn };
}

/** RFC 3986 escaping as the SDK's formatUrl does it (encodeURIComponent plus !'()*). */
const escapeUri = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** The signed request as a URL, query keys sorted (as the SDK's formatUrl). */
function formatUrl(r: { protocol: string; hostname: string; port?: number | undefined; path: string; query?: Record<string, string | string[] | null> }): string {
  const query = Object.entries(r.query ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => `${escapeUri(k)}=${escapeUri(x)}`) : v === null ? [escapeUri(k)] : [`${escapeUri(k)}=${escapeUri(v)}`]));
  return `${r.protocol}//${r.hostname}${r.port ? `:${r.port}` : ''}${r.path}${query.length ? `?${query.join('&')}` : ''}`;
}
