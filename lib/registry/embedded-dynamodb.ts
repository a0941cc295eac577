/**
 * In-process DynamoDB (dynalite) for local runs and tests: the registry code talks real
 * DynamoDB wire protocol to it, so there is no separate fake to keep in sync. dynalite checks no
 * signature, so a SigV4 gate (lib/platform/sigv4-gate.ts) stands in front of it: only requests
 * signed with this store's key reach it.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import dynalite from 'dynalite';
import type { RequestListener } from 'node:http';
import { RuntimeError, ValidationError } from '../errors.js';
import type { Logger } from '../logger.js';
import { listenHttp } from '../util/listen.js';
import { sigv4Gate } from '../platform/sigv4-gate.js';
import { assertStoreCredentials, endpointWithCredentials, generateStoreCredentials, type StoreCredentials } from '../platform/store-credentials.js';

export interface EmbeddedDynamoOptions {
  /** Persist under `<dataDir>/dynamodb` (LevelDB); in-memory when omitted. */
  dataDir?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Loopback by default. */
  host?: string;
  /** The key requests must be signed with; a fresh random one when omitted. */
  credentials?: StoreCredentials;
  /** Where refused requests are reported (without their signature); silent when omitted. */
  log?: Logger;
}

export interface EmbeddedDynamo {
  /** `http://<key id>:<secret>@127.0.0.1:<port>`: what createDynamoClient needs to sign (describeStoreEndpoint to show it). */
  endpoint: string;
  credentials: StoreCredentials;
  close(): Promise<void>;
}

export async function startEmbeddedDynamo(options: EmbeddedDynamoOptions = {}): Promise<EmbeddedDynamo> {
  const { dataDir, port = 0, host = '127.0.0.1', log } = options;
  const credentials = options.credentials === undefined ? generateStoreCredentials() : assertStoreCredentials(options.credentials, 'embedded DynamoDB');
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
  // dynalite builds its server around its own handler (and its graceful close around the server):
  // the handler is moved behind the gate rather than served from a second server.
  const [handler] = server.listeners('request') as RequestListener[];
  if (!handler) throw new RuntimeError('dynalite: no request handler on its server');
  server.removeAllListeners('request');
  server.on('request', sigv4Gate({ store: 'dynamodb', credentials, log }, handler));
  const address = await listenHttp(server, port, host);
  let closing: Promise<void> | undefined;
  return {
    endpoint: endpointWithCredentials(address, credentials),
    credentials,
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
