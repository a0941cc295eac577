/**
 * A pass-through proxy in front of the Telegram emulator that can hold sendMessage calls, so a test
 * can freeze a forwarder inside its send (the moment between the agent's answer and Telegram's
 * acknowledgement), kill it there, and then decide what Telegram did with the held call: process it
 * late (`deliver`: it reaches the emulator, as a request Telegram had read before the client died)
 * or never (`drop`: the connection is cut, nothing reaches the emulator). `intercept` answers chosen
 * sendMessage calls itself (e.g. a 500 for the second chunk of a long answer only).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';

export interface HeldCall {
  method: string;
  path: string;
  body: string;
  /** chat_id of the held sendMessage, as sent. */
  chatId: string;
  res: ServerResponse;
}

/** A Bot API answer the gate gives instead of Telegram's (e.g. a 500 for one chunk of a long answer). */
export interface GateAnswer {
  status: number;
  body: unknown;
}

export class TelegramGate {
  holding = false;
  readonly held: HeldCall[] = [];
  /** sendMessage calls seen so far (held or not). */
  sendMessages = 0;
  /** Called for every sendMessage with its number (1-based) and chat: an answer replaces Telegram's. */
  intercept: ((n: number, chatId: string) => GateAnswer | undefined) | undefined;

  private constructor(private readonly server: Server, private readonly upstream: string) {}

  static async start(upstream: string): Promise<TelegramGate> {
    const server = createServer();
    const gate = new TelegramGate(server, upstream);
    server.on('request', (req, res) => void gate.handle(req, res).catch(() => res.destroy()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return gate;
  }

  get url(): string {
    const a = this.server.address() as AddressInfo;
    return `http://${a.address}:${a.port}`;
  }

  /** Stops holding; each held call is delivered late to Telegram or dropped, as `decide` says. */
  async release(decide: (call: HeldCall) => 'deliver' | 'drop'): Promise<void> {
    this.holding = false;
    const calls = this.held.splice(0, this.held.length);
    for (const call of calls) {
      if (decide(call) === 'deliver') await this.pass(call.method, call.path, call.body, call.res).catch(() => undefined);
      else call.res.destroy();
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = req.url ?? '/';
    const method = req.method ?? 'POST';
    if (/\/sendMessage$/i.test(path)) {
      let chatId = '';
      try {
        chatId = String((JSON.parse(body) as { chat_id?: unknown }).chat_id);
      } catch {
        /* not JSON: held or passed all the same */
      }
      const answer = this.intercept?.(++this.sendMessages, chatId);
      if (answer) {
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer.body));
        return;
      }
      if (this.holding) {
        this.held.push({ method, path, body, chatId, res });
        return;
      }
    }
    await this.pass(method, path, body, res);
  }

  private async pass(method: string, path: string, body: string, res: ServerResponse): Promise<void> {
    const withBody = method !== 'GET' && method !== 'HEAD';
    const answer = await request(`${this.upstream}${path}`, {
      method: method as 'POST', ...(withBody ? { headers: { 'content-type': 'application/json' }, body } : {}),
    });
    const text = await answer.body.text();
    if (res.destroyed || res.writableEnded) return; // the caller died meanwhile: Telegram processed it anyway
    res.writeHead(answer.statusCode, { 'content-type': 'application/json' });
    res.end(text);
  }

  async close(): Promise<void> {
    for (const call of this.held.splice(0)) call.res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
