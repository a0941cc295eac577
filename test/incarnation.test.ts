/**
 * A deleted and re-created tenant id is another tenant: its webhook secret and agent bearer are
 * derived for a fresh incarnation, so the old secrets open nothing of the new one. Real dynalite
 * (the registry), real redis-server (the incarnation index the ingress reads), the real ingress
 * on loopback, ztm's create/delete path (TenantAdmin) with the Telegram emulator recording
 * setWebhook. Records from before incarnations keep their id-only secrets.
 */
import t from 'tap';
import { Agent, request } from 'undici';
import { Queue } from 'bullmq';
import { createRedis, closeRedis } from '../lib/redis.js';
import { QUEUES, QUEUE_PREFIX } from '../lib/queues.js';
import { Mailbox } from '../lib/delivery/mailbox.js';
import { decodeEnvelope } from '../lib/delivery/update.js';
import { incarnationKey, mailboxKey } from '../lib/keys.js';
import { createMetrics } from '../lib/metrics.js';
import { INCARNATION_PATTERN, tenantFromItem } from '../lib/registry/tenant.js';
import { TenantRegistry } from '../lib/registry/tenant-registry.js';
import { IncarnationIndex } from '../lib/tenants/incarnation-index.js';
import { TenantAdmin } from '../lib/tenants/tenant-admin.js';
import { TenantCache } from '../lib/tenants/tenant-cache.js';
import { TelegramClient } from '../lib/telegram-client.js';
import { tenantAgentSecrets } from '../lib/runtime/tenant-agent-secrets.js';
import { agentTokenSha256, deriveAgentToken, deriveWebhookSecret } from '../lib/webhook-secret.js';
import { createIngress } from '../services/ingress/ingress.js';
import { WebhookVerifier } from '../services/ingress/webhook-verifier.js';
import { startRedis } from './support/redis.js';
import { startDynamo, uniqueTableName } from './support/dynamo.js';
import { LogCapture } from './support/log-capture.js';
import { TelegramEmulator } from './support/telegram-emulator.js';

const MASTER = 'incarnation-test-master-secret-0123456789';
const TOKEN = `123456789:${'A'.repeat(35)}`;

const tr = await startRedis();
const dyn = await startDynamo();
const emulator = await TelegramEmulator.start();
emulator.addBot(TOKEN);
const redis = createRedis({ url: tr.url, failFast: true });
const bull = createRedis({ url: tr.url, blocking: false });
redis.on('error', () => undefined);
bull.on('error', () => undefined);
if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
const queue = new Queue(QUEUES.forward, { connection: bull, prefix: QUEUE_PREFIX });
queue.on('error', () => undefined);
const registry = new TenantRegistry({ client: dyn.client, table: uniqueTableName() });
await registry.ensureTable();
const capture = new LogCapture();
const log = capture.logger('incarnation-test', 'debug');
const telegram = new TelegramClient({ apiBase: emulator.url });
const admin = new TenantAdmin({ registry, telegram, redis, log, webhookSecret: MASTER, routerPublicUrl: 'https://bots.example.com' });
const ingress = await createIngress({
  config: { ingressHost: '127.0.0.1', ingressPort: 0, ingressBodyLimit: 1_048_576 }, log, redis,
  mailbox: new Mailbox({ redis, forwardQueue: queue }), webhookSecret: MASTER, metrics: createMetrics({ service: 'ingress', defaultMetrics: false }),
});
const http = new Agent({ connections: 8 });
t.teardown(async () => {
  await ingress.close();
  await http.close();
  await queue.close();
  await closeRedis(bull);
  await closeRedis(redis);
  await emulator.close();
  await Promise.all([tr.close(), dyn.close()]);
});

const update = (id: number, chat: number): string => JSON.stringify({ update_id: id, message: { message_id: id, date: 1, chat: { id: chat, type: 'private' }, text: `m${id}` } });
async function post(tenant: string, secret: string, body: string): Promise<number> {
  const res = await request(`http://127.0.0.1:${ingress.port}/tg/${tenant}`, {
    method: 'POST', body, dispatcher: http, headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret },
  });
  await res.body.dump();
  return res.statusCode;
}
const mailboxOf = async (tenant: string, chat: number): Promise<number[]> =>
  (await redis.lrange(mailboxKey(tenant, String(chat)), 0, -1)).map((e) => decodeEnvelope(e).updateId);

t.test('derivations: per incarnation, id-only without one (the values records from before keep)', async (t) => {
  const legacy = { tenant_id: 'alice' };
  // The id-only values are exactly those of before incarnations (test/delivery-faults.test.ts pins the bearer too).
  t.equal(deriveAgentToken('master-secret', legacy), 'zhIcjWWwVXwUGL18qxBtZd2NKnomOOSTj-eYGR-oSzw', 'legacy bearer unchanged');
  const a = { tenant_id: 'alice', incarnation: 'AAAAAAAAAAAAAAAAAAAAAA' };
  const b = { tenant_id: 'alice', incarnation: 'BBBBBBBBBBBBBBBBBBBBBB' };
  const all = [legacy, a, b].flatMap((w) => [deriveWebhookSecret(MASTER, w), deriveAgentToken(MASTER, w)]);
  t.equal(new Set(all).size, 6, 'webhook secret and bearer differ per incarnation, and from each other');
  for (const s of all) t.match(s, /^[A-Za-z0-9_-]{43}$/, 'Telegram secret_token alphabet, fixed length');
  t.same(tenantAgentSecrets(MASTER, a), { webhookSecret: deriveWebhookSecret(MASTER, a), agentTokenSha256: agentTokenSha256(deriveAgentToken(MASTER, a)) }, 'the pod gets this incarnation\'s values');
});

t.test('the registry: a fresh incarnation per create, never patchable, checked when read', async (t) => {
  const first = await registry.create({ tenant_id: 'rec', bot_token: TOKEN });
  t.match(first.incarnation, INCARNATION_PATTERN);
  t.equal((await registry.require('rec')).incarnation, first.incarnation, 'stored and read back');
  await t.rejects(registry.update('rec', { incarnation: 'x'.repeat(22) } as never), { code: 'E_VALIDATION', message: /"incarnation" cannot be changed/ });
  const after = await registry.update('rec', { idle_timeout_s: 120 });
  t.equal(after.incarnation, first.incarnation, 'an update keeps it');
  await registry.delete('rec');
  const second = await registry.create({ tenant_id: 'rec', bot_token: TOKEN });
  t.not(second.incarnation, first.incarnation, 'the re-created id is another incarnation');
  const item = { tenant_id: 'rec', bot_token: TOKEN, status: 'idle', idle_timeout_s: 600, created_at: 'x', updated_at: 'x', version: 1 };
  t.equal(tenantFromItem(item).incarnation, undefined, 'a record from before incarnations reads without one');
  t.throws(() => tenantFromItem({ ...item, incarnation: 'short' }), { code: 'E_INTERNAL', message: 'tenant record rec is malformed: field incarnation' });
  await registry.delete('rec');
});

t.test('re-created through ztm\'s path: new webhook secret and bearer; the ingress refuses the old secret and loses nothing', async (t) => {
  const one = (await admin.create({ tenant_id: 'carol', bot_token: TOKEN })).tenant;
  const carol1 = await registry.require('carol');
  t.equal(await redis.get(incarnationKey('carol')), carol1.incarnation, 'create writes the incarnation index');
  const secret1 = deriveWebhookSecret(MASTER, carol1);
  t.equal(emulator.webhookOf(TOKEN)?.secret_token, secret1, 'setWebhook carries this incarnation\'s secret');
  t.not(secret1, deriveWebhookSecret(MASTER, { tenant_id: 'carol' }), 'not the id-only secret');
  t.equal(one.incarnation, carol1.incarnation, 'ztm tenant get shows it (not a secret)');
  t.equal(await post('carol', secret1, update(1, 7)), 200, 'the first incarnation\'s secret is accepted (and cached by the ingress)');

  await admin.delete({ tenant_id: 'carol' });
  t.equal(await redis.get(incarnationKey('carol')), null, 'delete removes the index entry');
  await admin.create({ tenant_id: 'carol', bot_token: TOKEN });
  const carol2 = await registry.require('carol');
  const secret2 = deriveWebhookSecret(MASTER, carol2);
  t.not(secret2, secret1, 'another webhook secret');
  t.not(deriveAgentToken(MASTER, carol2), deriveAgentToken(MASTER, carol1), 'another bearer');
  t.equal(emulator.webhookOf(TOKEN)?.secret_token, secret2, 'the webhook is set with the new secret');

  t.equal(await post('carol', secret2, update(2, 7)), 200, 'the new secret is accepted at once, though the ingress cached the old incarnation');
  t.equal(await post('carol', secret1, update(3, 7)), 401, 'the old secret is refused');
  t.equal(await post('carol', secret2, update(4, 7)), 200);
  t.same(await mailboxOf('carol', 7), [1, 2, 4], 'every accepted update kept, the refused one never written');

  const cache = new TenantCache({ registry });
  t.same(await cache.identity('carol'), { tenant_id: 'carol', incarnation: carol2.incarnation }, 'the forwarder derives for the current incarnation');
  t.same(await cache.identity('nobody'), { tenant_id: 'nobody' }, 'an unknown tenant: id-only');
});

t.test('a record from before incarnations (no index entry) verifies as before', async (t) => {
  const legacy = deriveWebhookSecret(MASTER, { tenant_id: 'olduser' });
  t.equal(await post('olduser', legacy, update(10, 8)), 200, 'id-only secret accepted');
  t.equal(await post('olduser', deriveWebhookSecret(MASTER, { tenant_id: 'olduser', incarnation: 'C'.repeat(22) }), update(11, 8)), 401, 'an incarnation secret without an index entry is refused');
  await new IncarnationIndex(redis).publish({ tenant_id: 'olduser' });
  t.equal(await redis.exists(incarnationKey('olduser')), 0, 'publishing a record without incarnation writes no entry');
  t.same(await mailboxOf('olduser', 8), [10]);
});

t.test('the verifier: forged secrets neither fill the cache nor cost a read each', async (t) => {
  const index = new IncarnationIndex(redis);
  await index.publish({ tenant_id: 'dora', incarnation: 'D'.repeat(22) });
  const lookups: string[] = [];
  const v = new WebhookVerifier({ masterSecret: MASTER, lookup: (id) => (lookups.push(id), index.identity(id)), lookupTtlMs: 60_000, maxInflight: 4 });
  const right = deriveWebhookSecret(MASTER, { tenant_id: 'dora', incarnation: 'D'.repeat(22) });
  const forged = deriveWebhookSecret('not-the-master', { tenant_id: 'dora' });
  t.equal(v.verify('dora', undefined), 'bad', 'no secret: refused with no I/O');
  t.equal(v.verify('dora', 'short'), 'bad', 'wrong shape: refused with no I/O');
  t.same(lookups, [], 'nothing looked up for those');
  t.equal(await v.verify('dora', right), 'ok', 'first sight: one lookup');
  t.equal(v.verify('dora', right), 'ok', 'then synchronous, no I/O');
  for (let i = 0; i < 50; i++) t.equal(await v.verify('dora', forged), 'bad');
  t.same(lookups, ['dora', 'dora'], 'fifty forgeries of a verified tenant cost one read (a mismatch looks again once per lookupTtlMs), not fifty');
  t.equal(v.verify('dora', right), 'ok', 'and the real secret still verifies without I/O');

  const pending = Array.from({ length: 6 }, (_, i) => v.verify(`ghost${i}`, forged));
  t.same(pending.slice(4), ['unavailable', 'unavailable'], 'past maxInflight concurrent lookups: 503, not a queue');
  t.same(await Promise.all(pending.slice(0, 4).map((v) => Promise.resolve(v))), ['bad', 'bad', 'bad', 'bad'], 'unknown ids with a forged secret: refused');
  t.equal(v.verify('dora', right), 'ok', 'forged traffic for unknown ids did not evict the verified tenant');
});
