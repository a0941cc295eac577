/**
 * Test helper: a fresh in-memory dynalite per test file on a free port, plus a client wired
 * to it. Table names are unique so subtests never see each other's data.
 */
import { randomBytes } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createDynamoClient } from '../../lib/registry/dynamo-client.js';
import { startEmbeddedDynamo } from '../../lib/registry/embedded-dynamodb.js';

export interface TestDynamo {
  endpoint: string;
  client: DynamoDBClient;
  /** Another client to the same store, e.g. to model a second platform replica. */
  newClient(): DynamoDBClient;
  close(): Promise<void>;
}

export async function startDynamo(): Promise<TestDynamo> {
  const store = await startEmbeddedDynamo();
  const clients: DynamoDBClient[] = [];
  const newClient = () => {
    const c = createDynamoClient({ endpoint: store.endpoint, region: 'us-east-1' });
    clients.push(c);
    return c;
  };
  const client = newClient();
  return {
    endpoint: store.endpoint,
    client,
    newClient,
    async close() {
      // Clients first: their keep-alive sockets would otherwise hold the server open.
      for (const c of clients) c.destroy();
      await store.close();
    },
  };
}

/** e.g. `tenants-1a2b3c4d`: valid DynamoDB table name, unique per call. */
export function uniqueTableName(prefix = 'tenants'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}
