// A zeroclaw-protocol agent bound to one tenant, run by the shim as AGENT_COMMAND (plain Node, no
// build step): it answers POST /webhook only when SHA-256(bearer) is its tenant's (from the file
// given by --hashes: {"<tenant id>": "<hex sha256>"}, picked by TENANT_ID), else 401, as ZeroClaw's
// gateway does for a token it never paired. --refuse-all: it refuses every bearer (a misconfigured
// agent). Every request is recorded as a JSON line in <--log-dir>/<TENANT_ID>.jsonl.
//   node tenant-bound-agent.mjs --hashes <file> --log-dir <dir> [--refuse-all]
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const arg = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const tenant = process.env.TENANT_ID;
const hashesFile = arg('hashes');
const logDir = arg('log-dir');
if (!tenant || !hashesFile || !logDir) {
  console.error('tenant-bound-agent: TENANT_ID, --hashes and --log-dir are required');
  process.exit(2);
}
const refuseAll = process.argv.includes('--refuse-all');
const log = path.join(logDir, `${tenant}.jsonl`);

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'GET' && req.url === '/health') return send(res, 200, { status: 'ok' });
    if (req.method !== 'POST' || req.url !== '/webhook') return send(res, 404, { error: 'not found' });
    let message = '';
    try {
      message = String(JSON.parse(Buffer.concat(chunks).toString('utf8')).message ?? '');
    } catch {
      return send(res, 400, { error: 'bad json' });
    }
    // Read per request: the test writes the hashes once the tenants exist.
    const expected = JSON.parse(readFileSync(hashesFile, 'utf8'))[tenant];
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const ok = !refuseAll && expected && createHash('sha256').update(bearer).digest('hex') === expected;
    appendFileSync(log, `${JSON.stringify({ tenant, message, status: ok ? 200 : 401, port: server.address().port })}\n`);
    if (!ok) return send(res, 401, { error: 'Unauthorized — pair first via POST /pair, then send Authorization: Bearer <token>' });
    send(res, 200, { response: `${tenant} says: ${message}` });
  });
});

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

server.listen(Number(process.env.PORT), process.env.HOST || '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
