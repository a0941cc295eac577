// Agent for bench/wake.ts, started by the shim as AGENT_COMMAND (`node bench/wake-agent.mjs <results file>`).
// Plain JavaScript on purpose: it starts in tens of milliseconds instead of the reference agent's
// tsx + SQLite start, so two hundred of them do not swamp a small machine (its start is measured
// and subtracted anyway). Speaks the `zeroclaw` protocol (POST /webhook, GET /health) and appends,
// per message, one JSON line to the results file: tenant, the generator's send stamp (text
// `s<ms since the epoch>;...`), the arrival, the process's birth (performance.timeOrigin) and when
// it was listening. All clocks: performance.timeOrigin + performance.now() (the system clock).
import http from 'node:http';
import { appendFileSync } from 'node:fs';

const results = process.argv[2];
const now = () => performance.timeOrigin + performance.now();
let listening = 0;
const server = http.createServer((req, res) => {
  const arrival = now();
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let text = '';
    try {
      text = String(JSON.parse(Buffer.concat(chunks).toString('utf8')).message ?? '');
    } catch {
      // not JSON: recorded without a stamp
    }
    const m = /^s([0-9.]+);/.exec(text);
    appendFileSync(results, `${JSON.stringify({ tenant: process.env.TENANT_ID, sent: m ? Number(m[1]) : null, arrival, born: performance.timeOrigin, listening })}\n`);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ response: 'awake' }));
  });
});
server.listen(Number(process.env.PORT), process.env.HOST || '127.0.0.1', () => {
  listening = now();
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
