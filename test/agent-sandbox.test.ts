/**
 * The local agent sandbox (AGENT_SANDBOX, agent/agent-sandbox.ts) under `npm start` as a new user
 * runs it, with a hostile agent (test/support/sandbox-probe-agent.mjs, AGENT_PROFILE=custom) for
 * two tenants: sandboxed, it sees no shim (nor its environ), nothing of DATA_DIR but its own
 * workspace (secrets.json, platform.json, the Redis password file, the registry's and the S3
 * store's files, the other tenant's notes), nothing of the host's /tmp; it writes its workspace,
 * its notes survive a sleep and a wake, and it dies with its shim. With AGENT_SANDBOX=off the same
 * probe finds those things (so the first case can fail).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { freePort } from '../lib/util/free-port.js';
import { ROOT, spawnZtm } from './support/platform.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { ServiceSet } from './support/services.js';
import { processAlive as alive, waitUntil } from './support/wait.js';

const TOKENS = { alice: '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1', bob: '987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw2' };
const AGENT = path.join(ROOT, 'test/support/sandbox-probe-agent.mjs');

interface Probe {
  uid: number;
  cwd: string;
  procs: Array<{ pid: number; cmdline: string; environ_readable: boolean; pool_secret: boolean }>;
  files: Record<string, { readable: boolean; what?: string; code?: string }>;
  wrote_workspace: boolean;
}

/** Every file under `dir` whose content includes `needle` (the other tenant's notes, wherever its workspace is). */
function filesHolding(dir: string, needle: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && e.name === 'notes.txt' && readFileSync(p, 'utf8').includes(needle)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

interface Run {
  dataDir: string;
  hostFile: string;
  redis: TestRedis;
  client: Redis;
  ztm: (argv: string[]) => ReturnType<typeof spawnZtm>;
  platform: ReturnType<ServiceSet['add']>;
  probe: (tenant: string) => Promise<Probe>;
  /** What the agent was asked to read: DATA_DIR's secrets and stores, the other tenant's notes, the host's /tmp file. */
  targets: () => string[];
}

async function startRun(t: Test, sandbox: 'auto' | 'off'): Promise<Run> {
  const redis = await startRedis();
  const client = new Redis(redis.url);
  const base = mkdtempSync(path.join(os.tmpdir(), 'ztm-sandbox-'));
  const dataDir = path.join(base, 'data');
  const hostFile = path.join(os.tmpdir(), `ztm-sandbox-host-file-${path.basename(base)}`);
  writeFileSync(hostFile, 'a file of the host\'s /tmp');
  // Where the Redis npm start runs itself keeps its password (this run is given the test's Redis).
  mkdirSync(path.join(dataDir, 'redis'), { recursive: true, mode: 0o700 });
  writeFileSync(path.join(dataDir, 'redis', 'password'), 'not-for-agents\n', { mode: 0o600 });
  const services = new ServiceSet([dataDir]);
  t.teardown(async () => {
    await services.close();
    client.disconnect();
    await redis.close();
    rmSync(base, { recursive: true, force: true });
    rmSync(hostFile, { force: true });
  });
  const files: string[] = [];
  const targets = (): string[] => [
    path.join(dataDir, 'secrets.json'), path.join(dataDir, 'platform.json'), path.join(dataDir, 'redis', 'password'),
    path.join(dataDir, 'dynamodb'), path.join(dataDir, 's3'), hostFile, ...files,
  ];
  // The targets ride in base64url: a path in AGENT_COMMAND is one the operator gave the agent.
  const bobNotes = path.join(dataDir, 'tenants', 'bob', 'workspace', 'memory', 'notes.txt');
  files.push(bobNotes);
  const arg = Buffer.from(JSON.stringify({ files: targets() })).toString('base64url');
  const platform = services.add({
    name: 'platform',
    entry: 'services/platform/main.ts',
    env: {
      DATA_DIR: dataDir, REDIS_URL: redis.url, TELEGRAM_API_BASE: 'sandbox', TELEGRAM_SANDBOX_PORT: '0',
      INGRESS_PORT: String(await freePort()), WARM_POOL_TARGET: '1', LOG_LEVEL: 'info', AGENT_SANDBOX: sandbox,
      AGENT_PROFILE: 'custom', AGENT_COMMAND: `exec node ${AGENT} ${arg}`, AGENT_STATE_PATHS: 'memory/',
    },
    readyMsg: 'platform started',
    keep: ['platform started', 'agent started'],
  });
  await platform.start(60_000);
  const ztm = (argv: string[]) => spawnZtm(argv, { DATA_DIR: dataDir }, undefined, 90_000);
  for (const id of ['alice', 'bob'] as const) t.equal((await ztm(['tenant', 'create', id, TOKENS[id]])).code, 0);
  // bob's notes exist before alice looks (bob cold or warm: its workspace is found where it is).
  const bob = await ztm(['chat', 'bob', '--message', 'bob-private-note']);
  t.equal(bob.code, 0, bob.stderr);
  files.splice(0, files.length, ...filesHolding(dataDir, 'bob-private-note'));
  t.ok(files.length >= 1, `bob's notes are on the host (${files.join(', ')})`);
  const probe = async (tenant: string): Promise<Probe> => {
    const address = await client.get(`router:endpoint:${tenant}`);
    if (!address) throw new Error(`${tenant} has no endpoint`);
    // Every target, those found after the start too (bob's notes in the warm workspace he was claimed in).
    const res = await request(`http://${address}/probe?files=${Buffer.from(JSON.stringify(targets())).toString('base64url')}`);
    return (await res.body.json()) as Probe;
  };
  return { dataDir, hostFile, redis, client, ztm, platform, probe, targets };
}

t.test('sandboxed: the agent sees no shim, nothing of DATA_DIR but its workspace, nothing of the host\'s /tmp', async (t) => {
  const run = await startRun(t, 'auto');
  const started = run.platform.find('platform started')[0];
  t.match(String(started?.isolation), /^agents sandboxed \(pid, mount, ipc namespaces; uid 65534; network shared with the host\)$/, 'npm start says so');
  const status = await run.ztm(['status']);
  t.equal(status.code, 0, status.stderr);
  t.match(status.stdout, /isolation\s+agents sandboxed \(pid, mount, ipc namespaces/, 'ztm status shows the same line');

  const first = await run.ztm(['chat', 'alice', '--message', 'one']);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /notes: 1/);
  const seen = await run.probe('alice');
  t.equal(seen.uid, 65534, 'the agent runs as the unprivileged uid');
  t.ok(seen.wrote_workspace, 'it writes its own workspace');
  t.notOk(seen.procs.some((p) => p.cmdline.includes('shim.ts')), `no shim among the processes it sees (${seen.procs.map((p) => `${p.pid}:${p.cmdline.slice(0, 40)}`).join('; ')})`);
  t.notOk(seen.procs.some((p) => p.pool_secret), 'no environ with a shim secret readable');
  t.ok(seen.procs.every((p) => p.pid < 100), 'its /proc is its own pid namespace');
  for (const file of run.targets()) {
    t.ok(existsSync(file), `${path.relative(run.dataDir, file) || file} exists on the host`);
    t.ok(seen.files[file], `${file} was probed`);
    t.notOk(seen.files[file]?.readable, `the agent cannot read ${file} (${seen.files[file]?.code})`);
  }

  // Sleep and wake: the notes are the tenant's state (restored as root, handed to the agent's uid).
  t.equal((await run.ztm(['tenant', 'sleep', 'alice'])).code, 0);
  const second = await run.ztm(['chat', 'alice', '--message', 'two']);
  t.equal(second.code, 0, second.stderr);
  t.match(second.stdout, /notes: 2/, 'the notes survived the sleep and the wake');
  t.ok((await run.probe('alice')).wrote_workspace, 'the restored workspace is the agent\'s to write');

  // Its shim SIGKILLed: the agent (inside its namespace) is gone with it.
  const address = (await run.client.get('router:endpoint:alice')) as string;
  const listener = Number(/pid=(\d+)/.exec(execFileSync('ss', ['-ltnpH', `src ${address}`]).toString())?.[1]);
  t.ok(listener > 1 && alive(listener), `the agent process listens (${listener})`);
  const shimPid = Number(readFileSync(path.join(run.dataDir, 'tenants', 'alice', 'shim.pid'), 'utf8'));
  process.kill(shimPid, 'SIGKILL');
  await waitUntil('the agent gone with its shim', () => !alive(listener), 20_000);
  t.pass('the agent did not outlive its shim');
});

t.test('AGENT_SANDBOX=off: the same probe finds the shim\'s secret, DATA_DIR and the host\'s /tmp', async (t) => {
  const run = await startRun(t, 'off');
  t.match(String(run.platform.find('platform started')[0]?.isolation), /^agents are NOT sandboxed: AGENT_SANDBOX=off/);
  t.match((await run.ztm(['status'])).stdout, /isolation\s+agents are NOT sandboxed/);
  t.equal((await run.ztm(['chat', 'alice', '--message', 'one'])).code, 0);
  const seen = await run.probe('alice');
  t.ok(seen.procs.some((p) => p.cmdline.includes('shim.ts')), 'the shims are in its /proc');
  t.ok(seen.procs.some((p) => p.pool_secret), 'a shim\'s environ with its secret is readable');
  for (const file of [path.join(run.dataDir, 'secrets.json'), run.hostFile, ...run.targets().filter((f) => f.endsWith('notes.txt'))]) {
    t.ok(seen.files[file]?.readable, `the agent reads ${file}`);
  }
});

t.test('not root: the sandbox is a user namespace, the capabilities gone before the agent starts', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-sandbox-userns-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, 'workspace', '.shim'), { recursive: true });
  writeFileSync(path.join(dir, 'workspace', '.shim', 'keep'), 'the shim\'s scratch');
  writeFileSync(path.join(dir, 'secret'), 'DATA_DIR stand-in');
  execFileSync('chown', ['-R', '65534:65534', dir]);
  // env -i: nothing of the test runner's (its NODE_OPTIONS hooks write under the repository, which that user cannot).
  const out = execFileSync('env', ['-i', `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`, 'HOME=/tmp', 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--',
    process.execPath, '--import', 'tsx', path.join(ROOT, 'test/support/sandbox-run-main.ts'), JSON.stringify({ dir })], { cwd: ROOT, encoding: 'utf8' });
  const r = JSON.parse(out) as { probe: { ok: boolean; reason?: string }; status: number; stdout: string; stderr: string; unshare: string[] };
  t.same(r.probe, { ok: true }, 'the probe passes for an unprivileged user');
  t.same(r.unshare, ['--user', '--map-root-user'], 'through a user namespace');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^uid=0$/m, 'root of its user namespace only');
  t.match(r.stdout, /^secret=hidden$/m, 'the hidden directory is an empty tmpfs');
  t.match(r.stdout, /^workspace=written$/m);
  // The same user owns the workspace here: only the mount keeps the agent out of the shim's scratch.
  t.match(r.stdout, /^scratch=hidden$/m, 'the shim\'s scratch is an empty tmpfs to the agent');
  t.match(r.stdout, /^scratch=pinned$/m, 'and it cannot move it aside (to put a link in its place)');
  t.ok(existsSync(path.join(dir, 'workspace', '.shim', 'keep')) && !existsSync(path.join(dir, 'workspace', 'moved')), 'the real scratch untouched');
  t.match(r.stdout, /^host=read-only$/m, 'the host is read-only');
  t.match(r.stdout, /^CapEff:\s+0+$/m, 'no effective capabilities');
  t.match(r.stdout, /^CapBnd:\s+0+$/m, 'an empty bounding set');
  t.match(r.stdout, /^NoNewPrivs:\s+1$/m);
});

t.test('AGENT_SANDBOX=namespaces on a host that cannot: npm start refuses in one line', async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-sandbox-refused-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  // A PATH without util-linux: what a host without unshare looks like to the probe.
  const res = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'services/platform/main.ts')], {
    cwd: ROOT, encoding: 'utf8', timeout: 60_000,
    env: { PATH: dataDir, HOME: dataDir, DATA_DIR: dataDir, AGENT_SANDBOX: 'namespaces', REDIS_URL: 'redis://127.0.0.1:1', TELEGRAM_API_BASE: 'sandbox' },
  });
  t.equal(res.status, 2, 'a configuration error');
  t.same(res.stderr.trim().split('\n'), ['platform: configuration error: AGENT_SANDBOX: namespaces: this host cannot run a sandboxed agent (util-linux unshare not found)']);
});
