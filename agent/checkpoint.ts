/**
 * Checkpoints of the agent's brain.db: a consistent copy taken with SQLite's backup API from a
 * connection the shim opens on the live file (correct while the agent writes in WAL mode, unlike
 * copying the file), then a PUT to the tenant's presigned URL, skipped when nothing changed.
 * Checkpoints run one at a time, so the last one started is the last one uploaded.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from '../lib/logger.js';
import { uploadState, type TransferOptions } from './state-transfer.js';

export interface CheckpointResult {
  uploaded: boolean;
  bytes: number;
  /** Of the consistent copy; null when there is no brain.db yet. */
  sha256: string | null;
}

export interface CheckpointerOptions {
  dbPath: string;
  /** Where the copy is staged (same filesystem as the workspace: brain.db may be large). */
  scratchDir: string;
  log: Logger;
  /** Read at every checkpoint: the URLs can be replaced while the shim runs. */
  putUrl: () => string | undefined;
  transfer?: TransferOptions;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export class Checkpointer {
  private readonly options: CheckpointerOptions;
  /** sha256 of the state S3 is known to hold: skip uploads of the same bytes. */
  private lastUploaded: string | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: CheckpointerOptions) {
    this.options = options;
  }

  /** The state just restored from S3 is what S3 holds. */
  setBaseline(sha256: string | undefined): void {
    this.lastUploaded = sha256;
  }

  /** Queues a checkpoint behind any running one; `reason` only goes to the log. */
  run(reason: string): Promise<CheckpointResult> {
    const next = this.queue.then(() => this.checkpoint(reason));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Resolves when every queued checkpoint has finished (failed ones included). */
  async idle(): Promise<void> {
    await this.queue;
  }

  private async checkpoint(reason: string): Promise<CheckpointResult> {
    const { dbPath, scratchDir, log } = this.options;
    if (!existsSync(dbPath)) {
      log.debug({ reason }, 'checkpoint: no brain.db yet, nothing to save');
      return { uploaded: false, bytes: 0, sha256: null };
    }
    await mkdir(scratchDir, { recursive: true });
    const copy = path.join(scratchDir, 'brain.db.checkpoint');
    await rm(copy, { force: true });
    try {
      await backup(dbPath, copy);
      const [{ size }, sha256] = await Promise.all([stat(copy), sha256File(copy)]);
      if (sha256 === this.lastUploaded) {
        log.debug({ reason, bytes: size, sha256 }, 'checkpoint unchanged, upload skipped');
        return { uploaded: false, bytes: size, sha256 };
      }
      const putUrl = this.options.putUrl();
      if (putUrl === undefined) {
        log.debug({ reason, bytes: size, sha256 }, 'checkpoint taken, kept only locally (no state URL)');
        return { uploaded: false, bytes: size, sha256 };
      }
      await uploadState(putUrl, copy, this.options.transfer);
      this.lastUploaded = sha256;
      log.info({ reason, bytes: size, sha256 }, 'checkpoint saved');
      return { uploaded: true, bytes: size, sha256 };
    } finally {
      await rm(copy, { force: true });
    }
  }
}

/**
 * A consistent copy of a live SQLite database. The shim's own connection reads through the WAL;
 * large steps keep the copy from restarting over and over while the agent writes.
 */
export async function backup(dbPath: string, dest: string): Promise<void> {
  const db = new Database(dbPath, { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    await db.backup(dest, { progress: () => 1 << 20 });
  } finally {
    db.close();
  }
}
