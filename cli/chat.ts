/**
 * `ztm chat <id>`: a conversation with a tenant's agent through the real pipeline (sandbox webhook →
 * ingress → mailbox → forwarder → wake → agent → sendMessage) without Telegram. The platform must
 * run the local Bot API sandbox (`TELEGRAM_API_BASE=sandbox npm start`); ztm plays a user of the
 * tenant's bot on the sandbox's user routes and reads the bot's answers from it.
 *
 * Interactive on a terminal (`you> ` prompt, answers printed as they come, "alice is typing…" in
 * the prompt while the bot says so); otherwise `--message` sends one message, or each line of stdin
 * is sent in turn, each waiting for its answer. The bot's messages are shown as a Telegram app shows
 * them (its HTML or Markdown already parsed by the sandbox: telegram-text.ts), an edited one again
 * with "(edited)".
 */
import { createInterface, clearLine, cursorTo } from 'node:readline';
import { once } from 'node:events';
import type { CliConfig } from '../lib/config.js';
import { SandboxError, TimeoutError, ZtmError } from '../lib/errors.js';
import { AdminClient } from '../lib/admin/admin-client.js';
import { SandboxClient } from '../lib/sandbox/sandbox-client.js';
import type { HistoryEvent } from '../lib/sandbox/chat-history.js';
import type { SentMessage } from '../lib/sandbox/chat-messages.js';
import { SANDBOX_MAX_POLL_S } from '../lib/sandbox/sandbox-routes.js';
import { STARTING_UP_TEXT } from '../services/forwarder/drainer.js';
import { localPlatform, type CliTarget } from './target.js';
import { printFailure, type Printer } from './output.js';
import { TypingIndicator } from './chat-typing.js';
import { renderMessage } from './telegram-text.js';
import type { ChatInvocation } from './chat-options.js';
import { messageOption } from './chat-options.js';


export interface ChatIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
}

/** After the "⏳ Starting up..." notice, an answer is awaited at least this long (the wake lock's default). */
export const WAKE_WAIT_S = 240;
/** After an answer, how long more parts of it (a long answer is split) may take to arrive. */
const MORE_PARTS_MS = 300;

/** Finds the sandbox, the tenant's bot and its webhook, then chats. Returns the exit code. */
export async function runChat(inv: ChatInvocation, config: CliConfig, target: CliTarget, p: Printer, io: ChatIo = { stdin: process.stdin, stdout: process.stdout }): Promise<number> {
  let sandbox: SandboxClient | undefined;
  try {
    const platform = localPlatform(config.dataDir);
    const sandboxUrl = config.sandboxUrl ?? platform?.sandboxUrl;
    if (!sandboxUrl) {
      throw new SandboxError(platform
        ? `the platform running from ${config.dataDir} (pid ${platform.pid}) is not in sandbox mode: start it with TELEGRAM_API_BASE=sandbox npm start`
        : `no platform is running from ${config.dataDir}: start it with TELEGRAM_API_BASE=sandbox npm start (with the same DATA_DIR), or set ZTM_SANDBOX_URL`);
    }
    if (target.kind !== 'redis') throw new SandboxError('ztm chat needs the platform\'s Redis: set ZTM_REDIS_URL');
    sandbox = new SandboxClient({ url: sandboxUrl });
    const botId = await prepare(inv.tenantId, sandbox, target.url, config, p);
    const chat = new Chat(inv, sandbox, botId, p, io);
    if (inv.message !== undefined) await chat.exchange(inv.message);
    else if (io.stdin.isTTY) await chat.interactive();
    else await chat.piped();
    return 0;
  } catch (err) {
    printFailure(p, err);
    return 1;
  } finally {
    await sandbox?.close();
  }
}

/** The tenant's bot id (from its redacted token), with its webhook registered at the sandbox. */
async function prepare(tenantId: string, sandbox: SandboxClient, redisUrl: string, config: CliConfig, p: Printer): Promise<number> {
  const admin = new AdminClient({ redisUrl, pickupTimeoutMs: config.pickupTimeoutS * 1000 });
  try {
    await admin.connect();
    const tenant = (await admin.run('tenant.get', { tenant_id: tenantId }, 30_000)) as { bot_token?: unknown };
    // tenant.get shows the token as `<bot id>:[REDACTED]`: the id is public, and all the sandbox needs.
    const botId = Number(/^([0-9]{1,20}):/.exec(String(tenant.bot_token))?.[1] ?? Number.NaN);
    if (!Number.isSafeInteger(botId)) throw new ZtmError('E_INTERNAL', `tenant ${tenantId} has no readable bot id`);
    const bot = await sandbox.bot(botId);
    if (!bot.webhook) {
      p.err(`… registering the webhook of ${tenantId} at the sandbox`);
      await admin.run('webhook.register', { tenant_id: tenantId }, 30_000);
    }
    return botId;
  } finally {
    await admin.close();
  }
}

class Chat {
  constructor(
    private readonly inv: ChatInvocation,
    private readonly sandbox: SandboxClient,
    private readonly botId: number,
    private readonly p: Printer,
    private readonly io: ChatIo,
  ) {}

  /** Sends `text`, prints the bot's messages until one that is not the wake notice; throws on --wait. */
  async exchange(text: string): Promise<void> {
    const sent = await this.sandbox.send(this.botId, this.inv.chatId, text);
    let deadline = Date.now() + this.inv.waitS * 1000;
    let waking = false;
    // What the bot does about this message comes after the chat's last event before it.
    let after = sent.seq;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new TimeoutError(`no answer from ${this.inv.tenantId} within ${this.inv.waitS}s (is its agent starting? see ztm status and its agent.log; --wait gives it longer)`);
      }
      const events = await this.poll(after, Math.min(SANDBOX_MAX_POLL_S, Math.ceil(left / 1000)));
      after = this.print(events, after);
      if (events.some((e) => e.type === 'message' && e.message.text !== STARTING_UP_TEXT)) break;
      if (!waking && events.some((e) => e.type === 'message' && e.message.text === STARTING_UP_TEXT)) {
        // The platform says the agent is waking: a real agent takes its start (OpenClaw ~30 s, a cold
        // node minutes) before it answers, which --wait did not have to foresee.
        waking = true;
        deadline = Math.max(deadline, Date.now() + WAKE_WAIT_S * 1000);
      }
    }
    // A long answer arrives in parts, one sendMessage each, or is edited as it grows: take what follows right behind.
    await new Promise((r) => setTimeout(r, MORE_PARTS_MS));
    this.print(await this.poll(after, 0), after);
  }

  /** Each non-empty line of stdin in order, each after the previous one was answered. */
  async piped(): Promise<void> {
    const lines = createInterface({ input: this.io.stdin, crlfDelay: Infinity });
    for await (const line of lines) {
      if (line.trim() === '') continue;
      await this.exchange(messageOption(line));
    }
  }

  /** `you> ` prompt; the bot's messages are printed as they arrive. Ctrl-D or Ctrl-C leave. */
  async interactive(): Promise<void> {
    const { stdout } = this.io;
    const rl = createInterface({ input: this.io.stdin, output: stdout, prompt: 'you> ' });
    const stop = new AbortController();
    let failure: unknown;
    // Only where a person watches the prompt: never into a file or a pipe.
    const typing = stdout.isTTY ? new TypingIndicator(rl, this.inv.tenantId, 'you> ') : undefined;
    const show = (line: string): void => {
      typing?.clear(false);
      clearLine(stdout, 0);
      cursorTo(stdout, 0);
      stdout.write(`${line}\n`);
      rl.prompt(true);
    };
    const fail = (err: unknown): void => {
      failure ??= err;
      rl.close();
    };
    // Start after what the chat already holds: earlier conversations are not replayed.
    let after = Math.max(0, ...(await this.poll(0, 0)).map((e) => e.seq));
    const reader = (async () => {
      while (!stop.signal.aborted) {
        const events = await this.sandbox.events(this.botId, this.inv.chatId, { after, timeoutS: SANDBOX_MAX_POLL_S, signal: stop.signal });
        for (const e of events) {
          after = Math.max(after, e.seq);
          if (e.type === 'chat_action') {
            if (e.action === 'typing') typing?.show();
            else if (e.action === 'cancel') typing?.clear();
          } else if (e.type !== 'deleted') show(this.line(e.message, e.type === 'edited'));
        }
      }
    })().catch((err: unknown) => (stop.signal.aborted ? undefined : fail(err)));
    let sending = Promise.resolve();
    rl.on('line', (line) => {
      const text = line.trim();
      if (text === '') return rl.prompt();
      if (text.length > 4096) {
        this.p.err('ztm: a message is at most 4096 characters');
        return rl.prompt();
      }
      sending = sending.then(() => this.sandbox.send(this.botId, this.inv.chatId, line).then(() => rl.prompt(), fail));
    });
    rl.on('SIGINT', () => rl.close());
    rl.on('close', () => typing?.clear(false));
    this.p.err(`chatting with ${this.inv.tenantId} (bot ${this.botId}) as sandbox user ${this.inv.chatId}; Ctrl-D to leave`);
    rl.prompt();
    await once(rl, 'close');
    stdout.write('\n');
    stop.abort();
    await Promise.allSettled([reader, sending]);
    if (failure !== undefined) throw failure;
  }

  private poll(after: number, timeoutS: number): Promise<HistoryEvent[]> {
    return this.sandbox.events(this.botId, this.inv.chatId, { after, timeoutS });
  }

  /** Prints the sent and edited messages among the events newer than `after`; returns the newest seq seen. */
  private print(events: HistoryEvent[], after: number): number {
    let last = after;
    for (const e of events) {
      if (e.seq <= last) continue;
      last = e.seq;
      if (e.type !== 'message' && e.type !== 'edited') continue;
      const m = e.message;
      if (!this.p.json) this.p.out(this.line(m, e.type === 'edited'));
      else {
        const edit = e.type === 'edited' ? { edited: true, edit_date: m.edit_date } : {};
        this.p.out(JSON.stringify({ tenant_id: this.inv.tenantId, message_id: m.message_id, date: m.date, text: m.text, ...edit }));
      }
    }
    return last;
  }

  private line(m: SentMessage, edited: boolean): string {
    return `${this.inv.tenantId}> ${edited ? '(edited) ' : ''}${renderMessage(m)}`;
  }
}
