/**
 * Client of the sandbox's user routes (sandbox-routes.ts), for `ztm chat` and the tests: look a bot
 * up by its public id, write to it as a user, read what it sent to a chat or what it did there
 * (sent, edited, deleted, typing), both by long-poll.
 */
import { Agent, request } from 'undici';
import { SandboxError } from '../errors.js';
import { redactSecrets } from '../redact.js';
import type { SentMessage } from './chat-messages.js';
import type { HistoryEvent } from './chat-history.js';

export interface SandboxBotInfo {
  bot_id: number;
  /** False until the platform called the sandbox with the bot's token (e.g. setWebhook). */
  known: boolean;
  username?: string;
  webhook: { url: string; pending_update_count: number; last_error_date?: number; last_error_message?: string } | null;
}

export interface SandboxClientOptions {
  /** The sandbox's base URL, e.g. http://127.0.0.1:8081. */
  url: string;
  /** Deadline of a call that is not a long-poll (default 5000 ms). */
  timeoutMs?: number;
}

export class SandboxClient {
  readonly url: string;
  private readonly timeoutMs: number;
  private readonly agent = new Agent({ keepAliveTimeout: 5_000 });

  constructor(options: SandboxClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 5_000;
  }

  bot(botId: number): Promise<SandboxBotInfo> {
    return this.call<SandboxBotInfo>('GET', `/sandbox/bots/${botId}`);
  }

  /**
   * Writes `text` to the bot as the user `chatId`; resolves once the Update is queued, with `seq`,
   * the chat's last event before it (what the bot does about it comes after).
   */
  send(botId: number, chatId: number, text: string, from?: { first_name?: string; username?: string }): Promise<{ update_id: number; message_id: number; seq: number }> {
    return this.call('POST', `/sandbox/bots/${botId}/messages`, { chat_id: chatId, text, ...(from ? { from } : {}) });
  }

  /** What the bot sent to the chat after message `after`, waiting up to `timeoutS` (max 30) for the first. */
  messages(botId: number, chatId: number, o: { after: number; timeoutS: number; signal?: AbortSignal }): Promise<SentMessage[]> {
    const query = new URLSearchParams({ chat_id: String(chatId), after: String(o.after), timeout: String(o.timeoutS) });
    return this.call('GET', `/sandbox/bots/${botId}/messages?${query}`, undefined, o.timeoutS * 1000 + this.timeoutMs, o.signal);
  }

  /** What the bot did in the chat after event `after`, waiting up to `timeoutS` (max 30) for the first. */
  events(botId: number, chatId: number, o: { after: number; timeoutS: number; signal?: AbortSignal }): Promise<HistoryEvent[]> {
    const query = new URLSearchParams({ chat_id: String(chatId), after: String(o.after), timeout: String(o.timeoutS) });
    return this.call('GET', `/sandbox/bots/${botId}/events?${query}`, undefined, o.timeoutS * 1000 + this.timeoutMs, o.signal);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = this.timeoutMs, signal?: AbortSignal): Promise<T> {
    let status: number;
    let text: string;
    try {
      const res = await request(`${this.url}${path}`, {
        method, dispatcher: this.agent, headersTimeout: timeoutMs, bodyTimeout: timeoutMs,
        ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
        ...(signal ? { signal } : {}),
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new SandboxError(`the Bot API sandbox at ${this.url} does not answer: start the platform with TELEGRAM_API_BASE=sandbox npm start`, { cause: err });
    }
    let answer: { ok?: unknown; result?: unknown; description?: unknown };
    try {
      answer = JSON.parse(text) as typeof answer;
    } catch {
      throw new SandboxError(`${this.url} did not answer like the Bot API sandbox (HTTP ${status}): is it the platform's TELEGRAM_API_BASE=sandbox?`, { status });
    }
    if (answer.ok !== true) {
      const description = typeof answer.description === 'string' ? answer.description : `HTTP ${status}`;
      throw new SandboxError(`Bot API sandbox: ${redactSecrets(description)}`, { status });
    }
    return answer.result as T;
  }
}
