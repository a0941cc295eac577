/**
 * One way to build the S3 client for the whole platform, so local runs (s3rver) and AWS differ
 * only by whether an endpoint is configured.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { ValidationError } from '../errors.js';

export interface S3ClientOptions {
  /** e.g. http://127.0.0.1:4569 for the embedded store; omit for AWS. */
  endpoint?: string;
  region: string;
  /** Path-style URLs (`<endpoint>/<bucket>/<key>`); forced on when an endpoint is given. */
  forcePathStyle?: boolean;
  /** Static keys for an S3-compatible endpoint that checks them (e.g. MinIO); local dummies otherwise. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/**
 * s3rver only accepts requests whose access key id is in its (hard-coded) account registry; it
 * does not verify V4 signatures, so the secret is irrelevant. Real endpoints never see these.
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
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new ValidationError('invalid S3 endpoint: expected an http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ValidationError('invalid S3 endpoint: expected an http(s) URL');
  }
  // A local endpoint has no virtual-host DNS for buckets, hence path style; static credentials
  // keep the SDK from walking the credential chain (slow IMDS probes, real keys sent locally).
  return new S3Client({
    region,
    endpoint,
    forcePathStyle: forcePathStyle ?? true,
    // A fresh object each time: the SDK annotates the credentials object it is given.
    credentials: credentials ? { ...credentials } : { accessKeyId: LOCAL_S3_ACCESS_KEY, secretAccessKey: LOCAL_S3_ACCESS_KEY },
    ...checksums,
  });
}
