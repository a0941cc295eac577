/**
 * ztm takes bot tokens without the command line (stdin, --bot-token-file, --bot-token-env), both
 * against Redis and in kubectl mode, where the token rides the exec's stdin. Real ztm processes
 * against a real platform; "not in argv" is checked on /proc/<pid>/cmdline of whichever process
 * is connected to the platform's Redis (and, in kubectl mode, of the kubectl stand-in).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { main } from '../cli/main.js';
import { deriveWebhookSecret } from '../lib/webhook-secret.js';
import { ROOT, spawnZtm, startTestPlatform, type TestPlatform, type ZtmResult } from './support/platform.js';
import { fakeKubectl, type FakeKubectl } from './support/fake-kubectl.js';
import { watchRedisTalkers } from './support/redis-talkers.js';

const PUBLIC_URL = 'https://bots.example.test';
const WARNING = 'ztm: warning: a bot token on the command line is visible in ps and shell history; use --bot-token - (stdin), --bot-token-file <path> or --bot-token-env ($ZTM_BOT_TOKEN)';

let p: TestPlatform;
let kubectl: FakeKubectl;
let scratch: string;
let botId = 700_000_000;

/** A fresh token the emulator knows; its secret part is what must never show. */
function newBot(): { token: string; secret: string } {
  const secret = `AA${randomBytes(26).toString('base64url').slice(0, 33)}`;
  const token = `${++botId}:${secret}`;
  p.emulator.addBot(token);
  return { token, secret };
}

function tokenFile(token: string): string {
  const file = path.join(scratch, `token-${randomBytes(4).toString('hex')}`);
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return file;
}

interface Watched extends ZtmResult {
  /** argv of every process that talked to the platform's Redis during the run. */
  talkers: string[][];
}

/** The real ztm as a child process; stderr without its final newline, so one line compares equal. */
async function ztm(argv: string[], env: Record<string, string>, input?: string): Promise<ZtmResult> {
  const r = await spawnZtm(argv, env, input);
  return { ...r, stderr: r.stderr.replace(/\n$/, '') };
}

/** Runs the real ztm while sampling who talks to Redis; setWebhook is held so ztm stays connected. */
async function ztmWatched(argv: string[], env: Record<string, string>, input?: string): Promise<Watched> {
  p.emulator.delayNext('setWebhook', 1000);
  const watch = watchRedisTalkers(p.redis.url);
  const r = await ztm(argv, env, input);
  return { ...r, talkers: [...(await watch.stop()).values()] };
}

type Form = (token: string) => { argv: string[]; env?: Record<string, string>; input?: string };
/** The ways to give a token that keep it out of argv. */
const SAFER_FORMS: ReadonlyArray<readonly [string, Form]> = [
  ['stdin', (token) => ({ argv: ['--bot-token', '-'], input: `${token}\n` })],
  ['file', (token) => ({ argv: ['--bot-token-file', tokenFile(token)] })],
  ['env', (token) => ({ argv: ['--bot-token-env'], env: { ZTM_BOT_TOKEN: token } })],
];

const redisEnv = (): Record<string, string> => ({ ZTM_REDIS_URL: p.redis.url });

/** The tenant holds `token`, and its webhook for that bot points at us with the derived secret. */
async function assertTenantToken(t: Test, id: string, token: string): Promise<void> {
  t.equal((await p.clients.registry.get(id))?.bot_token, token, `${id} holds the token`);
  const hook = p.emulator.webhookOf(token);
  t.equal(hook?.url, `${PUBLIC_URL}/tg/${id}`, `${id}: webhook registered for this bot`);
  t.equal(hook?.secret_token, deriveWebhookSecret(p.webhookSecret, await p.clients.registry.require(id)));
}

/** Someone talked to the platform, it was ztm running this command, and the secret is not in its argv. */
function assertTalkersClean(t: Test, talkers: string[][], words: string[], secret: string): void {
  const ztms = talkers.filter((a) => a.some((x) => x.endsWith('cli/ztm.js')));
  t.ok(ztms.length >= 1, `a ztm process was seen talking to Redis (saw ${JSON.stringify(talkers)})`);
  for (const a of ztms) for (const w of words) t.ok(a.includes(w), `its argv has ${w}`);
  for (const a of talkers) t.notOk(a.join(' ').includes(secret), `no token in the argv of ${a.slice(1, 4).join(' ')}`);
}

t.before(async () => {
  p = await startTestPlatform({ env: { ROUTER_PUBLIC_URL: PUBLIC_URL } });
  kubectl = fakeKubectl(p.redis.url);
  scratch = mkdtempSync(path.join(os.tmpdir(), 'ztm-token-'));
});
t.teardown(async () => {
  kubectl.close();
  rmSync(scratch, { recursive: true, force: true });
  await p.close();
});

t.test('against Redis: each safer form creates the tenant, warns not, keeps the token out of argv', async (t) => {
  for (const [name, form] of SAFER_FORMS) {
    const { token, secret } = newBot();
    const id = `r-${name}`;
    const f = form(token);
    const r = await ztmWatched(['tenant', 'create', id, ...f.argv], { ...redisEnv(), ...f.env }, f.input);
    t.equal(r.code, 0, `${name}: ${r.stderr}`);
    t.equal(r.stderr, '', `${name}: no warning`);
    t.notOk(r.stdout.includes(secret), `${name}: the output redacts the token`);
    await assertTenantToken(t, id, token);
    assertTalkersClean(t, r.talkers, ['create', id], secret);
  }
});

t.test('against Redis: each safer form updates the token', async (t) => {
  const first = newBot();
  t.equal((await ztm(['tenant', 'create', 'r-upd', '--bot-token-file', tokenFile(first.token)], redisEnv())).code, 0);
  for (const [name, form] of SAFER_FORMS) {
    const { token, secret } = newBot();
    const f = form(token);
    const r = await ztmWatched(['tenant', 'update', 'r-upd', ...f.argv], { ...redisEnv(), ...f.env }, f.input);
    t.equal(r.code, 0, `${name}: ${r.stderr}`);
    t.equal(r.stderr, '', `${name}: no warning`);
    await assertTenantToken(t, 'r-upd', token);
    assertTalkersClean(t, r.talkers, ['update', 'r-upd'], secret);
  }
});

t.test('against Redis: the runbook\'s positional forms still work, with the warning (and the token is in argv)', async (t) => {
  const a = newBot();
  const c = await ztmWatched(['tenant', 'create', 'r-pos', a.token, '--idle-timeout', '600'], redisEnv());
  t.equal(c.code, 0, c.stderr);
  t.equal(c.stderr, WARNING, 'exactly the one-line warning');
  await assertTenantToken(t, 'r-pos', a.token);
  t.equal((await p.clients.registry.get('r-pos'))?.idle_timeout_s, 600);
  // The positive control: the watcher does see a token that is in argv.
  t.ok(c.talkers.some((argv) => argv.includes(a.token)), 'the sampled argv shows the positional token');
  const b = newBot();
  const u = await ztmWatched(['tenant', 'update', 'r-pos', '--bot-token', b.token], redisEnv());
  t.equal(u.code, 0, u.stderr);
  t.equal(u.stderr, WARNING);
  await assertTenantToken(t, 'r-pos', b.token);
  const j = await ztm(['tenant', 'update', 'r-pos', '--idle-timeout', '900', '--json'], redisEnv());
  t.equal(j.stderr, '', 'no token given: no warning');
});

t.test('kubectl mode: the token rides the exec\'s stdin, never kubectl\'s argv or environment', async (t) => {
  const positional: Form = (token) => ({ argv: [token] });
  for (const [name, form] of [...SAFER_FORMS, ['positional', positional] as const]) {
    const { token, secret } = newBot();
    const id = `k-${name}`;
    const f = form(token);
    kubectl.reset();
    const r = await ztmWatched(['tenant', 'create', id, ...f.argv, '--idle-timeout', '120', '--json'], { ...kubectl.env, ...f.env }, f.input);
    t.equal(r.code, 0, `${name}: ${r.stderr}`);
    t.equal(r.stderr, name === 'positional' ? JSON.stringify({ warning: { code: 'W_TOKEN_IN_ARGV', message: WARNING.replace('ztm: warning: ', '') } }) : '', `${name}: warned only for the positional form`);
    t.equal((JSON.parse(r.stdout) as { tenant: { tenant_id: string } }).tenant.tenant_id, id, `${name}: the in-cluster ztm's answer came back`);
    await assertTenantToken(t, id, token);
    t.equal((await p.clients.registry.get(id))?.idle_timeout_s, 120, 'other options survive the rewrite');
    const execs = kubectl.execs();
    t.equal(execs.length, 1, `${name}: one kubectl exec`);
    const exec = execs[0]!;
    t.same(exec.argv, ['--context', 'stand-in', '-n', 'tenants', 'exec', '-i', 'deployment/janitor', '--', 'ztm', 'tenant', 'create', id, '--bot-token', '-', '--idle-timeout', '120', '--json'], `${name}: kubectl's /proc cmdline`);
    t.equal(exec.stdin, `${token}\n`, `${name}: the token is on the exec's stdin`);
    t.notOk(exec.environ.some((e) => e.includes(secret)), `${name}: not in kubectl's environment`);
    // In the cluster, the process that talks to Redis is the pod's ztm: no token in its argv either.
    assertTalkersClean(t, r.talkers, ['create', id, '-'], secret);
  }
});

t.test('kubectl mode: update, and a failure in the cluster passes through', async (t) => {
  const { token, secret } = newBot();
  kubectl.reset();
  const created = await ztm(['tenant', 'create', 'k-upd', '--bot-token', '-'], kubectl.env, `${token}\n`);
  t.equal(created.code, 0, created.stderr);
  const next = newBot();
  kubectl.reset();
  const u = await ztmWatched(['tenant', 'update', 'k-upd', '--bot-token', next.token, '--timeout', '30'], kubectl.env);
  t.equal(u.code, 0, u.stderr);
  t.equal(u.stderr, WARNING, 'the local ztm warns: its own argv had the token');
  await assertTenantToken(t, 'k-upd', next.token);
  const [exec] = kubectl.execs();
  t.same(exec?.argv.slice(8), ['ztm', 'tenant', 'update', 'k-upd', '--bot-token', '-', '--timeout', '30']);
  t.equal(exec?.stdin, `${next.token}\n`);
  assertTalkersClean(t, u.talkers, ['update', 'k-upd'], next.secret);
  kubectl.reset();
  const dup = await ztm(['tenant', 'create', 'k-upd', '--bot-token-env'], { ...kubectl.env, ZTM_BOT_TOKEN: token });
  t.equal(dup.code, 1, 'the in-cluster exit code');
  t.equal(dup.stderr, 'ztm: tenant k-upd already exists');
  t.notOk(dup.stderr.includes(secret));
});

t.test('kubectl mode: a token of the wrong shape is refused locally, nothing is exec\'d', async (t) => {
  kubectl.reset();
  const bad = '123456789:short!';
  const r = await ztm(['tenant', 'create', 'k-bad', '--bot-token', '-'], kubectl.env, `${bad}\n`);
  t.equal(r.code, 2);
  t.equal(r.stderr, 'ztm: invalid bot token: expected Telegram\'s <digits>:<30-60 chars of A-Z a-z 0-9 _ -> as given by @BotFather (read from stdin)');
  t.notOk(r.stderr.includes('short'), 'the value is not echoed');
  t.same(kubectl.execs(), [], 'kubectl never ran exec');
});

t.test('errors: one line, exit 2, the value never echoed, nothing enqueued', async (t) => {
  const near = `123456789:${'x'.repeat(25)}`; // token-like but too short: still a secret
  const big = path.join(scratch, 'big');
  writeFileSync(big, 'x'.repeat(5000));
  const wrapped = tokenFile(`TOKEN=${near}`);
  const cases: Array<{ argv: string[]; env?: Record<string, string>; stdin?: string; error: RegExp }> = [
    { argv: ['tenant', 'create', 'e-a', '--bot-token', '-'], stdin: '', error: /^ztm: --bot-token -: stdin is empty, expected the bot token$/ },
    { argv: ['tenant', 'create', 'e-a', '--bot-token', '-'], stdin: `${near}\n`, error: /^ztm: invalid bot token: .* \(read from stdin\)$/ },
    { argv: ['tenant', 'create', 'e-a', '--bot-token', '-'], stdin: 'y'.repeat(5000), error: /more than 4096 bytes on stdin/ },
    { argv: ['tenant', 'create', 'e-a', '--bot-token-file', path.join(scratch, 'nope')], error: /^ztm: cannot read bot token file ".*nope": no such file$/ },
    { argv: ['tenant', 'create', 'e-a', '--bot-token-file', scratch], error: /cannot read bot token file .*: is a directory$/ },
    { argv: ['tenant', 'create', 'e-a', '--bot-token-file', near], error: /^ztm: cannot read bot token file \(a path that looks like a bot token\): no such file$/ },
    { argv: ['tenant', 'create', 'e-a', '--bot-token-file', wrapped], error: /^ztm: invalid bot token: .* \(read from bot token file ".*"\)$/ },
    { argv: ['tenant', 'create', 'e-a', '--bot-token-file', big], error: /larger than 4096 bytes: not a bot token/ },
    { argv: ['tenant', 'create', 'e-a', '--bot-token-env'], error: /^ztm: --bot-token-env: ZTM_BOT_TOKEN is not set$/ },
    { argv: ['tenant', 'create', 'e-a', '--bot-token-env'], env: { ZTM_BOT_TOKEN: near }, error: /^ztm: invalid bot token: .* \(read from ZTM_BOT_TOKEN\)$/ },
    { argv: ['tenant', 'create', 'e-a', near], error: /^ztm: invalid bot token: / },
    { argv: ['tenant', 'update', 'e-a', '--bot-token', near], error: /^ztm: invalid bot token: / },
    { argv: ['tenant', 'create', 'e-a', near, '--bot-token-env'], error: /^ztm: give the bot token one way, not <bot_token> and --bot-token-env$/ },
    { argv: ['tenant', 'update', 'e-a', '--bot-token', '-', '--bot-token-file', big], error: /one way, not --bot-token - and --bot-token-file$/ },
    { argv: ['tenant', 'create', 'e-a'], error: /^ztm: no bot token: give it with --bot-token - \(stdin\), --bot-token-file <path> or --bot-token-env/ },
    { argv: ['tenant', 'update', 'e-a'], error: /^ztm: nothing to update/ },
  ];
  const before = await p.clients.bull.keys('ztm:{admin}:*');
  for (const c of cases) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(c.argv, { ...redisEnv(), ...c.env }, { out: (l) => out.push(l), err: (l) => err.push(l), stdin: Readable.from([Buffer.from(c.stdin ?? '')]) });
    const label = `${c.argv.slice(3).join(' ').slice(0, 60)}${c.stdin === undefined ? '' : ' <stdin>'}`;
    t.equal(code, 2, `${label}: exit 2`);
    t.equal(err.length, 1, `${label}: one line`);
    t.match(err[0] ?? '', c.error, label);
    t.notOk((err[0] ?? '').includes('xxxxxxxxxx'), `${label}: the value is not echoed`);
    t.same(out, [], `${label}: nothing on stdout`);
  }
  t.same(await p.clients.bull.keys('ztm:{admin}:*'), before, 'no admin job was enqueued');
});

const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;
t.test('a terminal on stdin: a prompt, nothing echoed, the token read', { skip: hasScript ? false : 'no util-linux script on this host' }, async (t) => {
  const { token, secret } = newBot();
  const shell = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, path.join(ROOT, 'cli/ztm.js'), 'tenant', 'create', 'tty-a', '--bot-token', '-'].map(shell).join(' ');
  // util-linux `script` gives ztm a pseudo-terminal; its output is everything the terminal showed.
  const child = spawn('script', ['-qec', command, '/dev/null'], { env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir(), ...redisEnv() } });
  let screen = '';
  child.stdout.on('data', (d: Buffer) => {
    screen += d.toString();
    // Typed only once the prompt is up, as a person would: before raw mode the terminal would echo.
    if (screen.includes('(not echoed): ') && !child.stdin.writableEnded) child.stdin.end(`${token}\r`);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  t.equal(code, 0, screen);
  t.match(screen, /^bot token for tty-a \(not echoed\): /);
  t.notOk(screen.includes(secret), 'the terminal never showed the token');
  await assertTenantToken(t, 'tty-a', token);
});
