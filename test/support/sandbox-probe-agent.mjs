// A hostile agent for test/agent-sandbox.test.ts (AGENT_PROFILE=custom, zeroclaw protocol): it
// keeps notes in its workspace (memory/notes.txt, its state) and answers GET /probe with what it
// could see of its host: the processes in its /proc (their command lines, whether their environ is
// readable and holds a shim's secret) and, for each path of its argument (base64url JSON, so that
// no path appears in its command line), whether it can read it. Plain Node, no dependencies.
import { appendFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const targets = JSON.parse(Buffer.from(process.argv[2] ?? 'e30', 'base64url').toString('utf8')).files ?? [];
const workspace = process.env.WORKSPACE;
const notes = path.join(workspace, 'memory', 'notes.txt');
mkdirSync(path.dirname(notes), { recursive: true });

function attempt(fn) {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    return { ok: false, code: err.code ?? String(err) };
  }
}

/** `extra`: paths the test found after the start (a warm member's workspace), asked for by the probe request. */
function probe(extra = []) {
  const procs = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map((pid) => {
    const cmdline = attempt(() => readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim());
    const environ = attempt(() => readFileSync(`/proc/${pid}/environ`, 'utf8'));
    return {
      pid: Number(pid),
      cmdline: cmdline.ok ? cmdline.value : '',
      environ_readable: environ.ok,
      pool_secret: environ.ok && /(^|\0)WARM_POOL_SECRET=/.test(environ.value),
    };
  });
  const files = Object.fromEntries([...new Set([...targets, ...extra])].map((p) => {
    const r = attempt(() => {
      const st = readdirSync(p, { withFileTypes: false });
      return `dir of ${st.length}`;
    });
    if (r.ok) return [p, { readable: true, what: r.value }];
    const f = attempt(() => readFileSync(p, 'utf8').length);
    return [p, f.ok ? { readable: true, what: `file of ${f.value}` } : { readable: false, code: f.code }];
  }));
  const write = attempt(() => writeFileSync(path.join(workspace, 'probe-wrote'), 'x'));
  return { uid: process.getuid(), cwd: process.cwd(), procs, files, wrote_workspace: write.ok };
}

const reply = (res, status, body) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/health') return reply(res, 200, { status: 'ok' });
  if (req.method === 'GET' && (req.url === '/probe' || req.url?.startsWith('/probe?files='))) {
    const asked = req.url.startsWith('/probe?files=') ? JSON.parse(Buffer.from(req.url.slice('/probe?files='.length), 'base64url').toString('utf8')) : [];
    return reply(res, 200, probe(Array.isArray(asked) ? asked.filter((f) => typeof f === 'string') : []));
  }
  if (req.method !== 'POST' || req.url !== '/webhook') {
    req.resume();
    return reply(res, 404, { error: 'not found' });
  }
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const message = String(JSON.parse(body).message ?? '');
    appendFileSync(notes, `${message}\n`);
    const count = readFileSync(notes, 'utf8').split('\n').filter(Boolean).length;
    reply(res, 200, { response: `noted: ${message} (notes: ${count})` });
  });
}).listen(Number(process.env.PORT), process.env.HOST || '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
