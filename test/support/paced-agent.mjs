// A zeroclaw-protocol agent with a pace per tenant, run by the shim as AGENT_COMMAND (plain Node):
// it starts listening only after its tenant's `startMs` (a slow cold start: the shim's readiness
// probe fails until then) and answers POST /webhook after `replyMs` (an agent that thinks). The
// plan is a JSON file {"<tenant id>": {"startMs": n, "replyMs": n}}, read at start and per request.
// The bearer is checked as ZeroClaw's gateway does (SHA-256 against AGENT_TOKEN_SHA256, else 401).
//   node paced-agent.mjs --plan <file>
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

const i = process.argv.indexOf('--plan');
const planFile = i >= 0 ? process.argv[i + 1] : undefined;
const tenant = process.env.TENANT_ID;
if (!planFile || !tenant) {
  console.error('paced-agent: --plan and TENANT_ID are required');
  process.exit(2);
}
const paceOf = () => {
  const p = JSON.parse(readFileSync(planFile, 'utf8'))[tenant] ?? {};
  return { startMs: Number(p.startMs ?? 0), replyMs: Number(p.replyMs ?? 0) };
};
const expected = process.env.AGENT_TOKEN_SHA256;

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'GET' && req.url === '/health') return send(res, 200, { status: 'ok' });
    if (req.method !== 'POST' || req.url !== '/webhook') return send(res, 404, { error: 'not found' });
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    if (!expected || createHash('sha256').update(bearer).digest('hex') !== expected) return send(res, 401, { error: 'unauthorized' });
    let message = '';
    try {
      message = String(JSON.parse(Buffer.concat(chunks).toString('utf8')).message ?? '');
    } catch {
      return send(res, 400, { error: 'bad json' });
    }
    setTimeout(() => send(res, 200, { response: `paced: ${message}` }), paceOf().replyMs);
  });
});

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

setTimeout(() => server.listen(Number(process.env.PORT), process.env.HOST || '127.0.0.1'), paceOf().startMs);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
