/**
 * The Telegram emulator as a standalone process, for driving the platform by hand:
 *
 *   node --import tsx test/support/telegram-emulator-main.ts --port 8081 [--bot <token>]...
 *   TELEGRAM_API_BASE=http://127.0.0.1:8081 npm start
 *   curl -s http://127.0.0.1:8081/_emulator/calls
 *   curl -s -XPOST http://127.0.0.1:8081/_emulator/deliver/<botId> -d '{"update_id":1,"message":{...}}'
 *
 * Any syntactically valid token is a known bot by default (--no-accept-any-token to only know --bot
 * tokens), so `ztm` can register tenants with made-up tokens. Tokens and webhook secrets are never
 * printed: log lines go through redactSecrets, /_emulator/calls masks tokens with maskToken.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { maskToken, REDACTED, redactDeep, redactSecrets } from '../../lib/redact.js';
import { TelegramEmulator, type RecordedCall } from './telegram-emulator.js';

interface MainArgs {
  port: number;
  host: string;
  bots: string[];
  acceptAnyToken: boolean;
  requireHttps: boolean;
}

const USAGE = 'usage: telegram-emulator-main.ts [--port 8081] [--host 127.0.0.1] [--bot <token>]... '
  + '[--accept-any-token | --no-accept-any-token] [--require-https]';

function parseArgs(argv: string[]): MainArgs {
  const args: MainArgs = { port: 8081, host: '127.0.0.1', bots: [], acceptAnyToken: true, requireHttps: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) fatal(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--port': {
        const v = value();
        const port = Number(v);
        if (!/^[0-9]+$/.test(v) || port > 65535) fatal('--port must be 0-65535');
        args.port = port;
        break;
      }
      case '--host': args.host = value(); break;
      case '--bot': args.bots.push(value()); break;
      case '--accept-any-token': args.acceptAnyToken = true; break;
      case '--no-accept-any-token': args.acceptAnyToken = false; break;
      case '--require-https': args.requireHttps = true; break;
      case '--help': case '-h': console.log(USAGE); process.exit(0); break;
      default: fatal(`unknown argument ${JSON.stringify(redactSecrets(String(flag)))}`);
    }
  }
  return args;
}

function fatal(message: string): never {
  console.error(`telegram emulator: ${message}\n${USAGE}`);
  process.exit(2);
}

/** A call as shown to a human: token masked, webhook secret hidden, any token-shaped text scrubbed. */
function shown(call: RecordedCall): Record<string, unknown> {
  const params = { ...call.params };
  if (params.secret_token !== undefined) params.secret_token = REDACTED;
  return { ...call, token: maskToken(call.token), params: redactDeep(params), result: redactDeep(call.result) };
}

function logCall(call: RecordedCall): void {
  const params = JSON.stringify(shown(call).params);
  console.log(redactSecrets(`${new Date(call.at).toISOString()} ${call.status} ${call.method} bot=${maskToken(call.token)} ${params}`));
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

/** The /_emulator/* control routes; everything else falls through to the Bot API routes. */
async function controlRoutes(req: IncomingMessage, res: ServerResponse, emulator: TelegramEmulator): Promise<boolean> {
  const path = new URL(req.url ?? '/', 'http://emulator').pathname;
  if (req.method === 'GET' && path === '/_emulator/calls') {
    reply(res, 200, emulator.calls.map(shown));
    return true;
  }
  if (req.method === 'POST' && path === '/_emulator/reset') {
    emulator.reset();
    reply(res, 200, { ok: true });
    return true;
  }
  const deliver = /^\/_emulator\/deliver\/([^/]+)$/.exec(path);
  if (req.method !== 'POST' || !deliver?.[1]) return false;
  const key = decodeURIComponent(deliver[1]);
  // A bot id is public and easy to type; a full token also works (it never appears in the answer).
  const token = /^[0-9]+$/.test(key) ? emulator.tokenOf(Number(key)) : key;
  if (token === undefined || emulator.webhookOf(token) === undefined) {
    reply(res, 404, { ok: false, description: 'unknown bot or no webhook set for it' });
    return true;
  }
  let update: unknown;
  try {
    update = await readJson(req);
  } catch {
    reply(res, 400, { ok: false, description: 'body must be a JSON Telegram Update' });
    return true;
  }
  try {
    const result = await emulator.deliverUpdate(token, update);
    console.log(`deliver bot=${maskToken(token)} -> ${result.status}`);
    reply(res, 200, { ok: true, result: { status: result.status, body: redactSecrets(result.body) } });
  } catch (err) {
    reply(res, 502, { ok: false, description: redactSecrets(`delivery failed: ${err instanceof Error ? err.message : String(err)}`) });
  }
  return true;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const emulator = await TelegramEmulator.start({
    port: args.port,
    host: args.host,
    acceptAnyToken: args.acceptAnyToken,
    requireHttps: args.requireHttps,
    extraRoutes: controlRoutes,
    onCall: logCall,
  });
  for (const token of args.bots) {
    try {
      emulator.addBot(token);
    } catch {
      fatal('--bot: not a bot token (<digits>:<A-Za-z0-9_->)');
    }
  }
  console.log(`telegram emulator listening on ${emulator.url}`);
  const stop = (): void => {
    emulator.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  console.error(redactSecrets(`telegram emulator: ${err instanceof Error ? err.message : String(err)}`));
  process.exit(1);
});
