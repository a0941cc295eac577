/**
 * lib/util/bounded-body.ts on a real node:http server over loopback: bodies up to the limit whole,
 * a declared or streamed body past it refused with the client still seeing the 413, and a client
 * that goes on sending far past the limit cut off instead of being read forever.
 */
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { readBoundedBody } from '../lib/util/bounded-body.js';

const LIMIT = 1024;
let server: Server;
let base: string;
/** What the handler got, per request: the body's length, or 'over'. */
const seen: Array<number | 'over'> = [];
/** Bytes the server took off each request's stream before it ended or was closed. */
const consumed: number[] = [];

t.before(async () => {
  server = createServer((req, res) => {
    let got = 0;
    req.on('data', (c: Buffer) => (got += c.length));
    req.once('close', () => consumed.push(got));
    void readBoundedBody(req, LIMIT).then((body) => {
      seen.push(body === undefined ? 'over' : body.length);
      res.writeHead(body === undefined ? 413 : 200, { 'content-type': 'text/plain' });
      res.end(body === undefined ? 'too large' : body.toString('utf8').slice(0, 10));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
t.teardown(() => new Promise<void>((resolve) => {
  server.closeAllConnections();
  server.close(() => resolve());
}));

const post = async (body: string | Buffer | Readable, headers: Record<string, string> = {}) => {
  const res = await request(`${base}/`, { method: 'POST', body, headers });
  return { status: res.statusCode, text: await res.body.text() };
};

t.test('up to the limit: the whole body', async (t) => {
  t.same(await post('hello'), { status: 200, text: 'hello' });
  t.same(await post(Buffer.alloc(LIMIT, 'a')), { status: 200, text: 'aaaaaaaaaa' }, 'exactly the limit');
  t.same(await post(''), { status: 200, text: '' }, 'empty');
  t.same(seen.slice(-3), [5, LIMIT, 0]);
});

t.test('past the limit: 413, and the client sees it', async (t) => {
  t.same(await post(Buffer.alloc(LIMIT + 1, 'a')), { status: 413, text: 'too large' }, 'declared one byte over');
  const streamed = Readable.from((function* () {
    for (let i = 0; i < 3; i++) yield Buffer.alloc(LIMIT, 'b'); // 3 × limit, no Content-Length
  })());
  t.same(await post(streamed), { status: 413, text: 'too large' }, 'streamed over: read on and dropped, the answer arrives');
  t.same(seen.slice(-2), ['over', 'over']);
  t.same(await post('still here'), { status: 200, text: 'still here' }, 'the server goes on');
});

t.test('a client sending far past the limit is cut off', async (t) => {
  let sent = 0;
  const endless = new Readable({
    read() {
      if (sent > 1024 * LIMIT) return this.push(null); // bounded: the test never streams forever
      sent += LIMIT;
      this.push(Buffer.alloc(LIMIT, 'c'));
    },
  });
  const before = consumed.length;
  const outcome = await post(endless).then((r) => r.status, () => 'reset');
  t.ok(outcome === 413 || outcome === 'reset', `413 or a reset (${String(outcome)})`);
  await new Promise((r) => setTimeout(r, 100));
  const read = consumed[before];
  // The drain bound (8 × limit) plus at most one socket read past it.
  t.ok(read !== undefined && read <= 8 * LIMIT + 65_536, `the server read ${String(read)} bytes of the ${sent} the client offered, then cut it off`);
});

t.test('a body declared far past the limit is cut off too, not read to its declared end', async (t) => {
  const big = Buffer.alloc(1024 * LIMIT, 'd'); // Content-Length: 1 MiB
  const before = consumed.length;
  const outcome = await post(big).then((r) => r.status, () => 'reset');
  t.ok(outcome === 413 || outcome === 'reset', `413 or a reset (${String(outcome)})`);
  await new Promise((r) => setTimeout(r, 100));
  const read = consumed[before];
  t.ok(read !== undefined && read <= 8 * LIMIT + 65_536, `the server read ${String(read)} of the ${big.length} bytes declared, then cut it off`);
});

t.test('bad options fail at once', async (t) => {
  const req = Readable.from([]) as unknown as Parameters<typeof readBoundedBody>[0];
  (req as unknown as { headers: object }).headers = {};
  t.throws(() => readBoundedBody(req, -1), TypeError);
  t.throws(() => readBoundedBody(req, 10, { drainLimit: 5 }), TypeError);
});
