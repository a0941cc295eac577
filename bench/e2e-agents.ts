/**
 * Agent host for bench/e2e.ts: one process serving many tenants' agent endpoints, one listening port
 * per tenant (so every tenant has its own address, its own connection pool in the forwarder, as
 * with one pod per tenant), speaking the `zeroclaw` protocol like agent/reference-agent.ts minus
 * SQLite: `POST /webhook {"message"}` → `{"response": "You said: ..."}` at once. Optionally also a
 * stand-in for the Telegram Bot API (`sendMessage` answers ok at once).
 *
 * Each delivery's text starts with `s<send time, ms since the epoch with µs>;`, stamped by the load
 * generator; the host records arrival − send (clocks: performance.timeOrigin + performance.now(),
 * the same system clock in every process), and checks each chat's order and duplicates
 * (X-Idempotency-Key `<tenant>:<update_id>`; the chat follows from the update id, see e2e.ts).
 *
 * Args: <ports> <telegram: 0|1> <tenants> <chatsPerTenant>.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveParent } from './lib/common.js';

const [portsArg, telegramArg, tenantsArg, chatsArg] = process.argv.slice(2);
const PORTS = Number(portsArg);
const TENANTS = Number(tenantsArg);
const CHATS = Number(chatsArg);
const now = (): number => performance.timeOrigin + performance.now();

// Arrival times and latencies (ms), in arrival order.
let arrivals = new Float64Array(1 << 16);
let latencies = new Float64Array(1 << 16);
let n = 0;
const seen = new Set<string>();
const lastOfChat = new Map<string, number>();
let duplicates = 0;
let outOfOrder = 0;
let malformed = 0;
let telegramCalls = 0;

const record = (arrival: number, latency: number): void => {
  if (n === arrivals.length) {
    const a = new Float64Array(n * 2);
    a.set(arrivals);
    arrivals = a;
    const l = new Float64Array(n * 2);
    l.set(latencies);
    latencies = l;
  }
  arrivals[n] = arrival;
  latencies[n++] = latency;
};

const readBody = (req: http.IncomingMessage, done: (body: string) => void): void => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => done(Buffer.concat(chunks).toString('utf8')));
};

const agent = (req: http.IncomingMessage, res: http.ServerResponse): void => {
  const arrival = now();
  if (req.method !== 'POST' || req.url !== '/webhook') {
    res.writeHead(req.url === '/health' ? 200 : 404, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    return;
  }
  const key = String(req.headers['x-idempotency-key'] ?? '');
  readBody(req, (body) => {
    let text = '';
    try {
      text = String((JSON.parse(body) as { message?: unknown }).message ?? '');
    } catch {
      /* counted below */
    }
    const m = /^s([0-9.]+);/.exec(text);
    if (!m) malformed++;
    else record(arrival, arrival - Number(m[1]));
    if (key) {
      if (seen.has(key)) duplicates++;
      else {
        seen.add(key);
        // The generator's chat of update u: 100000 + floor(u / TENANTS) % CHATS (see e2e.ts).
        const [tenant, idText] = key.split(':') as [string, string];
        const id = Number(idText);
        const chatKey = `${tenant}.${100_000 + (Math.floor(id / TENANTS) % CHATS)}`;
        if ((lastOfChat.get(chatKey) ?? -1) > id) outOfOrder++;
        lastOfChat.set(chatKey, id);
      }
    }
    const response = JSON.stringify({ response: `You said: ${text} (memories: 1)` });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(response) }).end(response);
  });
};

const telegram = (req: http.IncomingMessage, res: http.ServerResponse): void => {
  readBody(req, (body) => {
    telegramCalls++;
    let chat: unknown = 0;
    try {
      chat = (JSON.parse(body) as { chat_id?: unknown }).chat_id;
    } catch {
      /* ignore */
    }
    const answer = JSON.stringify({ ok: true, result: { message_id: telegramCalls, date: Math.floor(Date.now() / 1000), chat: { id: Number(chat), type: 'private' } } });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) }).end(answer);
  });
};

const listen = (handler: http.RequestListener): Promise<number> => new Promise((resolve) => {
  const server = http.createServer(handler);
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
});

const ports: number[] = [];
for (let i = 0; i < PORTS; i++) ports.push(await listen(agent));
const telegramPort = telegramArg === '1' ? await listen(telegram) : undefined;

serveParent({ ports, telegramPort }, {
  usage: () => ({ cpu: process.cpuUsage(), mem: process.memoryUsage() }),
  /** Latencies of deliveries that arrived in [from, to) (epoch ms), and the correctness counters. */
  stats: (args) => {
    const from = Number(args.from ?? 0);
    const to = Number(args.to ?? Infinity);
    const window: number[] = [];
    for (let i = 0; i < n; i++) if ((arrivals[i] as number) >= from && (arrivals[i] as number) < to) window.push(latencies[i] as number);
    return { latencies: window, delivered: seen.size, deliveries: n, duplicates, outOfOrder, malformed, telegramCalls };
  },
}, async () => undefined);
