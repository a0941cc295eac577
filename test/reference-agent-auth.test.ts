/**
 * Identity on delivery, the reference agent's side: a real reference agent process on loopback,
 * given only the SHA-256 of its tenant's bearer (per incarnation), answers the forwarder's client
 * with that bearer and refuses everything else with 401, which the forwarder reads as a stale
 * endpoint (not this tenant's agent). classify() maps a 401 to stale-endpoint in both protocols.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { freePort } from '../lib/util/free-port.js';
import { STALE_ENDPOINT_REASONS } from '../lib/delivery/outcomes.js';
import { agentTokenSha256, deriveAgentToken } from '../lib/webhook-secret.js';
import { AgentClient, classify } from '../services/forwarder/agent-client.js';

const AGENT = fileURLToPath(new URL('../agent/reference-agent.ts', import.meta.url));
const MASTER = 'reference-agent-auth-master-0123456789';
const alice = { tenant_id: 'alice', incarnation: 'A'.repeat(22) };
const aliceBefore = { tenant_id: 'alice', incarnation: 'Z'.repeat(22) };
const mallory = { tenant_id: 'mallory', incarnation: 'M'.repeat(22) };

async function startAgentProcess(t: Test, env: Record<string, string>): Promise<number> {
  const port = await freePort();
  const ws = mkdtempSync(path.join(tmpdir(), 'ztm-ref-auth-'));
  const child = spawn(process.execPath, ['--import', 'tsx', AGENT, '--port', String(port), '--workspace', ws], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, AGENT_TOKEN_SHA256: '', ...env },
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  t.teardown(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    rmSync(ws, { recursive: true, force: true });
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`agent exited early: ${out}`);
    if (Date.now() > deadline) throw new Error(`agent not up in 20s: ${out}`);
    const ok = await request(`http://127.0.0.1:${port}/health`).then(async (r) => (await r.body.dump(), r.statusCode === 200), () => false);
    if (ok) return port;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function post(port: number, authorization: string | undefined): Promise<{ status: number; json: unknown }> {
  const res = await request(`http://127.0.0.1:${port}/webhook`, {
    method: 'POST', body: JSON.stringify({ message: 'hello' }),
    headers: { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) },
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: JSON.parse(text) as unknown };
}

t.test('the reference agent answers only its tenant\'s bearer', async (t) => {
  const bearer = deriveAgentToken(MASTER, alice);
  const port = await startAgentProcess(t, { AGENT_TOKEN_SHA256: agentTokenSha256(bearer) });
  const refused = { status: 401, json: { error: String } };
  t.match(await post(port, undefined), refused, 'no bearer');
  t.match(await post(port, `Bearer ${deriveAgentToken(MASTER, mallory)}`), refused, 'another tenant\'s bearer');
  t.match(await post(port, `Bearer ${deriveAgentToken(MASTER, aliceBefore)}`), refused, 'an earlier incarnation\'s bearer');
  t.match(await post(port, `Bearer ${agentTokenSha256(bearer)}`), refused, 'the hash it holds is no bearer');
  t.match(await post(port, bearer), refused, 'the Bearer scheme is required');
  t.match(await post(port, `Bearer ${bearer}x`), refused);
  t.same(await post(port, `Bearer ${bearer}`), { status: 200, json: { response: 'You said: hello (memories: 1)' } }, 'its own bearer is answered');
  const health = await request(`http://127.0.0.1:${port}/health`);
  t.equal(health.statusCode, 200, '/health stays open');
  await health.body.dump();

  // Through the forwarder's own client: the 401 is a stale endpoint, the reason names no secret.
  const client = new AgentClient({ protocol: 'zeroclaw', timeoutMs: 5000 });
  t.teardown(() => client.close());
  const address = `127.0.0.1:${port}`;
  const wrong = await client.deliver({ address, tenantId: 'mallory', updateId: 1, text: 'hi', bearer: deriveAgentToken(MASTER, mallory) });
  t.same(wrong, { kind: 'stale-endpoint', status: 401, reason: STALE_ENDPOINT_REASONS.bearer }, 'another tenant\'s delivery: stale endpoint');
  const right = await client.deliver({ address, tenantId: 'alice', updateId: 2, text: 'hi', bearer });
  t.same(right, { kind: 'answered', status: 200, response: 'You said: hi (memories: 2)' });
  t.equal(JSON.stringify(wrong).includes(deriveAgentToken(MASTER, mallory)), false, 'no bearer in the outcome');
});

t.test('without AGENT_TOKEN_SHA256 it refuses every call (fail closed)', async (t) => {
  const port = await startAgentProcess(t, {});
  t.match(await post(port, `Bearer ${deriveAgentToken(MASTER, alice)}`), { status: 401, json: { error: String } });
});

t.test('a malformed AGENT_TOKEN_SHA256 stops it at start with a one-line error', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', AGENT, '--port', '0', '--workspace', mkdtempSync(path.join(tmpdir(), 'ztm-ref-bad-'))], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, AGENT_TOKEN_SHA256: 'NOT-HEX' },
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  t.equal(code, 2);
  t.equal(err.trim(), 'reference-agent: AGENT_TOKEN_SHA256: must be a lowercase hex SHA-256 (64 characters)');
});

t.test('classify: a 401 is a stale endpoint in both protocols, whatever the body', async (t) => {
  const zc = classify(401, {}, '{"error":"Unauthorized — pair first via POST /pair, then send Authorization: Bearer <token>"}', 'zeroclaw');
  t.same(zc, { kind: 'stale-endpoint', status: 401, reason: STALE_ENDPOINT_REASONS.bearer });
  t.same(classify(401, {}, '', 'telegram'), { kind: 'stale-endpoint', status: 401, reason: STALE_ENDPOINT_REASONS.webhookSecret });
  t.match(classify(403, {}, 'no', 'zeroclaw'), { kind: 'rejected', status: 403 }, 'other 4xx keep their meaning');
  t.match(classify(413, {}, '', 'zeroclaw'), { kind: 'refused', error: 'too_large' });
});
