/**
 * The reference agent as a real child process: zeroclaw protocol answers, memory count,
 * exactly-once effect per idempotency key, input rejection, clean stop and restart.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { freePort } from '../lib/util/free-port.js';
import { startAgent } from '../agent/reference-agent.js';
import { agentTokenSha256 } from '../lib/webhook-secret.js';

/** The bearer the forwarder would present; the agent is given only its SHA-256 (test/reference-agent-auth.test.ts checks refusals). */
const BEARER = 'agent-test-bearer-0123456789abcdefghijklmnopq';
const AUTH = { authorization: `Bearer ${BEARER}` };

const AGENT = fileURLToPath(new URL('../agent/reference-agent.ts', import.meta.url));

interface Running { child: ChildProcess; port: number; output: () => string; exited: Promise<number | null> }

async function startProcess(workspace: string): Promise<Running> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', AGENT, '--port', String(port), '--workspace', workspace], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AGENT_TOKEN_SHA256: agentTokenSha256(BEARER) },
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`agent exited early: ${out}`);
    if (Date.now() > deadline) throw new Error(`agent not up in 20s: ${out}`);
    const ok = await request(`http://127.0.0.1:${port}/health`).then(async (r) => (await r.body.dump(), r.statusCode === 200), () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, port, output: () => out, exited };
}

async function stopProcess(p: Running, ms = 10_000): Promise<number | null> {
  p.child.kill('SIGTERM');
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());
  const result = await Promise.race([p.exited, timeout]);
  if (result === 'timeout') {
    p.child.kill('SIGKILL');
    throw new Error('agent did not stop within the bound');
  }
  return result;
}

async function post(port: number, body: string | Buffer, headers: Record<string, string> = {}, p = '/webhook') {
  const res = await request(`http://127.0.0.1:${port}${p}`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...AUTH, ...headers },
  });
  const text = await res.body.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // left empty: some assertions only look at the status
  }
  return { status: res.statusCode, json };
}

const say = (port: number, message: string, key?: string) =>
  post(port, JSON.stringify({ message }), key ? { 'x-idempotency-key': key } : {});

const workspace = mkdtempSync(path.join(tmpdir(), 'ztm-agent-'));
const live: Running[] = [];
t.teardown(() => {
  for (const p of live) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  rmSync(workspace, { recursive: true, force: true });
});

t.test('answers, remembers, and is idempotent per key', async (t) => {
  const agent = await startProcess(workspace);
  live.push(agent);
  const health = await request(`http://127.0.0.1:${agent.port}/health`);
  t.equal(health.statusCode, 200);
  t.same(await health.body.json(), { status: 'ok' });

  t.same((await say(agent.port, 'hello')).json, { response: 'You said: hello (memories: 1)' });
  t.same((await say(agent.port, 'again')).json, { response: 'You said: again (memories: 2)' });

  const first = await say(agent.port, 'once', 'alice:100');
  t.same(first, { status: 200, json: { response: 'You said: once (memories: 3)' } });
  const retry = await say(agent.port, 'once', 'alice:100');
  t.same(retry, first, 'same key: the stored response');
  const changed = await say(agent.port, 'something else', 'alice:100');
  t.same(changed.json, first.json, 'same key, other text: still the first answer');
  t.same((await say(agent.port, 'next', 'alice:101')).json, { response: 'You said: next (memories: 4)' }, 'no insert for the repeats');
  t.same((await say(agent.port, '')).json, { response: 'You said:  (memories: 5)' }, 'an empty text is still a message');

  t.equal((await post(agent.port, 'not json')).status, 400, 'non-JSON');
  t.equal((await post(agent.port, '{}')).status, 400, 'no message');
  t.equal((await post(agent.port, '{"message": 42}')).status, 400, 'message not a string');
  t.equal((await post(agent.port, 'null')).status, 400, 'JSON null');
  t.equal((await say(agent.port, 'x', 'k'.repeat(300))).status, 400, 'oversized idempotency key');
  const big = Buffer.alloc(1024 * 1024 + 1, 'a');
  const tooLarge = await post(agent.port, big);
  t.equal(tooLarge.status, 413, 'body over 1 MiB');
  t.match(tooLarge.json, { error: String });
  t.equal((await post(agent.port, '{"message":"x"}', {}, '/other')).status, 404, 'other path');
  const get = await request(`http://127.0.0.1:${agent.port}/webhook`, { headers: AUTH });
  await get.body.dump();
  t.equal(get.statusCode, 405, 'GET /webhook');
  t.same((await say(agent.port, 'after errors')).json, { response: 'You said: after errors (memories: 6)' }, 'rejected requests stored nothing');

  t.equal(await stopProcess(agent), 0, 'SIGTERM: exit 0');
  t.notOk(existsSync(path.join(workspace, 'memory', 'brain.db-wal')), 'WAL folded into brain.db on stop');
  const db = new Database(path.join(workspace, 'memory', 'brain.db'), { readonly: true });
  t.equal((db.prepare('SELECT count(*) AS n FROM memories').get() as { n: number }).n, 6, 'brain.db alone holds every memory');
  t.equal((db.prepare('SELECT count(*) AS n FROM idempotency').get() as { n: number }).n, 2);
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  db.close();
});

t.test('a restart keeps memories and idempotency keys', async (t) => {
  const agent = await startProcess(workspace);
  live.push(agent);
  t.same((await say(agent.port, 'back', 'alice:100')).json, { response: 'You said: once (memories: 3)' }, 'key remembered across restart');
  t.same((await say(agent.port, 'back')).json, { response: 'You said: back (memories: 7)' });
  t.equal(await stopProcess(agent), 0);
});

t.test('REPLY_DELAY_MS answers late, after the write (a timed-out retry gets the same answer)', async (t) => {
  const ws = mkdtempSync(path.join(tmpdir(), 'ztm-agent-delay-'));
  const agent = await startAgent({ host: '127.0.0.1', port: 0, workspace: ws, replyDelayMs: 300, logLevel: 'silent', tokenSha256: agentTokenSha256(BEARER) });
  t.teardown(async () => {
    await agent.stop();
    rmSync(ws, { recursive: true, force: true });
  });
  const t0 = Date.now();
  const slow = say(agent.port, 'slow', 'k1');
  await new Promise((r) => setTimeout(r, 100));
  const retry = await say(agent.port, 'slow', 'k1');
  t.ok(Date.now() - t0 >= 300, 'waited for the delay');
  t.same(retry.json, { response: 'You said: slow (memories: 1)' });
  t.same((await slow).json, retry.json, 'both deliveries got the one answer');
});
