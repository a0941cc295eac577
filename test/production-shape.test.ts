/**
 * The production shape (issue 12 item 2): ingress, forwarder, waker, janitor and pool-keeper each
 * their own OS process, started as the chart's Deployments start them: the image's entrypoint
 * (docker-entrypoint.sh <service> → node dist/services/<service>/main.js, compiled JavaScript) with
 * the env `helm template` renders for each Deployment (test/support/service-processes.ts), on
 * RUNTIME=kubernetes against the API stand-in and its simulated kubelet (tenant pods: the real shim
 * and the reference agent as processes), Redis, dynalite, s3rver and the Telegram emulator on free
 * ports. Nothing of the platform runs in this process: tenants are created and inspected with the
 * real `ztm` (a child process) against Redis, updates come through the ingress's HTTP.
 *
 * Run through: the delivery scenario (several tenants and chats, one update in flight per chat as
 * Telegram sends: every update answered, in order per chat, stored once by its agent), idle stop and
 * wake with state (a warm pool member claimed first), `ztm status` (every queue's workers are the
 * separate services), `ztm dead list` / `ztm dead retry` (the standalone janitor answers), a
 * forwarder SIGTERMed and restarted mid-traffic (nothing acknowledged lost, nothing twice), and
 * SIGTERM of every service (exit 0 within the Deployment's terminationGracePeriodSeconds). Then once
 * more on a real Redis Cluster (REDIS_CLUSTER=true from the chart's values, one node's address)
 * with the master holding the mailboxes SIGKILLed mid-run: no acknowledged update lost.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import { POD_OWNER_SECRET_TYPE } from '../lib/runtime/pod-owner.js';
import { loadConfig } from '../lib/config.js';
import { createClients, type PlatformClients } from '../lib/platform/clients.js';
import { deriveWebhookSecret } from '../lib/webhook-secret.js';
import { endpointKey } from '../lib/keys.js';
import { startEmbeddedS3 } from '../lib/state/embedded-s3.js';
import { STARTING_UP_TEXT } from '../services/forwarder/drainer.js';
import { startRedis } from './support/redis.js';
import { startRedisCluster, type TestRedisCluster } from './support/redis-cluster.js';
import { startDynamo } from './support/dynamo.js';
import { TelegramEmulator } from './support/telegram-emulator.js';
import { KubeApiServer } from './support/kube/api-server.js';
import { Kubelet } from './support/kube/kubelet.js';
import { spawnZtm, type ZtmResult } from './support/platform.js';
import { buildImageDir, releaseFromChart, PLATFORM_SERVICES, ServiceProcesses, type PlatformService } from './support/service-processes.js';
import { sleep, waitUntil } from './support/wait.js';

t.setTimeout(480_000); // the whole production shape twice (stand-in, then a Redis Cluster): beyond tap's 180 s per file
const NAMESPACE = 'shape';
const CLUSTER_NAMESPACE = 'shape-cluster';
const STARTED = ['ingress', 'forwarder', 'waker', 'janitor', 'pool-keeper', 'dashboard'] as const satisfies readonly PlatformService[];
const tokenFor = (n: number): string => `44444${String(n).padStart(4, '0')}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsa${n}`;

// The Redis Cluster starts beside the rest (it is used last): its six servers idle until then.
const clusterStarting = startRedisCluster();
clusterStarting.catch(() => undefined); // awaited by the cluster test; a failure is reported there
const [redis, dynamo, s3, emulator, api, image] = await Promise.all([
  startRedis(), startDynamo(), startEmbeddedS3({}), TelegramEmulator.start(),
  KubeApiServer.start({ namespaces: [`${NAMESPACE}-agents`, `${CLUSTER_NAMESPACE}-agents`] }), buildImageDir(),
]).catch(async (err: unknown) => {
  await (await clusterStarting.catch(() => undefined))?.stop(); // no redis-server left behind
  throw err;
});
const kubelet = new Kubelet(api);
const work = mkdtempSync(path.join(os.tmpdir(), 'ztm-shape-'));
const kubeconfig = api.writeKubeconfig(path.join(work, 'kubeconfig'));
const releases: Release[] = [];
let nextUpdateId = 70_000;

t.teardown(async () => {
  for (const r of releases) await r.close();
  await kubelet.close();
  await api.close();
  await (await clusterStarting.catch(() => undefined))?.stop();
  await emulator.close();
  await s3.close();
  await dynamo.close();
  await redis.close();
  image.close();
  rmSync(work, { recursive: true, force: true });
});

interface Release {
  sp: ServiceProcesses;
  /** The test's own clients (an operator's view), from the janitor's rendered env. */
  clients: PlatformClients;
  webhookSecret: string;
  redisUrl: string;
  ztm(argv: string[], env?: Record<string, string>): Promise<ZtmResult>;
  close(): Promise<void>;
}

/** Renders the chart for this Redis, provisions the table and bucket as infrastructure would, starts the services. */
async function startRelease(namespace: string, redisUrl: string, redisCluster: boolean): Promise<Release> {
  const webhookSecret = randomBytes(24).toString('base64url');
  const { deployments, manifests } = await releaseFromChart({
    secrets: {
      webhookSecret, warmPoolSecret: randomBytes(24).toString('base64url'), redisUrl,
      dashboardUser: 'ops', dashboardPassword: randomBytes(12).toString('base64url'),
    },
    tenants: { warmPoolTarget: 1 },
    config: {
      redisCluster, telegramApiBase: emulator.url, routerPublicUrl: 'https://bots.example.test',
      dynamodbTable: `t-${randomBytes(4).toString('hex')}`, s3Bucket: `b-${randomBytes(4).toString('hex')}`,
      idleCheckIntervalS: 1, reconcileIntervalS: 2,
      // The chart sets no store endpoints (production: AWS); its documented hook for more env.
      extraEnv: { DYNAMODB_ENDPOINT: dynamo.endpoint, S3_ENDPOINT: s3.endpoint },
    },
    // Room for one update larger than the agent takes (its 413 is a dead letter at once).
    services: { ingress: { extraEnv: { INGRESS_BODY_LIMIT: 2 * 1024 * 1024 } } },
  }, namespace);
  // What helm applies besides the Deployments and the runtime reads: the pod owner Secret (K8S_POD_OWNER).
  for (const owner of manifests.filter((m) => m.kind === 'Secret' && m.type === POD_OWNER_SECRET_TYPE)) {
    await api.kubeConfig().makeApiClient(CoreV1Api).createNamespacedSecret({ namespace: owner.metadata.namespace as string, body: owner as V1Secret });
  }
  const janitorEnv = deployments.get('janitor')?.env as Record<string, string>;
  const clients = createClients(loadConfig(janitorEnv), { name: 'shape-test' });
  await clients.registry.ensureTable();
  await clients.state.ensureBucket();
  const sp = await ServiceProcesses.create({ deployments, image, kubeconfig, services: [...STARTED] });
  const cliDir = mkdtempSync(path.join(work, 'cli-'));
  const release: Release = {
    sp, clients, webhookSecret, redisUrl,
    ztm: (argv, env = {}) => spawnZtm(argv, { ZTM_REDIS_URL: redisUrl, DATA_DIR: cliDir, ...env }),
    async close() {
      await sp.close();
      await clients.close();
    },
  };
  releases.push(release);
  await sp.startAll(60_000);
  return release;
}

const message = (chatId: number, text: string, updateId = nextUpdateId++) => ({
  update_id: updateId,
  message: { message_id: updateId, date: Math.floor(Date.now() / 1000), chat: { id: chatId, type: 'private' }, from: { id: chatId, is_bot: false, first_name: 'u' }, text },
});

/** `You said: <text> (memories: N)`: the reference agent's answer. */
const ANSWER = /^You said: ([\s\S]*) \(memories: (\d+)\)$/;
const answersIn = (token: string, chat: number): Array<{ said: string; memories: number }> =>
  emulator.sentMessages(token).filter((m) => m.chat_id === chat && m.text !== STARTING_UP_TEXT).map((m) => {
    const a = ANSWER.exec(m.text);
    return a ? { said: a[1] as string, memories: Number(a[2]) } : { said: `<not an answer: ${m.text.slice(0, 40)}>`, memories: -1 };
  });

/** One POST to the ingress as Telegram makes it (the tenant's derived secret). */
async function post(r: Release, tenant: string, update: unknown): Promise<number> {
  const record = await r.clients.registry.get(tenant);
  const res = await request(`${r.sp.ingressUrl}/tg/${tenant}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': deriveWebhookSecret(r.webhookSecret, record ?? { tenant_id: tenant }) },
    body: JSON.stringify(update), headersTimeout: 10_000, bodyTimeout: 10_000,
  });
  await res.body.dump();
  return res.statusCode;
}

/** As Telegram delivers: a non-200 (or no answer) is retried, bounded (30 s), until the ingress takes it. */
async function deliver(r: Release, tenant: string, update: unknown): Promise<void> {
  for (let attempt = 0; attempt < 150; attempt++) {
    if ((await post(r, tenant, update).catch(() => 0)) === 200) return;
    await sleep(200);
  }
  throw new Error('the ingress never took the update (30 s)');
}

async function createTenant(r: Release, id: string, token: string, extra: string[] = []): Promise<void> {
  emulator.addBot(token);
  const created = await r.ztm(['tenant', 'create', id, '--bot-token-env', '--json', ...extra], { ZTM_BOT_TOKEN: token });
  if (created.code !== 0) throw new Error(`ztm tenant create ${id}: ${created.stderr.trim()}`);
}

interface Traffic {
  tenant: string;
  token: string;
  chats: number[];
}

/**
 * Each chat sends `perChat` updates, one in flight at a time (the next once the ingress said 200);
 * `during` runs once a third of them were acknowledged. Resolves when every acknowledged update is
 * answered (bounded). Returns what each chat sent.
 */
async function runTraffic(r: Release, traffic: Traffic[], perChat: number, label: string, during?: () => Promise<unknown>): Promise<Map<string, string[]>> {
  const sent = new Map<string, string[]>();
  const total = traffic.reduce((n, x) => n + x.chats.length * perChat, 0);
  let acked = 0;
  let fault: Promise<unknown> | undefined;
  const before = new Map<string, number>();
  for (const x of traffic) for (const c of x.chats) before.set(`${x.tenant}/${c}`, answersIn(x.token, c).length);
  await Promise.all(traffic.flatMap((x) => x.chats.map(async (chat) => {
    const texts = Array.from({ length: perChat }, (_, i) => `${label}-${x.tenant}-${chat}-${i}`);
    sent.set(`${x.tenant}/${chat}`, texts);
    for (const text of texts) {
      await deliver(r, x.tenant, message(chat, text));
      if (++acked >= total / 3 && during && !fault) fault = during();
    }
  })));
  await fault;
  await waitUntil(`every acknowledged update of ${label} answered`, () => traffic.every((x) => x.chats.every((c) => answersIn(x.token, c).length - (before.get(`${x.tenant}/${c}`) ?? 0) >= perChat)), 90_000);
  return sent;
}

/** Answers of a chat from `label` on. */
const answersOf = (x: Traffic, chat: number, label: string) => answersIn(x.token, chat).filter((a) => a.said.startsWith(`${label}-`));

/** On a failure: each service's warnings and errors, the lines that say why. */
function explainFailures(t: Test, r: Release): void {
  t.afterEach(async (st) => {
    if (st.passing()) return;
    for (const name of r.sp.names) {
      const lines = r.sp.get(name).kept.filter((l) => (l.level ?? 0) >= 40).slice(-15);
      for (const l of lines) st.comment(`${name}: ${JSON.stringify(l).slice(0, 600)}`);
    }
    // And the warnings of the tenant pods these lines name (the shim's log, as kubectl logs shows it).
    const pods = new Set(r.sp.names.flatMap((n) => r.sp.get(n).kept.map((l) => l.pod)).filter((p): p is string => typeof p === 'string'));
    for (const pod of pods) {
      const warned = kubelet.logsOf(pod).split('\n').filter((l) => /"level":[4-6]0/.test(l)).slice(-10);
      for (const l of warned) st.comment(`pod ${pod}: ${l.slice(0, 600)}`);
    }
  });
}

t.test('one Redis: every service its own process, as the chart runs it', async (t) => {
  const r = await startRelease(NAMESPACE, redis.url, false);
  const { sp } = r;
  explainFailures(t, r);

  t.test('started from the rendered chart: the image entrypoint, the Deployment env, only the secrets each Deployment references', async (t) => {
    for (const name of PLATFORM_SERVICES) t.ok(sp.deployments.has(name), `the chart renders ${name}`);
    for (const name of STARTED) {
      const d = sp.deployments.get(name)!;
      t.same(d.args, [name], `${name}: the image's entrypoint gets "${name}"`);
      t.equal(d.env.RUNTIME, 'kubernetes');
      t.equal(sp.get(name).running, true, `${name} runs (pid ${sp.get(name).pid})`);
    }
    t.notOk('WARM_POOL_SECRET' in sp.deployments.get('ingress')!.env, 'the ingress gets no warm pool secret');
    t.notOk('WARM_POOL_SECRET' in sp.deployments.get('forwarder')!.env, 'nor the forwarder');
    t.same(STARTED.filter((n) => sp.deployments.get(n)!.apiAccess), ['waker', 'janitor', 'pool-keeper'], 'only the runtime services get the Kubernetes API');
  });

  const traffic: Traffic[] = [
    { tenant: 'ann', token: tokenFor(1), chats: [11, 12, 13] },
    { tenant: 'bob', token: tokenFor(2), chats: [21, 22] },
    { tenant: 'cat', token: tokenFor(3), chats: [31, 32] },
  ];
  const stored = new Map<string, number>();

  t.test('ztm tenant create, answered by the standalone janitor', async (t) => {
    await Promise.all([...traffic.map((x) => createTenant(r, x.tenant, x.token)), createTenant(r, 'idler', tokenFor(4), ['--idle-timeout', '2'])]);
    const listed = await r.ztm(['tenant', 'list', '--json']);
    t.equal(listed.code, 0, listed.stderr);
    t.same((JSON.parse(listed.stdout) as Array<{ tenant_id: string }>).map((x) => x.tenant_id).sort(), ['ann', 'bob', 'cat', 'idler']);
    t.ok(sp.get('janitor').find('admin command done').length >= 5, 'every command ran in the janitor process');
  });

  t.test('delivery: several tenants and chats through the ingress, each answered once, in order per chat', async (t) => {
    const PER_CHAT = 8;
    const sent = await runTraffic(r, traffic, PER_CHAT, 'd1');
    await sleep(300); // nothing more may follow
    for (const x of traffic) {
      const counts: number[] = [];
      for (const chat of x.chats) {
        const answers = answersOf(x, chat, 'd1');
        t.same(answers.map((a) => a.said), sent.get(`${x.tenant}/${chat}`), `${x.tenant} chat ${chat}: every update answered once, in order`);
        counts.push(...answers.map((a) => a.memories));
      }
      t.same(counts.sort((a, b) => a - b), Array.from({ length: counts.length }, (_, i) => i + 1), `${x.tenant}: its agent stored each update exactly once`);
      stored.set(x.tenant, counts.length);
    }
    const starts = sp.get('waker').find('warm pool hit').length + sp.get('waker').find('warm pool miss').length;
    t.equal(starts, traffic.length, 'one agent started per tenant, by the waker process');
    t.equal(sp.get('forwarder').find('sent the answer kept').length, 0, 'no answer resent');
  });

  t.test('lifecycle: a warm member claimed, idle stop with state saved, woken again with its memory', async (t) => {
    const token = tokenFor(4);
    const ask = async (chat: number, text: string) => {
      const before = answersIn(token, chat).length;
      await deliver(r, 'idler', message(chat, text));
      await waitUntil(`the answer to ${text}`, () => answersIn(token, chat).length > before, 60_000);
      return answersIn(token, chat)[before]!;
    };
    // A count taken after now: one from before could still include a member the delivery test claimed.
    const since = Date.now();
    await waitUntil('the pool-keeper reports a ready warm member, counted after the earlier claims', async () => {
      const s = await r.ztm(['status', '--json']);
      if (s.code !== 0) return false;
      const w = (JSON.parse(s.stdout) as { warm_pool: { size: number | null; reported_at: string | null } }).warm_pool;
      return w.size === 1 && w.reported_at !== null && Date.parse(w.reported_at) > since;
    }, 60_000);
    const hits = sp.get('waker').find('warm pool hit').length;
    t.same(await ask(41, 'one'), { said: 'one', memories: 1 });
    t.equal(sp.get('waker').find('warm pool hit').length, hits + 1, 'woken by claiming the warm member');
    await waitUntil('idle stop', async () => (await r.clients.registry.get('idler'))?.status === 'idle', 30_000);
    t.ok(sp.get('janitor').find('idle check: terminating').some((l) => l.tenant === 'idler'), 'stopped by the janitor process');
    t.ok(await r.clients.state.head((await r.clients.registry.get('idler'))!), 'state saved in S3, under its incarnation');
    t.equal(await r.clients.redis.get(endpointKey('idler')), null, 'no endpoint cached');
    t.same(await ask(41, 'two'), { said: 'two', memories: 2 }, 'woken again: its memory intact');
  });

  t.test('ztm status: the queues worked by the separate services, tenants awake, the warm pool', async (t) => {
    const s = await r.ztm(['status', '--json']);
    t.equal(s.code, 0, s.stderr);
    const status = JSON.parse(s.stdout) as { queues: Array<{ queue: string; workers: number | null }>; tenants_awake: number; dead_letters: number; warm_pool: { target: number } };
    const workers = Object.fromEntries(status.queues.map((q) => [q.queue, q.workers]));
    for (const q of ['forward', 'wake', 'admin', 'lifecycle']) t.ok((workers[q] ?? 0) >= 1, `queue ${q} has a worker (${workers[q]})`);
    // ann, bob and cat (idle timeout 300 s); idler too until its 2 s of silence end.
    t.ok(status.tenants_awake >= 3 && status.tenants_awake <= 4, `the tenants awake (${status.tenants_awake})`);
    t.equal(status.warm_pool.target, 1);
    const table = await r.ztm(['status']);
    t.equal(table.code, 0, table.stderr);
    t.match(table.stdout, /tenants awake\s+[34]\n/);
    t.match(table.stdout, /warm pool\s+\d+ ready \(target 1/, 'the warm pool as the pool-keeper process counted it');
  });

  t.test('the dashboard: behind the basic auth the chart\'s Secret gives it, the queues listed', async (t) => {
    const env = sp.deployments.get('dashboard')!.env;
    const get = async (path: string, auth?: string) => {
      const res = await request(`${sp.dashboardUrl}${path}`, { headers: auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {}, headersTimeout: 10_000, bodyTimeout: 10_000 });
      return { status: res.statusCode, body: await res.body.text() };
    };
    t.equal((await get('/')).status, 401, 'no credentials: refused');
    t.equal((await get('/', `${env.DASHBOARD_USER}:wrong`)).status, 401, 'a wrong password: refused');
    const queues = await get('/api/queues', `${env.DASHBOARD_USER}:${env.DASHBOARD_PASSWORD}`);
    t.equal(queues.status, 200, 'the Secret\'s credentials: in');
    t.match(queues.body, /"forward"/, 'the forward queue is on the board');
  });

  t.test('ztm dead list / dead retry against the standalone janitor', async (t) => {
    const big = message(14, 'x'.repeat(1_100_000)); // more than the agent takes (1 MiB): 413
    t.equal(await post(r, 'ann', big), 200);
    const id = `ann.14.${big.update_id}`;
    const list = async () => {
      const listed = await r.ztm(['dead', 'list', '--json']);
      if (listed.code !== 0) throw new Error(`ztm dead list: ${listed.stderr.trim()}`);
      return (JSON.parse(listed.stdout) as { items: Array<{ id: string; reason: string; failed_at: string }> }).items;
    };
    await waitUntil('the dead letter', async () => (await list()).length === 1, 30_000);
    const [letter] = await list();
    t.match(letter, { id, reason: /413/ });
    const retried = await r.ztm(['dead', 'retry', id, '--json']);
    t.equal(retried.code, 0, retried.stderr);
    t.match(JSON.parse(retried.stdout), { id });
    // Delivered again, refused again: back with a later failure time.
    await waitUntil('dead-lettered again after the retry', async () => (await list()).some((l) => l.id === id && l.failed_at > (letter?.failed_at ?? '')), 30_000);
    const missing = await r.ztm(['dead', 'retry', 'ann.14.1', '--json']);
    t.equal(missing.code, 1, 'a letter that is not there');
    t.match(JSON.parse(missing.stderr.trim()), { error: { code: 'E_NOT_FOUND' } });
    const status = JSON.parse((await r.ztm(['status', '--json'])).stdout) as { dead_letters: number };
    t.equal(status.dead_letters, 1);
  });

  t.test('the forwarder SIGTERMed and restarted mid-traffic: nothing acknowledged lost, nothing twice', async (t) => {
    const PER_CHAT = 10;
    let stopped: Awaited<ReturnType<ServiceProcesses['stop']>> | undefined;
    let answeredAtStop = 0;
    const answered = () => traffic.reduce((n, x) => n + x.chats.reduce((m, c) => m + answersOf(x, c, 'd2').length, 0), 0);
    const sent = await runTraffic(r, traffic, PER_CHAT, 'd2', async () => {
      stopped = await sp.stop('forwarder');
      answeredAtStop = answered();
      await sp.start('forwarder');
    });
    await sleep(300);
    t.match(stopped, { code: 0, signal: null }, `the forwarder exited 0 on SIGTERM (${stopped?.ms} ms)`);
    const total = traffic.reduce((n, x) => n + x.chats.length * PER_CHAT, 0);
    t.ok(answeredAtStop < total, `stopped mid-traffic: ${answeredAtStop} of ${total} answered when it exited`);
    t.equal(sp.get('forwarder').starts, 2, 'restarted once');
    for (const x of traffic) {
      const counts: number[] = [];
      for (const chat of x.chats) {
        const answers = answersOf(x, chat, 'd2');
        t.same(answers.map((a) => a.said), sent.get(`${x.tenant}/${chat}`), `${x.tenant} chat ${chat}: every acknowledged update answered once, in order`);
        counts.push(...answers.map((a) => a.memories));
      }
      const base = stored.get(x.tenant) ?? 0;
      t.same(counts.sort((a, b) => a - b), Array.from({ length: counts.length }, (_, i) => base + i + 1), `${x.tenant}: each stored exactly once by its agent`);
    }
  });

  t.test('SIGTERM: every service exits 0 within its grace period', async (t) => {
    for (const name of STARTED) {
      const grace = sp.deployments.get(name)!.terminationGracePeriodSeconds;
      const result = await sp.stop(name);
      t.match(result, { code: 0, signal: null }, `${name} exited 0 in ${result.ms} ms (grace ${grace} s)`);
      const failed = sp.get(name).kept.filter((l) => (l.level ?? 0) >= 60 || /error while stopping|shutdown took too long|failed to start/.test(String(l.msg)));
      t.same(failed.map((l) => l.msg), [], `${name}: nothing fatal, no failed step while it stopped`);
    }
  });
});

t.test('a real Redis Cluster: the services apart, a master killed mid-run', async (t) => {
  const c = await clusterStarting;
  const r = await startRelease(CLUSTER_NAMESPACE, c.url, true);
  const traffic: Traffic[] = [
    { tenant: 'cla', token: tokenFor(11), chats: [111, 112, 113] },
    { tenant: 'clb', token: tokenFor(12), chats: [121, 122] },
  ];
  await Promise.all(traffic.map((x) => createTenant(r, x.tenant, x.token)));
  let failover: Awaited<ReturnType<TestRedisCluster['killMaster']>> | undefined;
  const PER_CHAT = 8;
  const sent = await runTraffic(r, traffic, PER_CHAT, 'cl', async () => (failover = await c.killMaster()));
  await sleep(500);
  t.ok(failover && failover.killed.port !== failover.promoted.port, `master ${failover?.killed.port} killed, replica ${failover?.promoted.port} took over`);
  let repeats = 0;
  for (const x of traffic) {
    const counts = new Set<number>();
    for (const chat of x.chats) {
      const answers = answersOf(x, chat, 'cl');
      // Sending to Telegram is at-least-once: the answer in flight when the master died may be
      // sent again from the outbox (never asked of the agent again): at most one per chat.
      const distinct = answers.filter((a, i) => a.said !== answers[i - 1]?.said);
      t.same(distinct.map((a) => a.said), sent.get(`${x.tenant}/${chat}`), `${x.tenant} chat ${chat}: every acknowledged update answered, in order`);
      t.ok(answers.length - distinct.length <= 1, `${x.tenant} chat ${chat}: at most the answer in flight repeated`);
      repeats += answers.length - distinct.length;
      for (const a of distinct) counts.add(a.memories);
    }
    const n = x.chats.length * PER_CHAT;
    t.same([...counts].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i + 1), `${x.tenant}: each update stored exactly once by its agent`);
  }
  t.ok(repeats <= r.sp.get('forwarder').find('sent the answer kept').length, `each repeated answer (${repeats}) is a resend of a kept one`);
  const status = await spawnZtm(['status', '--json'], { ZTM_REDIS_URL: failover!.promoted.url, DATA_DIR: work });
  t.equal(status.code, 0, `ztm status against the promoted node (stderr: ${status.stderr.trim()})`);
  for (const name of STARTED) t.equal(r.sp.get(name).running, true, `${name} rode out the failover`);
  for (const name of STARTED) {
    const result = await r.sp.stop(name);
    t.match(result, { code: 0, signal: null }, `${name} exited 0 on SIGTERM after the failover (${result.ms} ms)`);
  }
});
