/**
 * The embedded default as a small real deployment (issue "trust boundary", item 4, the parts built
 * so far): `npm start`'s DATA_DIR and the files holding secrets are private to its user; the Redis
 * it starts requires a password that never appears on a command line; an agent never outlives the
 * platform (the platform SIGKILLed: every shim and agent is gone, the state saved); a warm member's
 * workspace is removed once its tenant slept.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { Redis } from 'ioredis';
import t from 'tap';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { startEmbeddedStores } from '../lib/platform/embedded-stores.js';
import { startEmbeddedS3 } from '../lib/state/embedded-s3.js';
import { freePort } from '../lib/util/free-port.js';
import { spawnZtm } from './support/platform.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { ServiceSet } from './support/services.js';
import { processAlive as alive, waitUntil } from './support/wait.js';

const TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const mode = (file: string): number => statSync(file).mode & 0o777;
/** Every pid recorded in DATA_DIR/**\/agent.pid (the agents the local runtime started). */
function agentPids(dataDir: string): number[] {
  const pids: number[] = [];
  for (const kind of ['tenants', 'warm']) {
    const dir = path.join(dataDir, kind);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      const file = path.join(dir, name, 'agent.pid');
      if (existsSync(file)) pids.push(Number(readFileSync(file, 'utf8')));
    }
  }
  return pids.filter((p) => Number.isInteger(p) && p > 1);
}

t.test('the Redis the platform starts requires a password kept in a 0600 file, never on a command line', async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-iso-redis-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const port = await freePort();
  const config = { ...loadConfig({ DATA_DIR: dataDir }), redisUrl: `redis://127.0.0.1:${port}` };
  const stores = await startEmbeddedStores(config, createLogger({ service: 'test', level: 'silent' }));
  t.teardown(() => stores.close());
  const passwordFile = path.join(dataDir, 'redis', 'password');
  t.equal(mode(passwordFile), 0o600);
  const password = readFileSync(passwordFile, 'utf8').trim();
  t.match(stores.redisUrl, new RegExp(`^redis://:${password}@127\\.0\\.0\\.1:${port}$`), 'the URL the platform uses carries it');

  // A raw connection, as an agent on this host would open one.
  const refused = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('GET x\r\n'));
    socket.once('data', (d) => {
      resolve(d.toString());
      socket.destroy();
    });
    socket.once('error', reject);
  });
  t.match(refused, /^-NOAUTH/, 'no command without the password');
  const client = new Redis(stores.redisUrl);
  t.equal(await client.ping(), 'PONG');
  client.disconnect();

  const cmdlines = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  t.notMatch(cmdlines, password, 'the password is in no process\'s arguments');
});

t.test('a Redis already answering without a password (the machine\'s own) is used as it is', async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-iso-theirs-'));
  const theirs = await startRedis();
  t.teardown(async () => {
    await theirs.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const config = { ...loadConfig({ DATA_DIR: dataDir }), redisUrl: theirs.url };
  const stores = await startEmbeddedStores(config, createLogger({ service: 'test', level: 'silent' }));
  t.teardown(() => stores.close());
  t.equal(stores.redisUrl, theirs.url, 'no password of ours added to a Redis that needs none');
});

t.test('npm start: DATA_DIR 0700, its secrets 0600; SIGKILLed, it leaves no shim or agent behind and the state is saved', async (t) => {
  let redis: TestRedis | undefined = await startRedis();
  // The state store outside the platform's process, as in production: the shims' final
  // checkpoints must land after the platform died (an embedded s3rver dies with it).
  const s3 = await startEmbeddedS3({ port: await freePort() });
  const dataDir = path.join(mkdtempSync(path.join(os.tmpdir(), 'ztm-iso-')), 'data');
  const services = new ServiceSet([dataDir]);
  t.teardown(async () => {
    await services.close();
    await redis?.close();
    await s3.close();
    rmSync(path.dirname(dataDir), { recursive: true, force: true });
  });
  const env = {
    DATA_DIR: dataDir, REDIS_URL: redis.url, TELEGRAM_API_BASE: 'sandbox', TELEGRAM_SANDBOX_PORT: '0',
    INGRESS_PORT: String(await freePort()), WARM_POOL_TARGET: '1', LOG_LEVEL: 'info', S3_ENDPOINT: s3.endpoint,
  };
  const platform = services.add({ name: 'platform', entry: 'services/platform/main.ts', env, readyMsg: 'platform started' });
  await platform.start(60_000);
  t.equal(mode(dataDir), 0o700, 'DATA_DIR is private to the platform\'s user');
  t.equal(mode(path.join(dataDir, 'secrets.json')), 0o600);
  t.equal(mode(path.join(dataDir, 'platform.json')), 0o600, 'platform.json (the Redis URL with its password) too');

  const ztm = (argv: string[]) => spawnZtm(argv, { DATA_DIR: dataDir }, undefined, 90_000);
  t.equal((await ztm(['tenant', 'create', 'alice', TOKEN])).code, 0);
  const first = await ztm(['chat', 'alice', '--message', 'one']);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /memories: 1/);
  // The tenant was woken by claiming the warm member: its workspace lives under warm/<name>.
  const claimed = readdirSync(path.join(dataDir, 'warm'));
  t.ok(claimed.length >= 1, 'a warm member exists');

  const pids = agentPids(dataDir);
  t.ok(pids.length >= 1 && pids.every(alive), `agents running (${pids.join(', ')})`);
  process.kill(platform.pid as number, 'SIGKILL'); // the process alone, as an OOM kill would
  await waitUntil('every agent gone', () => pids.every((p) => !alive(p)), 20_000);
  t.pass('the agents died with the platform (no orphan holding a port or a workspace)');

  // The shims saved alice's state on the way out: a new platform continues her memory.
  await waitUntil('the shims exited', () => !readdirSync(path.join(dataDir, 'warm')).some((n) => existsSync(path.join(dataDir, 'warm', n, 'shim.pid'))), 20_000).catch(() => undefined);
  await platform.start(60_000);
  const again = await ztm(['chat', 'alice', '--message', 'two']);
  t.equal(again.code, 0, again.stderr);
  t.match(again.stdout, /memories: 2/, 'the memory survived the crash of the platform');

  // Now the platform and its shims at once (the process group: what a supervisor's kill -9 or an
  // OOM of the cgroup does): nothing is left to stop the agents, yet none may live on.
  const pids2 = agentPids(dataDir).filter(alive);
  t.ok(pids2.length >= 1, `agents running again (${pids2.join(', ')})`);
  process.kill(-(platform.pid as number), 'SIGKILL');
  await waitUntil('every agent gone after its shim was killed', () => pids2.every((p) => !alive(p)), 20_000);
  t.pass('an agent never outlives its shim');
  await platform.start(60_000);

  // The group kill left the shim no time to save: that warm workspace is the only copy and is kept.
  const third = await ztm(['chat', 'alice', '--message', 'three']);
  t.equal(third.code, 0, third.stderr);
  const pod = (JSON.parse((await ztm(['tenant', 'get', 'alice', '--json'])).stdout) as { pod_name: string }).pod_name;
  t.match(pod, /^warm-pool-[0-9a-f]{16}$/, 'served by a warm member with an unguessable name');
  const slept = await ztm(['tenant', 'sleep', 'alice']);
  t.equal(slept.code, 0, slept.stderr);
  await waitUntil('the claimed member\'s workspace removed', () => !existsSync(path.join(dataDir, 'warm', pod)), 20_000);
  t.pass('once the tenant slept (state saved), the workspace it used is gone');
});
