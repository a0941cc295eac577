/**
 * The answer outbox: an agent's answer is kept with its update in Redis until Telegram took it, so a
 * redelivery (a forwarder killed between the answer and the send, or a send that failed and is
 * retried later) sends the kept answer and does not ask the agent again.
 * (a) Mailbox against a real redis-server: what claim/head/popNext/dead-letter do with an outbox;
 * (b) a real forwarder process killed with SIGKILL while Telegram holds its sendMessage;
 * (c) an in-process forwarder whose sends fail: retried from the kept answer, chunk by chunk;
 * (d) a runner late for the lease its chat's accept took: it claims that lease with its token.
 * The agents count how often they were asked per update and answer differently each time, so a
 * second ask would show in the chat.
 */
import t, { type Test } from 'tap';
import { Queue } from 'bullmq';
import { createRedis, closeRedis, type RedisClient } from '../lib/redis.js';
import { QUEUES, QUEUE_PREFIX } from '../lib/queues.js';
import { Mailbox } from '../lib/delivery/mailbox.js';
import { DeadLetterStore } from '../lib/delivery/dead-letters.js';
import { attemptsKey, chatLeaseKey, drainKey, mailboxKey, outboxKey } from '../lib/keys.js';
import { decodeEnvelope, envelopeIdentity } from '../lib/delivery/update.js';
import { splitMessage } from '../lib/telegram-client.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { startOutboxHarness, botToken, type OutboxHarness } from './support/outbox-harness.js';
import { ScriptedAgent, type AgentRequest } from './support/outbox-agent.js';
import { TelegramGate } from './support/outbox-telegram-gate.js';
import { waitUntil } from './support/wait.js';

const update = (id: number, text = `m${id}`) => JSON.stringify({ update_id: id, message: { chat: { id: 1 }, text } });

t.test('(a) Mailbox: the outbox rides with the head and leaves with it', async (t) => {
  const server: TestRedis = await startRedis();
  const redis: RedisClient = createRedis({ url: server.url });
  const bull: RedisClient = createRedis({ url: server.url, blocking: true });
  const queue = new Queue(QUEUES.forward, { connection: bull, prefix: QUEUE_PREFIX });
  const mailbox = new Mailbox({ redis, forwardQueue: queue, leaseMs: 5000 });
  const dead = new DeadLetterStore({ redis });
  t.teardown(async () => {
    await queue.close();
    await closeRedis(redis);
    await closeRedis(bull);
    await server.close();
  });
  const claim = async (tenant: string, chat: string, lease: string) => {
    const gen = (await redis.get(drainKey(tenant, chat))) as string;
    return { gen, ...(await mailbox.claimHead(tenant, chat, gen, lease, 10)) };
  };

  await t.test('kept answer: fenced by the lease and the head, read back by claim and head, cleared by popNext', async (t) => {
    await mailbox.accept('ob', '1', 1, update(1));
    await mailbox.accept('ob', '1', 2, update(2));
    const first = await claim('ob', '1', 'L');
    t.equal(first.result, 'ok');
    t.equal(first.outbox, undefined, 'a fresh update has no outbox');
    const head = first.head as string;

    t.equal(await mailbox.keepAnswer('ob', '1', head, 'not-my-lease', 'x'), 'lost-lease', 'another lease cannot write it');
    const second = (await mailbox.accept('ob', '9', 5, update(5)), await claim('ob', '9', 'L9')).head as string;
    t.equal(await mailbox.keepAnswer('ob', '1', second, 'L', 'x'), 'moved', 'nor for an envelope that is not the head');
    t.equal(await redis.exists(outboxKey('ob', '1')), 0, 'refused writes left nothing');

    t.equal(await mailbox.keepAnswer('ob', '1', head, 'L', 'the answer'), 'ok');
    t.same(await mailbox.headWithOutbox('ob', '1'), { head, outbox: { answer: 'the answer', sent: 0, failedTurns: 0 } });
    t.equal(await mailbox.recordSent('ob', '1', head, 'L', 2), 'ok');
    t.equal(await mailbox.recordSent('ob', '1', head, 'other', 3), 'lost-lease');
    t.ok((await redis.ttl(outboxKey('ob', '1'))) > 0, 'bounded by a TTL (a leak guard)');

    // The drainer dies here; the next one claims after the lease.
    await mailbox.release('ob', '1', 'L');
    const again = await claim('ob', '1', 'L2');
    t.equal(again.head, head, 'same head');
    t.same(again.outbox, { answer: 'the answer', sent: 2, failedTurns: 0 }, 'claim returns the kept answer and the chunks sent');

    const popped = await mailbox.popNext('ob', '1', head, 1, 'L2', again.gen);
    t.equal(popped.kind, 'next');
    t.equal(await redis.exists(outboxKey('ob', '1')), 0, 'popNext cleared the outbox');
    const next = (popped as { head: string }).head;
    t.equal(decodeEnvelope(next).updateId, 2);
    t.same(await mailbox.headWithOutbox('ob', '1'), { head: next, outbox: undefined }, 'the next head starts clean');
    t.same(await mailbox.popNext('ob', '1', next, 2, 'L2', again.gen), { kind: 'drained' });
    t.same(await mailbox.headWithOutbox('ob', '1'), { head: null, outbox: undefined });
  });

  await t.test('an outbox of another update is never taken for the head\'s', async (t) => {
    await mailbox.accept('ob', '2', 10, update(10));
    const c = await claim('ob', '2', 'L');
    // As if an outbox outlived its update (e.g. a mailbox deleted by hand and refilled).
    await redis.hset(outboxKey('ob', '2'), 'id', '9|123|', 'answer', 'stale', 'sent', '1', 'failed_turns', '4');
    await mailbox.release('ob', '2', 'L');
    const again = await claim('ob', '2', 'L2');
    t.equal(again.outbox, undefined, 'claim ignores it');
    t.equal((await mailbox.headWithOutbox('ob', '2')).outbox, undefined, 'so does head');
    t.same(await mailbox.countAttempt('ob', '2', c.head as string, 10, 'L2', true), { attempts: 1, failedTurns: 1 }, 'a failed turn starts its own outbox: the stale count is gone');
    t.equal(await mailbox.keepAnswer('ob', '2', c.head as string, 'L2', 'fresh'), 'ok');
    t.same((await mailbox.headWithOutbox('ob', '2')).outbox, { answer: 'fresh', sent: 0, failedTurns: 1 });
    t.same(await redis.hget(outboxKey('ob', '2'), 'id'), envelopeIdentity(c.head as string));
    await mailbox.popNext('ob', '2', c.head as string, 10, 'L2', again.gen);
  });

  await t.test('failed agent turns are counted under the lease only when the turn ended; attempts always', async (t) => {
    await mailbox.accept('ob', '3', 20, update(20));
    const c = await claim('ob', '3', 'L');
    const head = c.head as string;
    t.same(await mailbox.countAttempt('ob', '3', head, 20, 'L', false), { attempts: 1, failedTurns: 0 }, 'an unreachable agent: no turn counted');
    t.equal(await redis.exists(outboxKey('ob', '3')), 0, 'and no outbox made for it');
    t.same(await mailbox.countAttempt('ob', '3', head, 20, 'L', true), { attempts: 2, failedTurns: 1 });
    t.same(await mailbox.countAttempt('ob', '3', head, 20, 'stolen', true), { attempts: 3, failedTurns: 0 }, 'without the lease the turn is not counted');
    t.same(await mailbox.countAttempt('ob', '3', head, 20, 'L', true), { attempts: 4, failedTurns: 2 });
    t.same((await mailbox.headWithOutbox('ob', '3')).outbox, { answer: undefined, sent: 0, failedTurns: 2 }, 'no answer yet, two failed turns');
  });

  await t.test('a dead letter takes the head out with its attempts and outbox', async (t) => {
    const c = await claim('ob', '3', 'another');
    t.equal(c.result, 'busy', 'still leased by the previous subtest');
    await mailbox.release('ob', '3', 'L');
    const d = await claim('ob', '3', 'L3');
    const head = d.head as string;
    await mailbox.keepAnswer('ob', '3', head, 'L3', 'never sent');
    t.equal(await dead.moveHead('ob', '3', head, 'other', 4, 'x'), -1, 'fenced by the lease');
    t.equal(await dead.moveHead('ob', '3', head, 'L3', 4, 'telegram 500'), 1);
    t.equal(await redis.exists(outboxKey('ob', '3')), 0, 'outbox cleared');
    t.equal(await redis.hexists(attemptsKey('ob'), 'ob.3.20'), 0, 'attempt counter cleared');
    t.equal(await redis.llen(mailboxKey('ob', '3')), 0);
    const letter = await dead.get('ob.3.20');
    t.equal(letter?.envelope, head, 'the dead letter keeps the update as accepted');
    await mailbox.release('ob', '3', 'L3');
  });
});

/** An agent that answers each ask of an update differently (`answer <n> to <text>`) and counts them. */
function countingAgent(): Promise<ScriptedAgent> {
  const asks = new Map<string, number>();
  return ScriptedAgent.start((req: AgentRequest) => {
    const n = (asks.get(req.message ?? '') ?? 0) + 1;
    asks.set(req.message ?? '', n);
    return { status: 200, body: { response: `answer ${n} to ${req.message}`, model: 'test' } };
  });
}

/** A harness, a Telegram gate before its emulator and a counting agent, closed with the test; the tenant added, awake at the agent. */
async function gatedTenant(t: Test, tenant: string, bot: number): Promise<{ h: OutboxHarness; gate: TelegramGate; agent: ScriptedAgent; token: string }> {
  const h = await startOutboxHarness();
  const gate = await TelegramGate.start(h.emulator.url);
  const agent = await countingAgent();
  t.teardown(async () => {
    await h.close();
    await gate.close();
    await agent.close();
  });
  const token = botToken(bot);
  await h.addTenant(tenant, token);
  await h.setEndpoint(tenant, agent.address);
  return { h, gate, agent, token };
}

t.test('(b) a forwarder killed -9 between the agent\'s answer and the send: the kept answer is sent, the agent is not asked again', async (t) => {
  const { h, gate, agent, token } = await gatedTenant(t, 'killme', 1);
  const forwarder = h.forwarderProcess({ TELEGRAM_API_BASE: gate.url });
  await forwarder.start();

  // Two chats: Telegram will have processed the held send of chat 1 (a request it had read before
  // the client died), and never seen the one of chat 2.
  gate.holding = true;
  await h.send('killme', 1, 101, 'first chat');
  await h.send('killme', 2, 201, 'second chat');
  await waitUntil('both sends held by Telegram', () => gate.held.length === 2, 30_000);
  t.same(agent.requests.map((r) => r.message).sort(), ['first chat', 'second chat'], 'the agent answered both once');
  t.equal(await h.clients.redis.hget(outboxKey('killme', '1'), 'answer'), 'answer 1 to first chat', 'the answer is kept before the send');

  await forwarder.kill('SIGKILL');
  t.notOk(forwarder.running, 'the forwarder is dead, in the middle of its sends');
  await forwarder.start();
  await gate.release((call) => (call.chatId === '1' ? 'deliver' : 'drop'));

  const texts = (chat: number) => h.emulator.sentMessages(token).filter((m) => m.chat_id === chat).map((m) => m.text);
  await waitUntil('both mailboxes delivered by the new forwarder', async () =>
    (await h.clients.redis.llen(mailboxKey('killme', '1'))) === 0 && (await h.clients.redis.llen(mailboxKey('killme', '2'))) === 0, 60_000);

  t.same(agent.asked('first chat').length, 1, 'chat 1: the agent was asked once');
  t.same(agent.asked('second chat').length, 1, 'chat 2: the agent was asked once');
  const first = texts(1);
  t.ok(first.length >= 1 && first.every((x) => x === 'answer 1 to first chat'), `chat 1 got the first answer only, at least once (${JSON.stringify(first)})`);
  t.equal(first.length, 2, 'here twice: the late send Telegram processed, and the resend (at-least-once, identical)');
  t.same(texts(2), ['answer 1 to second chat'], 'chat 2 got the first answer exactly once');
  // Its log lines come through a pipe: Redis can show the pops before the lines have arrived.
  await waitUntil('the new forwarder\'s log lines', () => forwarder.find('sent the answer kept from an earlier delivery').length >= 2, 5_000).catch(() => undefined);
  t.equal(forwarder.find('sent the answer kept from an earlier delivery').length, 2, 'the new forwarder sent both from the outbox');
  t.equal(await h.clients.redis.exists(outboxKey('killme', '1'), outboxKey('killme', '2')), 0, 'outboxes gone with their updates');
  t.same(await h.deadLetterList(), [], 'nothing dead-lettered');
});

t.test('(c) sends that fail are retried from the kept answer, chunk by chunk', async (t) => {
  const { h, gate, agent, token } = await gatedTenant(t, 'retry', 2);
  const { logs, metrics } = await h.startForwarder({ TELEGRAM_API_BASE: gate.url });
  const texts = (chat: number) => h.emulator.sentMessages(token).filter((m) => m.chat_id === chat).map((m) => m.text);
  const telegram500 = { status: 500, body: { ok: false, error_code: 500, description: 'Internal Server Error' } };

  await t.test('Telegram 500 twice: the answer arrives later, the agent was asked once', async (t) => {
    let failures = 0;
    gate.intercept = (_n, chat) => (chat === '10' && failures++ < 2 ? telegram500 : undefined);
    await h.send('retry', 10, 1001, 'flaky telegram');
    await waitUntil('the answer', () => texts(10).length >= 1, 30_000);
    await waitUntil('the mailbox empty', async () => (await h.clients.redis.llen(mailboxKey('retry', '10'))) === 0);
    t.equal(failures, 3, 'two sends refused, the third passed');
    t.same(texts(10), ['answer 1 to flaky telegram']);
    t.equal(agent.asked('flaky telegram').length, 1, 'asked once');
    t.equal(logs.find('sent the answer kept from an earlier delivery').length, 1, 'the retry sent the kept answer');
    const kept = (await metrics.forwarded.get()).values.find((v) => v.labels.outcome === 'kept-answer');
    t.equal(kept?.value, 1, 'ztm_forward_total{outcome="kept-answer"}');
  });

  await t.test('a three-chunk answer whose second chunk fails: each chunk reaches the chat once', async (t) => {
    const long = `${'a'.repeat(4000)}\n${'b'.repeat(4000)}\n${'c'.repeat(100)}`;
    const chunks = splitMessage(`answer 1 to ${long}`);
    t.equal(chunks.length, 3, 'the answer is three chunks');
    let calls = 0;
    gate.intercept = (_n, chat) => (chat === '11' && ++calls === 2 ? telegram500 : undefined);
    await h.send('retry', 11, 1101, long);
    await waitUntil('the mailbox empty', async () => (await h.clients.redis.llen(mailboxKey('retry', '11'))) === 0, 30_000);
    t.same(texts(11), chunks.map((c) => c.trim()), 'chunks 1, 2, 3, once each, in order (as Telegram shows them: trimmed)');
    t.equal(calls, 4, 'four sends: chunk 1, chunk 2 refused, chunk 2 again, chunk 3');
    t.equal(agent.asked(long).length, 1, 'asked once');
    t.same(logs.find('sent the answer kept from an earlier delivery').at(-1)?.from_chunk, 1, 'the retry began at the second chunk');
  });
  gate.intercept = undefined;
});

t.test('(d) a runner late for the lease its chat\'s accept took claims it with the token: kept answer and send under it', async (t) => {
  const { h, gate, token } = await gatedTenant(t, 'late', 4);
  await h.startForwarder({ TELEGRAM_API_BASE: gate.url });
  // An accept whose lease has less than two thirds of the forwarder's 15 s left when the runner
  // takes the chat (as after a backlog): the runner must claim it, not trust it.
  const late = new Mailbox({ redis: h.clients.redis, queues: h.mailbox.queues, leaseMs: 3000, openingLeaseLimit: 4 });
  gate.holding = true;
  await late.accept('late', '1', 401, JSON.stringify({ update_id: 401, message: { message_id: 401, date: 1, chat: { id: 1, type: 'private' }, from: { id: 1, is_bot: false, first_name: 'u' }, text: 'hello late' } }));
  const opened = (await h.clients.redis.get(chatLeaseKey('late', '1'))) as string;
  t.match(opened, /^o[0-9a-f-]{36}\.0$/, 'the accept took the chat lease');
  await waitUntil('the answer\'s send held by Telegram', () => gate.held.length === 1, 30_000);
  t.equal(await h.clients.redis.get(chatLeaseKey('late', '1')), opened, 'the runner holds the lease with the accept\'s token');
  t.ok(Number(await h.clients.redis.pttl(chatLeaseKey('late', '1'))) > 5000, 'renewed to the forwarder\'s lease by its claim (the accept gave 3 s)');
  t.equal(await h.clients.redis.hget(outboxKey('late', '1'), 'answer'), 'answer 1 to hello late', 'the answer kept under that lease');
  await gate.release(() => 'deliver');
  await waitUntil('delivered and popped', async () => (await h.clients.redis.llen(mailboxKey('late', '1'))) === 0, 30_000);
  t.same(h.emulator.sentMessages(token).filter((m) => m.chat_id === 1).map((m) => m.text), ['answer 1 to hello late']);
  t.equal(await h.clients.redis.exists(chatLeaseKey('late', '1')), 0, 'the lease given up with the drain');
});
