/**
 * In-process S3 (s3rver) for local runs and tests: the state code and the presigned URLs talk
 * real S3 wire protocol to it, so there is no separate fake to keep in sync. s3rver accepts any
 * V4 signature of a key id it knows (and anonymous requests), so a SigV4 gate
 * (lib/platform/sigv4-gate.ts) stands in front of it: only requests signed with this store's key,
 * header-signed or presigned, reach it.
 */
import http from 'node:http';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ValidationError } from '../errors.js';
import type { Logger } from '../logger.js';
import { listenHttp } from '../util/listen.js';
import { sigv4Gate } from '../platform/sigv4-gate.js';
import { assertStoreCredentials, endpointWithCredentials, generateStoreCredentials, type StoreCredentials } from '../platform/store-credentials.js';

/** The slice of s3rver 3.x (a Koa app, ships no types) that is used here. */
interface S3rverApp {
  configureBuckets(): Promise<unknown>;
  callback(): http.RequestListener;
  logger?: { close?(): void; exceptions?: { unhandle?(): void } };
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverApp;
/** s3rver's one account (lib/models/account.js): it looks a request's key id up there. */
interface S3rverAccounts {
  DUMMY_ACCOUNT: { createKeyPair(accessKeyId: string, secret: string): void; revokeAccessKey(accessKeyId: string): void };
}

export interface EmbeddedS3Options {
  /** Persist under `<dataDir>/s3`; a temporary directory (removed on close) when omitted. */
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

export interface EmbeddedS3 {
  /** `http://<key id>:<secret>@127.0.0.1:<port>`: what createS3Client needs to sign (describeStoreEndpoint to show it). */
  endpoint: string;
  credentials: StoreCredentials;
  /** Where the objects live on disk. */
  directory: string;
  close(): Promise<void>;
}

export async function startEmbeddedS3(options: EmbeddedS3Options = {}): Promise<EmbeddedS3> {
  const { dataDir, port = 0, host = '127.0.0.1', log } = options;
  const credentials = options.credentials === undefined ? generateStoreCredentials() : assertStoreCredentials(options.credentials, 'embedded S3');
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new ValidationError('invalid embedded S3 port: expected 0-65535');
  }
  if (typeof host !== 'string' || host === '') throw new ValidationError('invalid embedded S3 host');
  let directory: string;
  let temporary = false;
  if (dataDir !== undefined) {
    if (typeof dataDir !== 'string' || dataDir === '') throw new ValidationError('invalid embedded S3 dataDir');
    directory = join(dataDir, 's3');
    await mkdir(directory, { recursive: true });
  } else {
    directory = await mkdtemp(join(tmpdir(), 'ztm-s3-'));
    temporary = true;
  }

  // s3rver is CommonJS without types; require keeps the typing local to this file.
  const require = createRequire(import.meta.url);
  const S3rver = require('s3rver') as S3rverCtor;
  // s3rver takes any V4 signature of a key id in its account (it computes none): our key goes
  // there so what the gate let through is served; the gate is the check that counts.
  const accounts = require('s3rver/lib/models/account.js') as S3rverAccounts;
  registerKey(accounts, credentials);
  // vhostBuckets off: only path-style requests, so a Host header can never be read as a bucket.
  const app = new S3rver({ directory, silent: true, vhostBuckets: false, resetOnClose: false });
  await app.configureBuckets();
  // Our own server instead of s3rver.run(): its listen() leaves EADDRINUSE as an unhandled event.
  const server = http.createServer(sigv4Gate({ store: 's3', credentials, log }, app.callback()));
  let address: string;
  try {
    address = await listenHttp(server, port, host);
  } catch (err) {
    revokeKey(accounts, credentials);
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    endpoint: endpointWithCredentials(address, credentials),
    credentials,
    directory,
    close() {
      // Memoised: a second close must not fail on an already-closed server.
      closing ??= (async () => {
        await new Promise<void>((resolve, reject) => {
          server.close((err) => (err ? reject(err) : resolve()));
          // Keep-alive sockets from SDK clients would otherwise hold close() open.
          server.closeIdleConnections();
        });
        revokeKey(accounts, credentials);
        app.logger?.exceptions?.unhandle?.();
        app.logger?.close?.();
        if (temporary) await rm(directory, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

// s3rver's account is one per process: two stores with the same key (a restart on one DATA_DIR
// inside a test) share the entry, so it is removed when the last of them closes.
const keyUsers = new Map<string, number>();

function registerKey(accounts: S3rverAccounts, credentials: StoreCredentials): void {
  const users = keyUsers.get(credentials.accessKeyId) ?? 0;
  if (users === 0) accounts.DUMMY_ACCOUNT.createKeyPair(credentials.accessKeyId, credentials.secretAccessKey);
  keyUsers.set(credentials.accessKeyId, users + 1);
}

function revokeKey(accounts: S3rverAccounts, credentials: StoreCredentials): void {
  const users = (keyUsers.get(credentials.accessKeyId) ?? 1) - 1;
  if (users > 0) {
    keyUsers.set(credentials.accessKeyId, users);
    return;
  }
  keyUsers.delete(credentials.accessKeyId);
  accounts.DUMMY_ACCOUNT.revokeAccessKey(credentials.accessKeyId);
}
