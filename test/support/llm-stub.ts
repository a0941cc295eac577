/**
 * A stub LLM with OpenAI's HTTP API on loopback, for running real agents (OpenClaw, ZeroClaw) and the
 * platform offline. Its answer proves the conversation it was sent (llm-stub-reply.ts), so a test
 * sees whether an agent kept its history; every request is recorded for assertions.
 *
 *   GET  /v1/models, /v1/models/<id>     one model, `stub-model`; any id is answered
 *   POST /v1/chat/completions            whole, or `stream: true` as chat.completion.chunk events
 *   POST /v1/responses                   whole, or `stream: true` as the Responses API's events
 *
 * `tools` are accepted and never used: the stub never answers with a tool call. Any Authorization
 * is accepted; only whether one was sent is recorded, never its value. Errors use OpenAI's shape.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { contentText, stubReply, type StubMessage } from './llm-stub-reply.js';
import {
  chatChunks, chatCompletion, invalidRequest, modelObject, response, responseEvents, sendError, sendJson, STUB_MODEL, usageOf,
  type OpenAiError,
} from './llm-stub-wire.js';

export interface LlmStubOptions {
  /** Default 127.0.0.1; must be loopback. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** Wait before each answer (an LLM's latency); default 0. */
  delayMs?: number;
  /** Requests kept in `requests`, oldest dropped first (default 1000: OpenClaw sends ~50 KB each). */
  maxRecorded?: number;
  /** After each request was recorded (e.g. to log it). */
  onRequest?: (r: StubRequest) => void;
}

export interface StubRequest {
  method: string;
  path: string;
  /** The parsed JSON body; undefined for a GET or a body that was not JSON. */
  body: unknown;
  /** Whether an Authorization header was sent (its value is never kept). */
  authorization: boolean;
  at: number;
}

export interface LlmStub {
  /** Base URL including /v1, e.g. http://127.0.0.1:4000/v1: an agent's AGENT_LLM_BASE_URL. */
  url: string;
  requests: StubRequest[];
  close(): Promise<void>;
}

/** OpenClaw's transcript plus its ~48 KB system prompt fits many times over. */
export const MAX_BODY = 8 * 1024 * 1024;
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export async function startLlmStub(o: LlmStubOptions = {}): Promise<LlmStub> {
  const host = o.host ?? '127.0.0.1';
  if (!LOOPBACK.has(host)) throw new TypeError('startLlmStub: host must be a loopback address (127.0.0.1, ::1, localhost)');
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const stub = new Stub(server, o);
  server.on('request', (req, res) => {
    stub.handle(req, res).catch(() => sendError(res, { status: 500, message: 'stub failure', type: 'server_error', code: null }));
  });
  return stub;
}

class Stub implements LlmStub {
  readonly url: string;
  readonly requests: StubRequest[] = [];
  private readonly timers = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();
  private seq = 0;
  private closing: Promise<void> | undefined;

  constructor(private readonly server: Server, private readonly o: LlmStubOptions) {
    const a = server.address() as AddressInfo;
    this.url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/v1`;
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const t of this.timers) t.wake();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://stub').pathname;
    const method = req.method ?? 'GET';
    const post = method === 'POST' && (path === '/v1/chat/completions' || path === '/v1/responses');
    const models = method === 'GET' && /^\/v1\/models(\/[^/]+)?\/?$/.test(path);
    let body: unknown;
    let error: OpenAiError | undefined;
    if (post) ({ body, error } = await readJson(req));
    else req.resume();
    this.record({ method, path, body, authorization: req.headers.authorization !== undefined, at: Date.now() });
    if (!post && !models) return sendError(res, { status: 404, message: `Invalid URL (${method} ${path})`, type: 'invalid_request_error', code: null });
    if (error) return sendError(res, error);
    if (models) {
      const id = /^\/v1\/models\/([^/]+)/.exec(path)?.[1];
      return sendJson(res, 200, id ? modelObject(decodeURIComponent(id)) : { object: 'list', data: [modelObject(STUB_MODEL)] });
    }
    const b = body as Record<string, unknown>;
    const conversation = path === '/v1/responses' ? responsesInput(b) : chatMessages(b);
    if (typeof conversation === 'string') return sendError(res, invalidRequest(conversation, path === '/v1/responses' ? 'input' : 'messages'));
    await this.delay();
    if (res.destroyed) return;
    const model = typeof b.model === 'string' && b.model !== '' ? b.model : STUB_MODEL;
    const reply = stubReply(conversation);
    const usage = usageOf(conversation.map((m) => contentText(m.content)).join('\n'), reply);
    const n = ++this.seq;
    if (path === '/v1/responses') {
      const id = `resp_stub${n}`;
      if (b.stream !== true) return sendJson(res, 200, response(id, model, reply, usage));
      return stream(res, responseEvents(id, model, reply, usage));
    }
    const id = `chatcmpl-stub${n}`;
    if (b.stream !== true) return sendJson(res, 200, chatCompletion(id, model, reply, usage));
    const options = b.stream_options as { include_usage?: unknown } | undefined;
    return stream(res, chatChunks(id, model, reply, options?.include_usage === true ? usage : undefined).map((d) => [undefined, d]));
  }

  private record(r: StubRequest): void {
    this.requests.push(r);
    const max = this.o.maxRecorded ?? 1000;
    if (this.requests.length > max) this.requests.splice(0, this.requests.length - max);
    this.o.onRequest?.(r);
  }

  private delay(): Promise<void> {
    const ms = this.o.delayMs ?? 0;
    if (ms <= 0 || this.closing) return Promise.resolve();
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => entry.wake(), ms),
        wake: () => {
          clearTimeout(entry.timer);
          this.timers.delete(entry);
          resolve();
        },
      };
      this.timers.add(entry);
    });
  }
}

async function readJson(req: IncomingMessage): Promise<{ body?: unknown; error?: OpenAiError }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) {
      req.resume();
      return { error: { status: 413, message: `Request body too large: the limit is ${MAX_BODY} bytes`, type: 'invalid_request_error', code: 'request_too_large' } };
    }
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return { error: invalidRequest('We could not parse the JSON body of your request. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.') };
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return { body, error: invalidRequest('The request body must be a JSON object.') };
  return { body };
}

function chatMessages(b: Record<string, unknown>): StubMessage[] | string {
  if (!Array.isArray(b.messages)) return "Missing required parameter: 'messages'.";
  if (!b.messages.every(isObject)) return "Invalid type for 'messages': each message must be an object.";
  return b.messages as StubMessage[];
}

/** The Responses API's `input`: a string (one user message) or a list of items, messages among them. */
function responsesInput(b: Record<string, unknown>): StubMessage[] | string {
  if (typeof b.input === 'string') return [{ role: 'user', content: b.input }];
  if (!Array.isArray(b.input)) return "Missing required parameter: 'input'.";
  if (!b.input.every(isObject)) return "Invalid type for 'input': each item must be an object.";
  return b.input as StubMessage[];
}

const isObject = (v: unknown): boolean => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Server-sent events: `event:` only where the API names its events (the Responses API). */
function stream(res: ServerResponse, events: Array<[string | undefined, string]>): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
  for (const [event, data] of events) res.write(`${event ? `event: ${event}\n` : ''}data: ${data}\n\n`);
  res.end();
}
