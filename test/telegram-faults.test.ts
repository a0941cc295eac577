/**
 * Telegram API faults under traffic (issue 6, item 6), on the embedded default (real shims and
 * reference agents, real Redis, the Telegram emulator). test/delivery-faults.test.ts covers one
 * chat meeting one fault; here several chats of two bots are busy when the faults come:
 *
 * - 429 with retry_after (short: waited inline; long: the drain is delayed): after a 429 no call at
 *   all reaches that bot until retry_after has passed, from any chat; the other bot is not slowed;
 * - a run of 500s: answers arrive later, none is lost;
 * - sendMessage timeouts (the emulator holds the call past the client's 10 s deadline): answered
 *   later; the call that timed out may still have reached the chat, so an answer may show twice
 *   (at-least-once), but the agent stores each update once (its memory count says so).
 *
 * Each scenario checks: every update answered, each chat's answers in update_id order, the agent
 * acted on each update once (memory numbers distinct and contiguous per tenant), no dead letters.
 */
import t, { type Test } from 'tap';
import { startTestPlatform, type TestPlatform } from './support/platform.js';
import type { RecordedCall } from './support/telegram-emulator.js';
import { STARTING_UP_TEXT } from '../services/forwarder/drainer.js';
import { sleep, waitUntil } from './support/wait.js';

const BOT_A = '444444444:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw4';
const BOT_B = '555555555:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw5';
const TENANT_OF: Record<string, string> = { [BOT_A]: 'tga', [BOT_B]: 'tgb' };
/** Calls that left before the client saw the 429 may land just after it. */
const IN_FLIGHT_GRACE_MS = 150;

let p: TestPlatform;
let nextUpdateId = 90_000;
/** Per tenant: memory number of each update the agent answered (the agent's own count). */
const memoryOf = new Map<string, Map<number, number>>();

t.before(async () => {
  p = await startTestPlatform({ full: true, env: { WARM_POOL_TARGET: '0', TENANT_CONCURRENCY: '4' } });
  for (const token of [BOT_A, BOT_B]) {
    p.emulator.addBot(token);
    const created = await p.ztm('tenant', 'create', TENANT_OF[token] as string, token);
    if (created.code !== 0) throw new Error(created.stderr);
  }
  // Wake both: the scenarios are about answers, not wakes.
  await Promise.all([BOT_A, BOT_B].map((token) => post(token, 1, 'wake up')));
  await waitUntil('both agents awake', () => [BOT_A, BOT_B].every((tk) => answers(tk, 1).some((a) => a.text.startsWith('You said'))), 60_000);
});
t.teardown(() => p.close());

function message(chatId: number, text: string, updateId: number) {
  return { update_id: updateId, message: { message_id: updateId, date: Math.floor(Date.now() / 1000), chat: { id: chatId, type: 'private' }, from: { id: chatId, is_bot: false, first_name: 'u' }, text } };
}

/** Posts one update as Telegram would (retrying a non-200); returns its update_id. */
async function post(token: string, chatId: number, text: string): Promise<number> {
  const id = nextUpdateId++;
  for (let attempt = 0; ; attempt++) {
    const res = await p.postUpdate(TENANT_OF[token] as string, message(chatId, `${text} #${id}`, id));
    if (res.status === 200) return id;
    if (attempt >= 20) throw new Error(`update ${id} refused ${res.status} 20 times`);
    await sleep(200);
  }
}

interface Answer { text: string; updateId: number | undefined; memories: number | undefined; at: number }
function answers(token: string, chatId: number): Answer[] {
  return p.emulator.callsTo('sendMessage', token)
    .filter((c) => c.status === 200 && String(c.params.chat_id) === String(chatId))
    .map((c) => {
      const text = String((c.result as { text: string }).text);
      const m = /#(\d+) \(memories: (\d+)\)$/.exec(text);
      return { text, updateId: m ? Number(m[1]) : undefined, memories: m ? Number(m[2]) : undefined, at: c.at };
    });
}

/** `perChat` updates on each chat, one in flight per chat (the next only after the 200), chats concurrently. */
async function converse(token: string, chats: number[], perChat: number, label: string): Promise<Map<number, number[]>> {
  const sent = new Map<number, number[]>();
  await Promise.all(chats.map(async (chat) => {
    const ids: number[] = [];
    sent.set(chat, ids);
    for (let i = 0; i < perChat; i++) ids.push(await post(token, chat, `${label} c${chat} m${i}`));
  }));
  return sent;
}

/** Every update answered, in order per chat, stored once by the agent; returns how many answers repeated. */
async function checkAnswered(t: Test, token: string, sent: Map<number, number[]>, timeoutMs: number): Promise<number> {
  const all = [...sent.values()].flat();
  await waitUntil(`answers to ${all.length} updates`, () => [...sent].every(([chat, ids]) => {
    const got = new Set(answers(token, chat).map((a) => a.updateId));
    return ids.every((id) => got.has(id));
  }), timeoutMs);
  await sleep(300); // nothing more may follow
  const tenant = TENANT_OF[token] as string;
  const memories = memoryOf.get(tenant) ?? new Map<number, number>();
  memoryOf.set(tenant, memories);
  let repeats = 0;
  for (const [chat, ids] of sent) {
    const got = answers(token, chat).filter((a) => a.text !== STARTING_UP_TEXT && a.updateId !== undefined && ids.includes(a.updateId));
    // In order: the raw sequence never goes back (a repeat of the same answer is at-least-once).
    const order = got.map((a) => a.updateId as number);
    t.ok(order.every((id, i) => i === 0 || id >= (order[i - 1] as number)), `chat ${chat}: answers in update_id order`);
    repeats += order.length - new Set(order).size;
    for (const a of got) {
      const known = memories.get(a.updateId as number);
      if (known !== undefined && known !== a.memories) t.fail(`update ${a.updateId} answered with two memory counts (${known}, ${a.memories}): the agent acted twice`);
      memories.set(a.updateId as number, a.memories as number);
    }
  }
  // Once per update at the agent: the counts are distinct and leave no gap (a second act would).
  const counts = [...memories.values()].sort((a, b) => a - b);
  t.equal(new Set(counts).size, counts.length, `${tenant}: each memory number belongs to one update`);
  t.equal(counts[counts.length - 1], counts.length + 1, `${tenant}: ${counts.length} updates (after the wake-up message), ${counts.length} memories: none stored twice`);
  t.equal(await p.forwarderDeadLetters(), 0, 'no dead letters');
  return repeats;
}

async function rateLimited(t: Test, retryAfterS: number, label: string): Promise<void> {
  const since = Date.now();
  // The first call after this, whichever bot it is for, gets the 429: make it bot A's.
  p.emulator.failNext('sendMessage', { status: 429, retry_after: retryAfterS, times: 1 });
  const trigger = await post(BOT_A, 200, `${label} trigger`);
  await waitUntil('the 429', () => p.emulator.calls.some((c) => c.at >= since && c.status === 429), 20_000);
  const c429 = p.emulator.calls.find((c) => c.at >= since && c.status === 429) as RecordedCall;
  t.equal(c429.token, BOT_A, 'bot A got the 429');
  // Bot A's other chats and bot B have answers to send meanwhile.
  const [sentA, sentB] = await Promise.all([converse(BOT_A, [201, 202, 203, 204], 4, label), converse(BOT_B, [301, 302], 4, label)]);
  sentA.set(200, [trigger]);
  await checkAnswered(t, BOT_A, sentA, 30_000 + retryAfterS * 1000);
  await checkAnswered(t, BOT_B, sentB, 30_000);

  const windowEnd = c429.at + retryAfterS * 1000;
  const offenders = p.emulator.calls.filter((c) => c.token === BOT_A && c.at > c429.at + IN_FLIGHT_GRACE_MS && c.at < windowEnd - 20);
  t.same(offenders.map((c) => `${c.method} +${c.at - c429.at} ms`), [], `no call to bot A within retry_after (${retryAfterS} s) of its 429`);
  const nextA = p.emulator.calls.find((c) => c.token === BOT_A && c.at > c429.at + IN_FLIGHT_GRACE_MS);
  t.ok(nextA && nextA.at >= windowEnd - 20, `bot A's next call came ${nextA ? nextA.at - c429.at : '?'} ms after the 429`);
  const bDuring = p.emulator.calls.filter((c) => c.token === BOT_B && c.method === 'sendMessage' && c.at > c429.at && c.at < windowEnd).length;
  t.ok(bDuring > 0, `bot B was not held back (${bDuring} calls within bot A's retry_after)`);
}

t.test('429 retry_after 2 s (waited inline) while four chats of the bot have answers to send', (t) => rateLimited(t, 2, 'short429'));

t.test('429 retry_after 6 s (longer than an inline wait: the drains are delayed)', (t) => rateLimited(t, 6, 'long429'));

t.test('a run of 500s on sendMessage across both bots: answers delayed, none lost', async (t) => {
  const since = Date.now();
  p.emulator.failNext('sendMessage', { status: 500, times: 8 });
  const [sentA, sentB] = await Promise.all([converse(BOT_A, [401, 402, 403], 4, 'e500'), converse(BOT_B, [501, 502], 4, 'e500')]);
  await checkAnswered(t, BOT_A, sentA, 40_000);
  await checkAnswered(t, BOT_B, sentB, 40_000);
  const failed = p.emulator.calls.filter((c) => c.at >= since && c.status === 500).length;
  t.equal(failed, 8, 'all eight 500s were served (and retried past)');
});

t.test('sendMessage timeouts: answered later, the agent acts once', async (t) => {
  const since = Date.now();
  // Longer than the client's 10 s deadline: it gives up, the emulator still "sends" afterwards.
  p.emulator.delayNext('sendMessage', 11_000, 2);
  const [sentA, sentB] = await Promise.all([converse(BOT_A, [601, 602], 3, 'slow'), converse(BOT_B, [701], 3, 'slow')]);
  const repeatsA = await checkAnswered(t, BOT_A, sentA, 45_000);
  const repeatsB = await checkAnswered(t, BOT_B, sentB, 45_000);
  const held = p.emulator.calls.filter((c) => c.at >= since && c.method === 'sendMessage').length;
  t.comment(`${repeatsA + repeatsB} answers shown twice (a timed-out call that Telegram completed anyway), ${held} sendMessage calls`);
  t.ok(repeatsA + repeatsB <= 2, 'repeats only from the two calls that timed out');
});
