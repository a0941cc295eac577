/**
 * Tenant state in S3: one object per tenant, `tenants/<id>/state.tar.gz` (the agent's whole state,
 * agent/state-archive.ts); tenants saved before whole-state checkpoints have `tenants/<id>/brain.db`,
 * which a wake still restores while no state.tar.gz exists. The platform holds the
 * credentials; a tenant pod only ever gets presigned URLs for its own key, so an untrusted agent
 * cannot open another tenant's state.
 */
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { ValidationError, ZtmError } from '../errors.js';
import { assertTenantId } from '../validate.js';

export interface StateStoreOptions {
  s3: S3Client;
  bucket: string;
}

export interface PresignedState {
  /** GET of the tenant's state archive (404 when the tenant has no saved state yet). */
  getUrl: string;
  /** PUT of the tenant's state archive (plain body; Content-Type is not signed). */
  putUrl: string;
  /** GET of the older single brain.db, read only when the archive does not exist (404 when neither does). */
  legacyGetUrl?: string;
  /** ISO time after which both URLs are refused; refresh them before (shim: POST /state-urls). */
  expiresAt: string;
}

export interface StateObjectInfo {
  key: string;
  bytes: number;
  etag: string | undefined;
  lastModified: string | undefined;
}

/** SigV4 query signatures are valid for at most 7 days. */
export const PRESIGN_MAX_S = 604_800;
export const PRESIGN_DEFAULT_S = 3_600;
const BUCKET_PATTERN = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** `tenants/<id>/`: with the trailing slash, tenant `al` never matches tenant `alice`'s objects. */
export function tenantPrefix(tenantId: string): string {
  return `tenants/${assertTenantId(tenantId)}/`;
}

export function stateKey(tenantId: string): string {
  return `${tenantPrefix(tenantId)}state.tar.gz`;
}

/** Where tenants were saved before whole-state checkpoints (one brain.db): still restored. */
export function legacyStateKey(tenantId: string): string {
  return `${tenantPrefix(tenantId)}brain.db`;
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : 'Error';
}

export class StateStore {
  readonly bucket: string;
  private readonly s3: S3Client;

  constructor(options: StateStoreOptions) {
    if (!options || typeof options !== 'object') throw new ValidationError('StateStore needs { s3, bucket }');
    const { s3, bucket } = options;
    if (!s3 || typeof (s3 as { send?: unknown }).send !== 'function') {
      throw new ValidationError('StateStore: s3 must be an S3Client');
    }
    if (typeof bucket !== 'string' || !BUCKET_PATTERN.test(bucket) || bucket.includes('..')) {
      throw new ValidationError('StateStore: invalid bucket name (3-63 of a-z 0-9 . -, starting and ending alphanumeric)');
    }
    this.s3 = s3;
    this.bucket = bucket;
  }

  /** Creates the bucket unless it exists; safe to call from several replicas at once. */
  async ensureBucket(): Promise<void> {
    try {
      await this.s3.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (httpStatus(err) !== 404 && errorName(err) !== 'NotFound') {
        throw new ZtmError('E_INTERNAL', `S3 bucket ${this.bucket}: head failed (${errorName(err)})`, { cause: err });
      }
    }
    try {
      await this.s3.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      // Lost a race with another replica, or a re-run: the bucket is there, which is the goal.
      const name = errorName(err);
      if (name === 'BucketAlreadyOwnedByYou' || name === 'BucketAlreadyExists' || httpStatus(err) === 409) return;
      throw new ZtmError('E_INTERNAL', `S3 bucket ${this.bucket}: create failed (${name})`, { cause: err });
    }
  }

  /**
   * Presigned GET and PUT of exactly this tenant's key. With temporary credentials (IRSA) the
   * URLs also stop working when the session that signed them ends, so keep expiresInS short and
   * refresh; presigning is local computation, no request is made.
   */
  async presign(tenantId: string, options: { expiresInS?: number } = {}): Promise<PresignedState> {
    const key = stateKey(tenantId);
    const expiresIn = options.expiresInS ?? PRESIGN_DEFAULT_S;
    if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > PRESIGN_MAX_S) {
      throw new ValidationError(`invalid presign expiry: a whole number of seconds from 1 to ${PRESIGN_MAX_S}`);
    }
    // Taken before signing so the reported expiry is never later than the real one.
    const expiresAt = new Date(Date.now() + expiresIn * 1000).toISOString();
    const [getUrl, putUrl, legacyGetUrl] = await Promise.all([
      getSignedUrl(this.s3, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn }),
      getSignedUrl(this.s3, new PutObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn }),
      getSignedUrl(this.s3, new GetObjectCommand({ Bucket: this.bucket, Key: legacyStateKey(tenantId) }), { expiresIn }),
    ]);
    return { getUrl, putUrl, legacyGetUrl, expiresAt };
  }

  /** The saved state's metadata (the archive, else the older brain.db), or undefined when the tenant has none. */
  async head(tenantId: string): Promise<StateObjectInfo | undefined> {
    return (await this.headKey(stateKey(tenantId))) ?? this.headKey(legacyStateKey(tenantId));
  }

  private async headKey(key: string): Promise<StateObjectInfo | undefined> {
    try {
      const out = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return {
        key,
        bytes: out.ContentLength ?? 0,
        etag: out.ETag,
        lastModified: out.LastModified?.toISOString(),
      };
    } catch (err) {
      if (httpStatus(err) === 404 || errorName(err) === 'NotFound') return undefined;
      throw new ZtmError('E_INTERNAL', `S3 head ${key} failed (${errorName(err)})`, { cause: err });
    }
  }

  /** Deletes every object under `tenants/<id>/`; returns how many were deleted. */
  async purge(tenantId: string): Promise<number> {
    const prefix = tenantPrefix(tenantId);
    let deleted = 0;
    // Each listing starts over from the beginning: the previous page's keys are gone by then,
    // so this also picks up objects written while the purge runs.
    for (;;) {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, MaxKeys: 1000 }));
      const keys = (page.Contents ?? []).map((o) => o.Key).filter((k): k is string => typeof k === 'string' && k.startsWith(prefix));
      if (keys.length === 0) return deleted;
      const out = await this.s3.send(new DeleteObjectsCommand({
        Bucket: this.bucket,
        Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
      }));
      const failed = out.Errors ?? [];
      if (failed.length > 0) {
        throw new ZtmError('E_INTERNAL', `S3 purge of ${prefix}: ${failed.length} object(s) not deleted (${failed[0]?.Code ?? 'unknown'})`);
      }
      deleted += keys.length;
    }
  }
}
