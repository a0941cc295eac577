/**
 * Delivery of updates to a bot's webhook as Telegram does it: one update at a time per bot, in order,
 * with the X-Telegram-Bot-Api-Secret-Token header; a non-2xx answer or a network error is retried
 * with capped exponential backoff and recorded for getWebhookInfo (last_error_date/_message), and
 * pending updates are counted (pending_update_count). Only loopback webhooks are ever posted to.
 */
import { STATUS_CODES } from 'node:http';
import { Agent, request, type Dispatcher } from 'undici';
import type { Logger } from '../logger.js';
import { isLoopbackHost, type BotDirectory, type KnownBot, type StoredWebhook } from './bot-directory.js';

export interface WebhookPostResult {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** POSTs `update` to the webhook once. Throws on a network error or a non-loopback host. */
export async function postToWebhook(
  hook: StoredWebhook, update: unknown, o: { dispatcher: Dispatcher; timeoutMs: number; signal?: AbortSignal },
): Promise<WebhookPostResult> {
  const target = new URL(hook.url);
  // A local Bot API server must never post to another machine.
  if (!isLoopbackHost(target.hostname)) throw new Error(`refusing non-loopback webhook host ${target.hostname}`);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (hook.secret_token) headers['x-telegram-bot-api-secret-token'] = hook.secret_token;
  const res = await request(target, {
    method: 'POST', headers, body: JSON.stringify(update), dispatcher: o.dispatcher,
    headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs, ...(o.signal ? { signal: o.signal } : {}),
  });
  return { status: res.statusCode, body: await res.body.text(), headers: res.headers };
}

/** getWebhookInfo's last_error_message for a webhook that answered `status`. */
export function wrongResponseMessage(status: number): string {
  return `Wrong response from the webhook: ${status} ${STATUS_CODES[status] ?? ''}`.trim();
}

/** getWebhookInfo's last_error_message for a delivery that got no answer. */
export function networkErrorMessage(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'ECONNREFUSED') return 'Connection refused';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 'Read timeout expired';
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return 'Connection reset by peer';
  return 'Connection failed';
}

export interface WebhookDeliveryOptions {
  directory: BotDirectory;
  log?: Logger | undefined;
  /** Per attempt, default 10000 ms. */
  timeoutMs?: number;
  /** First retry delay, doubled per failure up to maxBackoffMs (defaults 250 and 5000 ms). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Updates a bot may have pending before enqueue refuses more (default 1000). */
  maxPending?: number;
}

interface Lane {
  queue: Array<{ update_id: number }>;
  running: Promise<void> | undefined;
  /** Ends the current backoff sleep early (webhook changed, or closing). */
  wake: (() => void) | undefined;
}

export class WebhookDelivery {
  private readonly lanes = new Map<KnownBot, Lane>();
  private readonly agent = new Agent({ keepAliveTimeout: 1_000 });
  private readonly abort = new AbortController();
  private readonly o: Required<Omit<WebhookDeliveryOptions, 'log'>> & { log: Logger | undefined };
  private closed = false;

  constructor(options: WebhookDeliveryOptions) {
    this.o = { timeoutMs: 10_000, initialBackoffMs: 250, maxBackoffMs: 5_000, maxPending: 1_000, ...options, log: options.log };
  }

  /** Queues `update` behind the bot's pending ones; false when the bot has maxPending already. */
  enqueue(bot: KnownBot, update: { update_id: number }): boolean {
    if (this.closed) return false;
    const lane = this.lane(bot);
    if (lane.queue.length >= this.o.maxPending) return false;
    lane.queue.push(update);
    this.kick(bot, lane);
    return true;
  }

  pending(bot: KnownBot): number {
    return this.lanes.get(bot)?.queue.length ?? 0;
  }

  /** A webhook was set, changed or deleted: retry at once (or drop what is pending). */
  webhookChanged(bot: KnownBot, change: { dropPending: boolean }): void {
    const lane = this.lanes.get(bot);
    if (!lane) return;
    // An update already in flight may still arrive; nothing pending after it will.
    if (change.dropPending) lane.queue.length = 0;
    lane.wake?.();
    this.kick(bot, lane);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    for (const lane of this.lanes.values()) lane.wake?.();
    await Promise.allSettled([...this.lanes.values()].map((l) => l.running ?? Promise.resolve()));
    await this.agent.close();
  }

  private lane(bot: KnownBot): Lane {
    let lane = this.lanes.get(bot);
    if (!lane) this.lanes.set(bot, (lane = { queue: [], running: undefined, wake: undefined }));
    return lane;
  }

  private kick(bot: KnownBot, lane: Lane): void {
    if (lane.running || this.closed || !bot.webhook || lane.queue.length === 0) return;
    lane.running = this.drain(bot, lane).finally(() => {
      lane.running = undefined;
      // A webhook set while the loop was finishing: pick the queue up again.
      if (bot.webhook && lane.queue.length > 0) this.kick(bot, lane);
    });
  }

  /** Delivers the head until the queue is empty, the webhook is gone, or the sandbox closes. */
  private async drain(bot: KnownBot, lane: Lane): Promise<void> {
    let backoff = this.o.initialBackoffMs;
    for (;;) {
      const hook = bot.webhook;
      const head = lane.queue[0];
      if (this.closed || !hook || !head) return;
      let error: string;
      try {
        const res = await postToWebhook(hook, head, { dispatcher: this.agent, timeoutMs: this.o.timeoutMs, signal: this.abort.signal });
        if (res.status >= 200 && res.status <= 299) {
          if (lane.queue[0] === head) lane.queue.shift();
          backoff = this.o.initialBackoffMs;
          this.o.log?.debug({ bot_id: bot.user.id, update_id: head.update_id, status: res.status }, 'sandbox: update delivered');
          continue;
        }
        error = wrongResponseMessage(res.status);
      } catch (err) {
        if (this.closed) return;
        error = networkErrorMessage(err);
      }
      this.o.directory.recordError(bot, error);
      this.o.log?.warn({ bot_id: bot.user.id, update_id: head.update_id, error, retry_in_ms: backoff }, 'sandbox: webhook delivery failed, retrying');
      await this.sleep(lane, backoff);
      backoff = Math.min(backoff * 2, this.o.maxBackoffMs);
    }
  }

  private sleep(lane: Lane, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        lane.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      lane.wake = done;
    });
  }
}
