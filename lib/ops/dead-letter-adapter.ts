/**
 * The dead letters as a read-only "queue" on Bull Board. They are not a BullMQ queue (they live in
 * `{mbox}:dead` / `{mbox}:dead:data`, moved there atomically by the forwarder), so this adapter
 * shows each one as a failed job: id `<tenant>.<chat>.<update_id>`, the stored Telegram update as
 * its data, the last failure as its reason. Read-only: re-delivery stays with
 * `ztm dead retry <id>|--all`, which puts the update back into its chat's mailbox.
 */
import { BaseAdapter } from '@bull-board/api/dist/queueAdapters/base.js';
import type {
  AppJobScheduler, JobCounts, JobSchedulerUpdateResult, JobStatus, QueueJob, QueueJobJson, QueueMetrics, Status,
} from '@bull-board/api/dist/types.js';
import type { DeadLetter, DeadLetterStore } from '../delivery/dead-letters.js';
import { decodeEnvelope, parseUpdate, textOf } from '../delivery/update.js';

/** Board name of the dead letters (the Redis key they live under). */
export const DEAD_LETTERS_BOARD_NAME = '{mbox}:dead';

const READ_ONLY = 'dead letters are read-only on the board: use `ztm dead retry <id>|--all`';


/** A dead letter in the shape the board renders a job. */
export function deadLetterJob(letter: DeadLetter): QueueJob {
  let data: unknown;
  let acceptedAt = Date.parse(letter.failed_at);
  try {
    const env = decodeEnvelope(letter.envelope);
    acceptedAt = env.acceptedAt;
    const update = parseUpdate(env.raw);
    // The text first: the board's JSON view folds nested objects.
    data = { tenant_id: letter.tenant_id, chat_id: letter.chat_id, update_id: letter.update_id, text: update ? textOf(update) ?? null : null, update: update ?? env.raw };
  } catch {
    data = { tenant_id: letter.tenant_id, chat_id: letter.chat_id, update: '(unreadable envelope)' };
  }
  const failedOn = Date.parse(letter.failed_at);
  const json: QueueJobJson = {
    id: letter.id,
    name: `update ${letter.update_id} (${letter.tenant_id})`,
    progress: 0,
    attemptsMade: letter.attempts,
    processedOn: failedOn,
    finishedOn: failedOn,
    timestamp: acceptedAt,
    failedReason: letter.reason,
    stacktrace: [],
    data,
    returnvalue: null,
    opts: { attempts: letter.attempts },
  };
  const refuse = async (): Promise<void> => {
    throw new Error(READ_ONLY);
  };
  return {
    opts: {},
    toJSON: () => json,
    getState: async () => 'failed',
    promote: refuse,
    remove: refuse,
    retry: refuse,
  };
}

export class DeadLetterAdapter extends BaseAdapter {
  constructor(private readonly store: DeadLetterStore, options: { description?: string } = {}) {
    super('bull', {
      readOnlyMode: true,
      allowRetries: false,
      displayName: 'dead letters',
      description: options.description
        ?? 'Updates whose delivery failed FORWARD_ATTEMPTS times (stored in {mbox}:dead). Read-only: `ztm dead retry <id>|--all` delivers them again.',
    });
  }

  getName(): string {
    return DEAD_LETTERS_BOARD_NAME;
  }

  getStatuses(): Status[] {
    return ['latest', 'failed'] as Status[];
  }

  getJobStatuses(): JobStatus[] {
    return ['failed'];
  }

  async getJobCounts(): Promise<JobCounts> {
    return { failed: await this.store.count() } as JobCounts;
  }

  async getJobs(statuses: JobStatus[], start = 0, end = 49): Promise<QueueJob[]> {
    if (!statuses.includes('failed')) return [];
    return (await this.store.page(start, end)).map(deadLetterJob);
  }

  async getJob(id: string): Promise<QueueJob | undefined> {
    const letter = await this.store.get(id);
    return letter ? deadLetterJob(letter) : undefined;
  }

  async getJobLogs(): Promise<string[]> {
    return [];
  }

  async getMetrics(): Promise<QueueMetrics> {
    return { meta: { count: 0, prevTS: 0, prevCount: 0 }, data: [], count: 0 };
  }

  async getRedisInfo(): Promise<string | null> {
    return null;
  }

  async isPaused(): Promise<boolean> {
    return false;
  }

  async getGlobalConcurrency(): Promise<number | null> {
    return null;
  }

  async getJobSchedulers(): Promise<Omit<AppJobScheduler, 'queueName'>[]> {
    return [];
  }

  async getJobSchedulersCount(): Promise<number> {
    return 0;
  }

  async removeJobScheduler(): Promise<boolean> {
    return false;
  }

  async runJobSchedulerNow(): Promise<'not-found'> {
    return 'not-found';
  }

  async updateJobScheduler(): Promise<JobSchedulerUpdateResult> {
    return 'not-found';
  }

  // Every mutation is refused (the board also hides them: readOnlyMode).
  async clean(): Promise<void> {
    throw new Error(READ_ONLY);
  }

  async addJob(): Promise<QueueJob> {
    throw new Error(READ_ONLY);
  }

  async pause(): Promise<void> {
    throw new Error(READ_ONLY);
  }

  async resume(): Promise<void> {
    throw new Error(READ_ONLY);
  }

  async empty(): Promise<void> {
    throw new Error(READ_ONLY);
  }

  async obliterate(): Promise<void> {
    throw new Error(READ_ONLY);
  }

  async promoteAll(): Promise<void> {
    throw new Error(READ_ONLY);
  }

  async setGlobalConcurrency(): Promise<void> {
    throw new Error(READ_ONLY);
  }
}
