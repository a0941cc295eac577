/**
 * Reference agent speaking ZeroClaw's gateway protocol, for local runs and tests. It remembers
 * every message in SQLite at `<workspace>/memory/brain.db` (ZeroClaw's path, WAL mode, as
 * ZeroClaw runs it) and says how many memories it holds, so persistence across sleep and wake is
 * visible in the replies. A separate program: it reads its own argv/env (in `readAgentOptions`).
 *
 *   POST /webhook {"message": "..."} [X-Idempotency-Key] → {"response": "You said: ... (memories: N)"}
 *   GET  /health → {"status":"ok"}
 *
 * /webhook answers only the platform: `Authorization: Bearer <token>` whose SHA-256 is
 * AGENT_TOKEN_SHA256 (the shim hands it over; the token is derived for this tenant's incarnation,
 * lib/webhook-secret.ts), compared in constant time; anything else gets 401, and so does every call
 * when no hash is configured (fail closed). /health stays open (the shim's probes).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import pino from 'pino';
import { createLogger } from '../lib/logger.js';
import { readBoundedBody } from '../lib/util/bounded-body.js';

export interface AgentOptions {
  host: string;
  port: number;
  workspace: string;
  replyDelayMs: number;
  logLevel: string;
  /** Lowercase hex SHA-256 of the only bearer /webhook accepts; undefined: /webhook refuses everything. */
  tokenSha256: string | undefined;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** The one place this program reads its environment and arguments. */
export function readAgentOptions(argv: readonly string[], env: NodeJS.ProcessEnv): AgentOptions {
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    if (i >= 0) return argv[i + 1];
    const eq = argv.find((a) => a.startsWith(`--${name}=`));
    return eq?.slice(name.length + 3);
  };
  const whole = (name: string, raw: string | undefined, def: number, min: number, max: number): number => {
    if (raw === undefined || raw.trim() === '') return def;
    const n = Number(raw);
    if (!/^[0-9]+$/.test(raw.trim()) || n < min || n > max) {
      throw new Error(`${name}: must be a whole number from ${min} to ${max}`);
    }
    return n;
  };
  return {
    host: env.HOST?.trim() || '127.0.0.1',
    // ZeroClaw's own default gateway port.
    port: whole('PORT', flag('port') ?? env.PORT, 42617, 0, 65_535),
    workspace: path.resolve(flag('workspace') ?? env.WORKSPACE ?? 'workspace'),
    replyDelayMs: whole('REPLY_DELAY_MS', env.REPLY_DELAY_MS, 0, 0, 600_000),
    logLevel: env.LOG_LEVEL?.trim() || 'info',
    tokenSha256: tokenHashOf(env.AGENT_TOKEN_SHA256),
  };
}

function tokenHashOf(raw: string | undefined): string | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  if (!SHA256_HEX.test(raw.trim())) throw new Error('AGENT_TOKEN_SHA256: must be a lowercase hex SHA-256 (64 characters)');
  return raw.trim();
}

/**
 * The bearer check: SHA-256 of what was presented against the configured digest, both 32 bytes, so
 * the comparison takes the same time whatever was sent (or whether anything was).
 */
export function bearerChecker(tokenSha256: string | undefined): (authorization: string | undefined) => boolean {
  const expected = tokenSha256 === undefined ? undefined : Buffer.from(tokenSha256, 'hex');
  return (authorization) => {
    const m = /^Bearer ([^\s]+)$/.exec(authorization ?? '');
    const presented = createHash('sha256').update(m?.[1] ?? '', 'utf8').digest();
    return expected !== undefined && timingSafeEqual(presented, expected) && m !== null;
  };
}

const UNAUTHORIZED: Reply = { status: 401, body: { error: 'unauthorized: this agent answers only its tenant\'s platform bearer' }, headers: { 'www-authenticate': 'Bearer' } };

/** Same limit as the platform's ingress: nothing larger can arrive through Telegram anyway. */
export const MAX_BODY_BYTES = 1024 * 1024;
const MAX_KEY_LENGTH = 256;

/** Memories and the answers already given, per idempotency key, in one SQLite file. */
export class Brain {
  private readonly db: Database.Database;
  private readonly remember: (text: string, key: string | undefined) => string;

  constructor(file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // A checkpointing reader (the shim's backup) may hold a lock briefly: wait, don't fail.
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS memories (id INTEGER PRIMARY KEY, text TEXT, at TEXT);
      CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, response TEXT);
    `);
    const findKey = this.db.prepare<[string], { response: string }>('SELECT response FROM idempotency WHERE key = ?');
    const insert = this.db.prepare('INSERT INTO memories (text, at) VALUES (?, ?)');
    const count = this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM memories');
    const saveKey = this.db.prepare('INSERT INTO idempotency (key, response) VALUES (?, ?)');
    // One transaction: the memory and the stored answer commit together, so a retried
    // delivery either sees both (and gets the same answer) or neither (and does it once).
    this.remember = this.db.transaction((text: string, key: string | undefined): string => {
      if (key !== undefined) {
        const seen = findKey.get(key);
        if (seen) return seen.response;
      }
      insert.run(text, new Date().toISOString());
      const n = count.get()?.n ?? 0;
      const response = `You said: ${text} (memories: ${n})`;
      if (key !== undefined) saveKey.run(key, response);
      return response;
    });
  }

  handle(text: string, key: string | undefined): string {
    return this.remember(text, key);
  }

  /** Folds the WAL into the main file so a copy of brain.db alone is complete, then closes. */
  close(): void {
    if (!this.db.open) return;
    this.db.pragma('wal_checkpoint(TRUNCATE)');
    this.db.close();
  }
}

type Reply = { status: number; body: unknown; headers?: Record<string, string> };

function send(res: http.ServerResponse, reply: Reply): void {
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...reply.headers,
  });
  res.end(text);
}

async function handleWebhook(req: http.IncomingMessage, brain: Brain, options: AgentOptions): Promise<Reply> {
  const body = await readBoundedBody(req, MAX_BODY_BYTES);
  if (body === undefined) return { status: 413, body: { error: `body larger than ${MAX_BODY_BYTES} bytes` } };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return { status: 400, body: { error: 'body is not JSON' } };
  }
  const message = (parsed as { message?: unknown } | null)?.message;
  if (typeof message !== 'string') return { status: 400, body: { error: 'expected {"message": "<text>"}' } };
  const rawKey = req.headers['x-idempotency-key'];
  const key = typeof rawKey === 'string' && rawKey !== '' ? rawKey : undefined;
  if (key !== undefined && key.length > MAX_KEY_LENGTH) {
    return { status: 400, body: { error: `X-Idempotency-Key longer than ${MAX_KEY_LENGTH} characters` } };
  }
  const response = brain.handle(message, key);
  // After the write, like an LLM call that is slow to answer: a client that times out and
  // retries with the same key must get this same answer, not a second memory.
  if (options.replyDelayMs > 0) await sleep(options.replyDelayMs);
  return { status: 200, body: { response } };
}

export interface RunningAgent {
  server: http.Server;
  port: number;
  /** Stops accepting, lets in-flight requests finish (bounded), closes the db. */
  stop(): Promise<void>;
}

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const log = createLogger({ service: 'reference-agent', level: options.logLevel, destination: pino.destination({ dest: 1, sync: true }) });
  const brain = new Brain(path.join(options.workspace, 'memory', 'brain.db'));
  const authorized = bearerChecker(options.tokenSha256);
  if (options.tokenSha256 === undefined) log.warn('no AGENT_TOKEN_SHA256: every /webhook call is refused (401)');
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?', 1)[0];
    let work: Promise<Reply>;
    if (url === '/health') {
      work = Promise.resolve(req.method === 'GET' || req.method === 'HEAD'
        ? { status: 200, body: { status: 'ok' } }
        : { status: 405, body: { error: 'method not allowed' }, headers: { allow: 'GET' } });
    } else if (url === '/webhook') {
      // Before the body is read: a caller without the bearer learns nothing and costs nothing.
      work = !authorized(req.headers.authorization)
        ? (req.resume(), Promise.resolve(UNAUTHORIZED))
        : req.method === 'POST'
          ? handleWebhook(req, brain, options)
          : Promise.resolve({ status: 405, body: { error: 'method not allowed' }, headers: { allow: 'POST' } });
    } else {
      work = Promise.resolve({ status: 404, body: { error: 'not found' } });
    }
    work.then((reply) => send(res, reply), (err: unknown) => {
      log.error({ err }, 'request failed');
      if (!res.headersSent) send(res, { status: 500, body: { error: 'internal error' } });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;
  log.info({ port, workspace: options.workspace }, 'reference agent listening');
  let stopping: Promise<void> | undefined;
  return {
    server,
    port,
    stop() {
      stopping ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // In-flight requests get a few seconds; the db must be closed either way.
        const timer = setTimeout(() => server.closeAllConnections(), 5000);
        await closed;
        clearTimeout(timer);
        brain.close();
        log.info('reference agent stopped, brain.db closed');
      })();
      return stopping;
    },
  };
}

async function main(): Promise<void> {
  let options: AgentOptions;
  try {
    options = readAgentOptions(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`reference-agent: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const agent = await startAgent(options);
  const onSignal = (): void => {
    agent.stop().then(() => process.exit(0), (err: unknown) => {
      process.stderr.write(`reference-agent: stop failed: ${(err as Error).message}\n`);
      process.exit(1);
    });
  };
  // `on`, not `once`: a second signal must not fall through to the default (kill before close).
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

// Run only as a program, not when a test imports Brain or startAgent.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`reference-agent: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
