/**
 * Checkpoints of the agent's whole state: every state path of its profile packed into one tar.gz
 * (each SQLite database through the backup API, so WAL writers are consistent; caches left out;
 * agent/state-archive.ts), then a PUT to the tenant's presigned URL, skipped when the content did
 * not change. Checkpoints run one at a time, so the last one started is the last one uploaded.
 */
import { rm } from 'node:fs/promises';
import type { Logger } from '../lib/logger.js';
import { packState, type StatePath } from './state-archive.js';
import { uploadState, type TransferOptions } from './state-transfer.js';

export interface CheckpointResult {
  uploaded: boolean;
  /** Compressed size of the checkpoint (0 when there was nothing to save). */
  bytes: number;
  /** Of the state's content (paths and bytes); null when the agent has no state yet. */
  sha256: string | null;
  entries: number;
}

export interface CheckpointerOptions {
  /** The profile's state root; `paths` and `excludes` are relative to it. */
  root: string;
  paths: readonly StatePath[];
  excludes: readonly string[];
  /** Where the archive is staged (same filesystem as the workspace: state may be large). */
  scratchDir: string;
  /** STATE_MAX_BYTES: a larger state fails the checkpoint with a one-line error. */
  maxBytes: number;
  log: Logger;
  /** Read at every checkpoint: the URLs can be replaced while the shim runs. */
  putUrl: () => string | undefined;
  transfer?: TransferOptions;
}

export class Checkpointer {
  private readonly options: CheckpointerOptions;
  /** Content hash of the state S3 is known to hold: skip uploads of the same state. */
  private lastUploaded: string | undefined;
  /** S3 holds a state of this tenant (restored, or uploaded): an emptied state must replace it. */
  private s3HasState = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: CheckpointerOptions) {
    this.options = options;
  }

  /** The restore found a saved state: from now on even an empty state is uploaded over it. */
  markRestored(): void {
    this.s3HasState = true;
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
    const { log } = this.options;
    const packed = await packState({
      root: this.options.root, paths: this.options.paths, excludes: this.options.excludes,
      scratchDir: this.options.scratchDir, maxBytes: this.options.maxBytes,
    });
    try {
      if (packed.skipped.length > 0) log.warn({ reason, skipped: packed.skipped.slice(0, 20), count: packed.skipped.length }, 'checkpoint: links and special files left out');
      if (packed.entries === 0 && !this.s3HasState) {
        log.debug({ reason }, 'checkpoint: the agent has no state yet, nothing to save');
        return { uploaded: false, bytes: 0, sha256: null, entries: 0 };
      }
      const facts = { reason, bytes: packed.bytes, raw_bytes: packed.rawBytes, entries: packed.entries, sha256: packed.contentSha256 };
      if (packed.contentSha256 === this.lastUploaded) {
        log.debug(facts, 'checkpoint unchanged, upload skipped');
        return { uploaded: false, bytes: packed.bytes, sha256: packed.contentSha256, entries: packed.entries };
      }
      const putUrl = this.options.putUrl();
      if (putUrl === undefined) {
        log.debug(facts, 'checkpoint taken, kept only locally (no state URL)');
        return { uploaded: false, bytes: packed.bytes, sha256: packed.contentSha256, entries: packed.entries };
      }
      await uploadState(putUrl, packed.file, this.options.transfer);
      this.lastUploaded = packed.contentSha256;
      this.s3HasState = true;
      log.info(facts, 'checkpoint saved');
      return { uploaded: true, bytes: packed.bytes, sha256: packed.contentSha256, entries: packed.entries };
    } finally {
      await rm(packed.file, { force: true });
    }
  }
}
