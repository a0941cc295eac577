/**
 * A small scriptable agent on loopback HTTP for the delivery tests: it records every request it
 * gets (path, headers, body) and answers what the test's handler says, so each status an agent can
 * answer (ZeroClaw's gateway, OpenClaw's webhook listener) can be played exactly.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface AgentRequest {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** `message` of a zeroclaw-protocol body, when it has one. */
  message: string | undefined;
  /** X-Idempotency-Key as sent. */
  key: string | undefined;
}

export interface AgentReply {
  status: number;
  /** An object is sent as JSON; a string as is; undefined: an empty body. */
  body?: unknown;
  headers?: Record<string, string>;
}

export type AgentHandler = (req: AgentRequest, agent: ScriptedAgent) => AgentReply | Promise<AgentReply>;

export class ScriptedAgent {
  readonly requests: AgentRequest[] = [];
  handler: AgentHandler;

  private constructor(private readonly server: Server, handler: AgentHandler) {
    this.handler = handler;
  }

  static async start(handler: AgentHandler): Promise<ScriptedAgent> {
    const server = createServer();
    const agent = new ScriptedAgent(server, handler);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let message: string | undefined;
        try {
          const m = (JSON.parse(body) as { message?: unknown }).message;
          if (typeof m === 'string') message = m;
        } catch {
          /* not the zeroclaw body */
        }
        const key = req.headers['x-idempotency-key'];
        const request: AgentRequest = { path: req.url ?? '/', headers: req.headers, body, message, key: Array.isArray(key) ? key[0] : key };
        agent.requests.push(request);
        Promise.resolve(agent.handler(request, agent)).then((reply) => {
          const text = reply.body === undefined ? '' : typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
          res.writeHead(reply.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...reply.headers });
          res.end(text);
        }, (err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return agent;
  }

  get address(): string {
    const a = this.server.address() as AddressInfo;
    return `${a.address}:${a.port}`;
  }

  /** Requests whose message is `message`. */
  asked(message: string): AgentRequest[] {
    return this.requests.filter((r) => r.message === message);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
