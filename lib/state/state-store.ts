/**
 * Tenant state in S3: one object per tenant incarnation, `tenants/<id>/<incarnation>/state.tar.gz`
 * (the agent's whole state, agent/state-archive.ts), so a deleted and re-created id starts clean and
 * a URL of the old tenant names an object the new one never reads. Records from before incarnations
 * keep `tenants/<id>/state.tar.gz`, and those saved before whole-state checkpoints
 * `tenants/<id>/brain.db`, which a wake still restores while no state.tar.gz exists. The platform
 * holds the credentials; a tenant pod only ever gets presigned URLs for its own key: a GET, and a
 * POST form whose policy bounds the upload's size (content-length-range), so an untrusted agent can
 * neither open another tenant's state nor fill the bucket.
 */
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { createPresignedPost } from '@aws-sdk/s3-presigned-post';
import { ValidationError, ZtmError } from '../errors.js';
import { ObjectUrlSigner } from './object-url-signer.js';
import { assertTenantId } from '../validate.js';

export interface StateStoreOptions {
  s3: S3Client;
  bucket: string;
  /** STATE_MAX_BYTES: the state's bound (uncompressed); uploads above stateUploadLimit(it) are refused by S3. */
  maxStateBytes?: number;
}

/** Whose state: a tenant record (its incarnation picks the key), or an id alone (records from before incarnations). */
export type StateOwner = string | { tenant_id: string; incarnation?: string | undefined };

export interface PresignedState {
  /** GET of the tenant's state archive (404 when the tenant has no saved state yet). */
  getUrl: string;
  /**
   * Upload of the tenant's state archive: a presigned POST form, encoded as `<bucket URL>?<form
   * fields>` (key, policy with content-length-range, X-Amz-* signature fields); agent/state-transfer.ts
   * posts the file with those fields as multipart/form-data. A plain presigned PUT URL also works there.
   */
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

/** What tenant ids' incarnations look like (lib/registry/tenant.ts sets them): one path segment. */
const INCARNATION = /^[A-Za-z0-9_-]{1,128}$/;
export const DEFAULT_MAX_STATE_BYTES = 512 * 1_048_576;

/**
 * The largest upload the POST policy admits for a state bounded by `maxStateBytes` uncompressed:
 * the archive is gzip (incompressible data grows by well under 1%) plus a 512-byte tar header per entry.
 */
export function stateUploadLimit(maxStateBytes: number): number {
  return maxStateBytes + Math.ceil(maxStateBytes / 64) + 1_048_576;
}

/** SigV4 query signatures are valid for at most 7 days. */
export const PRESIGN_MAX_S = 604_800;
export const PRESIGN_DEFAULT_S = 3_600;
const BUCKET_PATTERN = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** `tenants/<id>/`: with the trailing slash, tenant `al` never matches tenant `alice`'s objects. */
export function tenantPrefix(tenantId: string): string {
  return `tenants/${assertTenantId(tenantId)}/`;
}

function ownerParts(owner: StateOwner): { id: string; incarnation: string | undefined } {
  if (typeof owner === 'string') return { id: assertTenantId(owner), incarnation: undefined };
  if (owner === null || typeof owner !== 'object') throw new ValidationError('state owner: expected a tenant id or { tenant_id, incarnation? }');
  const { incarnation } = owner;
  if (incarnation !== undefined && (typeof incarnation !== 'string' || !INCARNATION.test(incarnation))) {
    throw new ValidationError('state owner: incarnation must be 1-128 of A-Z a-z 0-9 _ -');
  }
  return { id: assertTenantId(owner.tenant_id), incarnation };
}

/** `tenants/<id>/<incarnation>/state.tar.gz`, or `tenants/<id>/state.tar.gz` for a record without incarnation. */
export function stateKey(owner: StateOwner): string {
  const { id, incarnation } = ownerParts(owner);
  return `${tenantPrefix(id)}${incarnation === undefined ? '' : `${incarnation}/`}state.tar.gz`;
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
  /** The largest upload a presigned POST admits. */
  readonly uploadLimit: number;
  private readonly s3: S3Client;
  /** The state GETs' signer (getSignedUrl's URLs without its per-call endpoint rules: a wake signs before it starts). */
  private readonly urls: ObjectUrlSigner;

  constructor(options: StateStoreOptions) {
    if (!options || typeof options !== 'object') throw new ValidationError('StateStore needs { s3, bucket }');
    const { s3, bucket } = options;
    if (!s3 || typeof (s3 as { send?: unknown }).send !== 'function') {
      throw new ValidationError('StateStore: s3 must be an S3Client');
    }
    if (typeof bucket !== 'string' || !BUCKET_PATTERN.test(bucket) || bucket.includes('..')) {
      throw new ValidationError('StateStore: invalid bucket name (3-63 of a-z 0-9 . -, starting and ending alphanumeric)');
    }
    const maxState = options.maxStateBytes ?? DEFAULT_MAX_STATE_BYTES;
    if (!Number.isInteger(maxState) || maxState < 1) throw new ValidationError('StateStore: maxStateBytes must be a positive whole number');
    this.s3 = s3;
    this.bucket = bucket;
    this.uploadLimit = stateUploadLimit(maxState);
    this.urls = new ObjectUrlSigner(s3, bucket);
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
   * Presigned GET and upload (a POST form, size-bounded) of exactly this tenant incarnation's key,
   * and for a record without incarnation the GET of the older brain.db. With temporary credentials
   * (IRSA) the URLs also stop working when the session that signed them ends, so keep expiresInS
   * short and refresh; presigning is local computation, no request is made.
   */
  async presign(owner: StateOwner, options: { expiresInS?: number } = {}): Promise<PresignedState> {
    const { id, incarnation } = ownerParts(owner);
    const key = stateKey(owner);
    const expiresIn = options.expiresInS ?? PRESIGN_DEFAULT_S;
    if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > PRESIGN_MAX_S) {
      throw new ValidationError(`invalid presign expiry: a whole number of seconds from 1 to ${PRESIGN_MAX_S}`);
    }
    // Taken before signing so the reported expiry is never later than the real one.
    const expiresAt = new Date(Date.now() + expiresIn * 1000).toISOString();
    const [getUrl, post, legacyGetUrl] = await Promise.all([
      this.urls.getUrl(key, { expiresIn }),
      // The client type of the package's own pinned client-s3 copy; the same class at run time.
      createPresignedPost(this.s3 as unknown as Parameters<typeof createPresignedPost>[0], {
        Bucket: this.bucket,
        Key: key,
        Conditions: [['content-length-range', 1, this.uploadLimit]],
        Expires: expiresIn,
      }),
      incarnation === undefined
        ? this.urls.getUrl(legacyStateKey(id), { expiresIn })
        : undefined,
    ]);
    const putUrl = new URL(post.url);
    for (const [k, v] of Object.entries(post.fields)) putUrl.searchParams.set(k, v);
    const out: PresignedState = { getUrl, putUrl: putUrl.toString(), expiresAt };
    if (legacyGetUrl !== undefined) out.legacyGetUrl = legacyGetUrl;
    return out;
  }

  /** The saved state's metadata (the archive, else for a record without incarnation the older brain.db), or undefined when there is none. */
  async head(owner: StateOwner): Promise<StateObjectInfo | undefined> {
    const { id, incarnation } = ownerParts(owner);
    const found = await this.headKey(stateKey(owner));
    if (found || incarnation !== undefined) return found;
    return this.headKey(legacyStateKey(id));
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

  /** Deletes every object under `tenants/<id>/` (every incarnation's, and the older forms); returns how many were deleted. */
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
