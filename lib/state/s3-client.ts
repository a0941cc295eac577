/**
 * One way to build the S3 client for the whole platform, so local runs (s3rver) and AWS differ
 * only by whether an endpoint is configured.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { ValidationError } from '../errors.js';
import { splitStoreEndpoint } from '../platform/store-credentials.js';

export interface S3ClientOptions {
  /** e.g. http://<key id>:<secret>@127.0.0.1:4569 for the embedded store; omit for AWS. */
  endpoint?: string;
  region: string;
  /** Path-style URLs (`<endpoint>/<bucket>/<key>`); forced on when an endpoint is given. */
  forcePathStyle?: boolean;
  /** Static keys for an S3-compatible endpoint that checks them (e.g. MinIO); else those in the endpoint's user info; else local dummies. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/**
 * What a client signs with when its endpoint carries no key: s3rver's built-in account. The
 * embedded store's gate refuses it (lib/platform/sigv4-gate.ts); real endpoints never see it.
 */
export const LOCAL_S3_ACCESS_KEY = 'S3RVER';

export function createS3Client(options: S3ClientOptions): S3Client {
  const { endpoint, region, forcePathStyle, credentials } = options ?? ({} as S3ClientOptions);
  if (typeof region !== 'string' || !/^[a-z0-9-]{1,50}$/.test(region)) {
    throw new ValidationError('invalid S3 region: expected e.g. eu-west-1');
  }
  // The SDK's default (WHEN_SUPPORTED) adds CRC trailers to streamed uploads, which s3rver
  // stores verbatim inside the object; only checksum when an operation requires one.
  const checksums = {
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  } as const;
  if (endpoint === undefined) {
    // AWS: the default provider chain (env, shared config, IRSA / instance role).
    return new S3Client({ region, forcePathStyle: forcePathStyle ?? false, ...checksums });
  }
  // The embedded store's key travels in the endpoint's user info (lib/platform/store-credentials.ts);
  // presigned URLs are built on the endpoint without it.
  const split = splitStoreEndpoint(endpoint, 'S3');
  const keys = credentials ?? split.credentials;
  // A local endpoint has no virtual-host DNS for buckets, hence path style; static credentials
  // keep the SDK from walking the credential chain (slow IMDS probes, real keys sent locally).
  return new S3Client({
    region,
    endpoint: split.endpoint,
    forcePathStyle: forcePathStyle ?? true,
    // A fresh object each time: the SDK annotates the credentials object it is given.
    credentials: keys ? { ...keys } : { accessKeyId: LOCAL_S3_ACCESS_KEY, secretAccessKey: LOCAL_S3_ACCESS_KEY },
    ...checksums,
  });
}
