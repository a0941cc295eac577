/**
 * In-process DynamoDB (dynalite) for local runs and tests: the registry code talks real
 * DynamoDB wire protocol to it, so there is no separate fake to keep in sync.
 */
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import dynalite from 'dynalite';
import { ValidationError } from '../errors.js';

export interface EmbeddedDynamoOptions {
  /** Persist under `<dataDir>/dynamodb` (LevelDB); in-memory when omitted. */
  dataDir?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Loopback by default: the store has no authentication. */
  host?: string;
}

export interface EmbeddedDynamo {
  endpoint: string;
  close(): Promise<void>;
}

export async function startEmbeddedDynamo(options: EmbeddedDynamoOptions = {}): Promise<EmbeddedDynamo> {
  const { dataDir, port = 0, host = '127.0.0.1' } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new ValidationError('invalid embedded DynamoDB port: expected 0-65535');
  }
  if (typeof host !== 'string' || host === '') throw new ValidationError('invalid embedded DynamoDB host');
  let path: string | undefined;
  if (dataDir !== undefined) {
    if (typeof dataDir !== 'string' || dataDir === '') throw new ValidationError('invalid embedded DynamoDB dataDir');
    path = join(dataDir, 'dynamodb');
    await mkdir(path, { recursive: true });
  }
  // Table state changes are instantaneous: nothing local should wait on simulated AWS latency.
  const server = dynalite({ path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    endpoint: `http://${hostPart}:${address.port}`,
    close() {
      // Memoised: closing twice must not close the LevelDB store twice.
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Keep-alive sockets from SDK clients would otherwise hold close() open.
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
