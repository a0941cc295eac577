/**
 * In-process S3 (s3rver) for local runs and tests: the state code and the presigned URLs talk
 * real S3 wire protocol to it, so there is no separate fake to keep in sync.
 */
import http from 'node:http';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ValidationError } from '../errors.js';

/** The slice of s3rver 3.x (a Koa app, ships no types) that is used here. */
interface S3rverApp {
  configureBuckets(): Promise<unknown>;
  callback(): http.RequestListener;
  logger?: { close?(): void; exceptions?: { unhandle?(): void } };
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverApp;

export interface EmbeddedS3Options {
  /** Persist under `<dataDir>/s3`; a temporary directory (removed on close) when omitted. */
  dataDir?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Loopback by default: the store has no real authentication. */
  host?: string;
}

export interface EmbeddedS3 {
  endpoint: string;
  /** Where the objects live on disk. */
  directory: string;
  close(): Promise<void>;
}

export async function startEmbeddedS3(options: EmbeddedS3Options = {}): Promise<EmbeddedS3> {
  const { dataDir, port = 0, host = '127.0.0.1' } = options;
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
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverCtor;
  // vhostBuckets off: only path-style requests, so a Host header can never be read as a bucket.
  const app = new S3rver({ directory, silent: true, vhostBuckets: false, resetOnClose: false });
  await app.configureBuckets();
  // Our own server instead of s3rver.run(): its listen() leaves EADDRINUSE as an unhandled event.
  const server = http.createServer(app.callback());
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
    directory,
    close() {
      // Memoised: a second close must not fail on an already-closed server.
      closing ??= (async () => {
        await new Promise<void>((resolve, reject) => {
          server.close((err) => (err ? reject(err) : resolve()));
          // Keep-alive sockets from SDK clients would otherwise hold close() open.
          server.closeIdleConnections();
        });
        app.logger?.exceptions?.unhandle?.();
        app.logger?.close?.();
        if (temporary) await rm(directory, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
