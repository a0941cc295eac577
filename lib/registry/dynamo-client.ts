/**
 * One way to build the DynamoDB client for the whole platform, so local runs (dynalite) and
 * AWS differ only by whether an endpoint is configured.
 */
import '../aws-quiet.js';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ValidationError } from '../errors.js';

export interface DynamoClientOptions {
  /** e.g. http://127.0.0.1:4567 for the embedded store; omit for AWS. */
  endpoint?: string;
  region: string;
}

export function createDynamoClient(options: DynamoClientOptions): DynamoDBClient {
  const { endpoint, region } = options;
  if (typeof region !== 'string' || !/^[a-z0-9-]{1,50}$/.test(region)) {
    throw new ValidationError('invalid DynamoDB region: expected e.g. eu-west-1');
  }
  if (endpoint === undefined) {
    // AWS: the default provider chain (env, shared config, IRSA / instance role).
    return new DynamoDBClient({ region });
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new ValidationError('invalid DynamoDB endpoint: expected an http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ValidationError('invalid DynamoDB endpoint: expected an http(s) URL');
  }
  // A local endpoint ignores signatures; static dummy credentials keep the SDK from walking
  // the credential chain (slow IMDS probes, or real keys being sent to a local process).
  return new DynamoDBClient({
    region,
    endpoint,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
}
