/**
 * A real redis-server per test file on a free port in a temp dir: never the machine's 6379.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedRedis } from '../../lib/embedded-redis.js';

export interface TestRedis {
  server: EmbeddedRedis;
  url: string;
  close(): Promise<void>;
}

export async function startRedis(options: { persist?: false | 'always' | 'everysec' } = {}): Promise<TestRedis> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-redis-'));
  const server = await EmbeddedRedis.start({ dir, persist: options.persist ?? false });
  return {
    server,
    url: server.url,
    async close() {
      await server.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
