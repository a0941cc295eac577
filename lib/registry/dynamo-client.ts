/**
 * One way to build the DynamoDB client for the whole platform, so local runs (dynalite) and
 * AWS differ only by whether an endpoint is configured.
 */
import '../aws-quiet.js';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ValidationError } from '../errors.js';
import { splitStoreEndpoint } from '../platform/store-credentials.js';

export interface DynamoClientOptions {
  /** e.g. http://<key id>:<secret>@127.0.0.1:4567 for the embedded store; omit for AWS. */
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
  // The embedded store's key travels in the endpoint's user info (lib/platform/store-credentials.ts).
  const split = splitStoreEndpoint(endpoint, 'DynamoDB');
  // Without one, static dummy credentials keep the SDK from walking the credential chain (slow
  // IMDS probes, or real keys being sent to a local process); the embedded store refuses them.
  return new DynamoDBClient({
    region,
    endpoint: split.endpoint,
    credentials: split.credentials ? { ...split.credentials } : { accessKeyId: 'local', secretAccessKey: 'local' },
  });
}
