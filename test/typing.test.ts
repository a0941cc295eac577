/**
 * "typing…" (services/forwarder/typing-notifier.ts) against the Telegram emulator through the real
 * TelegramClient, with its pace shortened (first after 300 ms, then every 600 ms) so each case takes
 * a second or two: a fast wait sends nothing, a long one an action per interval and none after it
 * ended, a 429's retry_after is honoured (for the whole bot, shared with the answers' sender), one
 * call is in flight per chat, a refused chat and a
 * wait's bound stop it. The platform's own pace (1 s, then 4.5 s) is tested end to end in
 * test/wake-patience.test.ts.
 */
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../lib/logger.js';
import { TelegramClient } from '../lib/telegram-client.js';
import { TypingNotifier } from '../services/forwarder/typing-notifier.js';
import { ReplySender } from '../services/forwarder/reply-sender.js';
import { TelegramEmulator, type RecordedCall } from './support/telegram-emulator.js';

const TOKEN = '110201544:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
const FIRST = 300;
const EVERY = 600;

const emu = await TelegramEmulator.start();
emu.addBot(TOKEN);
const telegram = new TelegramClient({ apiBase: emu.url, timeoutMs: 5_000 });
const log = createLogger({ service: 'test', level: 'silent' });
t.teardown(async () => {
  await telegram.close();
  await emu.close();
});
t.beforeEach(() => emu.reset());

function notifier(options: { maxDurationMs?: number; gate?: ReplySender } = {}): TypingNotifier {
  const n = new TypingNotifier({ telegram, tokenOf: async (id) => (id === 'nobody' ? undefined : TOKEN), log, firstAfterMs: FIRST, intervalMs: EVERY, ...options });
  t.teardown(() => n.close());
  return n;
}

const actions = (chat: string): RecordedCall[] => emu.callsTo('sendChatAction', TOKEN).filter((c) => String(c.params.chat_id) === chat);
const gaps = (calls: RecordedCall[]): number[] => calls.slice(1).map((c, i) => c.at - (calls[i] as RecordedCall).at);

t.test('a wait shorter than the first delay costs nothing', async (t) => {
  const n = notifier();
  const answer = await n.during('alice', '11', async () => {
    await sleep(50);
    return 'answered';
  });
  t.equal(answer, 'answered', 'the work’s result passes through');
  await sleep(FIRST + EVERY);
  t.equal(actions('11').length, 0, 'no chat action for a fast answer');
  t.equal(n.activeChats, 0);
});

t.test('a long wait: "typing" after the first delay, then once per interval, none after it ended', async (t) => {
  const n = notifier();
  const began = Date.now();
  const handle = n.start('alice', '12');
  await sleep(FIRST + 3 * EVERY + 100);
  handle.stop();
  const ended = Date.now();
  await sleep(2 * EVERY);
  const calls = actions('12');
  t.ok(calls.length >= 2, `actions while it waited: ${calls.length}`);
  t.ok(calls.length <= 4, `never more often than the interval: ${calls.length} in ${ended - began} ms`);
  t.ok((calls[0] as RecordedCall).at - began >= FIRST - 20, `the first after the first delay (${(calls[0] as RecordedCall).at - began} ms)`);
  t.ok(gaps(calls).every((g) => g >= EVERY - 30), `spaced by the interval: ${gaps(calls).join(', ')} ms`);
  t.ok(calls.every((c) => c.at <= ended + 50), 'none after the wait ended');
  t.ok(calls.every((c) => c.params.action === 'typing' && c.status === 200), 'typing, taken by the Bot API');
  t.equal(n.activeChats, 0);
});

t.test('a 429 is honoured: nothing for that chat before its retry_after', async (t) => {
  const n = notifier();
  emu.failNext('sendChatAction', { status: 429, retry_after: 2 });
  const handle = n.start('alice', '13');
  await sleep(FIRST + 2000 + 2 * EVERY);
  handle.stop();
  const calls = actions('13');
  t.equal(calls[0]?.status, 429, 'the first was refused with 429');
  const after = calls.slice(1);
  t.ok(after.length >= 1, 'actions resumed after the wait');
  t.ok((after[0] as RecordedCall).at - (calls[0] as RecordedCall).at >= 2000 - 30, `not before retry_after: ${(after[0] as RecordedCall).at - (calls[0] as RecordedCall).at} ms`);
  t.equal(n.throttled, 1);
});

t.test('the 429 holds for the chat across waits, and a second wait of a chat shares its pace', async (t) => {
  const n = notifier();
  emu.failNext('sendChatAction', { status: 429, retry_after: 2 });
  const first = n.start('alice', '14');
  await sleep(FIRST + 100);
  first.stop();
  // The drain resumes at once (a park, or the wake ended and the agent is asked now).
  const second = n.start('alice', '14');
  const third = n.start('alice', '14');
  await sleep(1000);
  t.equal(actions('14').length, 1, 'nothing within retry_after, whoever waits');
  await sleep(1000 + EVERY);
  second.stop();
  third.stop();
  const calls = actions('14');
  t.ok(calls.length >= 2, `resumed after retry_after: ${calls.length}`);
  t.ok(gaps(calls.slice(1)).every((g) => g >= EVERY - 30), `two waits of one chat: one pace (${gaps(calls.slice(1)).join(', ')} ms)`);
});

t.test('never more than one call in flight per chat (a slow Bot API)', async (t) => {
  const n = notifier();
  emu.delayNext('sendChatAction', 2000, 1);
  const handle = n.start('alice', '15');
  await sleep(FIRST + 1500);
  t.equal(actions('15').length, 0, 'the slow call has not been answered yet');
  t.equal(emu.callsTo('sendChatAction').length, 0, 'and no second one was sent meanwhile');
  // Read halfway between the next call (answer + EVERY) and the one after it: ±EVERY/2 for a loaded machine.
  await sleep(1000 + EVERY / 2);
  handle.stop();
  const calls = actions('15');
  t.ok(calls.length >= 1 && calls.length <= 2, `the slow one, then the next after the interval: ${calls.length}`);
});

t.test('a refused chat (403) and a tenant without a token get nothing more for that wait', async (t) => {
  const n = notifier();
  emu.failNext('sendChatAction', { status: 403, description: 'Forbidden: bot was blocked by the user' });
  const blocked = n.start('alice', '16');
  const unknown = n.start('nobody', '17');
  await sleep(FIRST + 3 * EVERY);
  t.equal(actions('16').length, 1, 'one try, refused, none after');
  t.equal(emu.callsTo('sendChatAction').filter((c) => String(c.params.chat_id) === '17').length, 0, 'no token: nothing sent');
  t.equal(n.activeChats, 0, 'neither wait wants actions any more');
  blocked.stop();
  unknown.stop();
});

t.test("a wait's bound stops it even if nobody calls stop", async (t) => {
  const n = notifier({ maxDurationMs: FIRST + EVERY + 100 });
  n.start('alice', '18');
  await sleep(FIRST + 4 * EVERY);
  const calls = actions('18');
  t.ok(calls.length >= 1 && calls.length <= 2, `bounded: ${calls.length}`);
  t.equal(n.activeChats, 0);
});

t.test('after close nothing is sent', async (t) => {
  const n = notifier();
  const handle = n.start('alice', '19');
  n.close();
  n.start('alice', '20');
  await sleep(FIRST + EVERY);
  t.equal(emu.callsTo('sendChatAction').length, 0);
  handle.stop();
});

t.test("a 429 quiets the whole bot: its other chats' typing and its answers wait for retry_after", async (t) => {
  const replies = new ReplySender({ telegram, log });
  const n = notifier({ gate: replies });
  emu.failNext('sendChatAction', { status: 429, retry_after: 2 });
  const a = n.start('alice', '21');
  await waitFor429();
  // Once the notifier has read the 429 (the emulator records it as it answers).
  for (let i = 0; i < 100 && n.throttled === 0; i++) await sleep(10);
  const b = n.start('alice', '22');
  const answered = replies.send(TOKEN, '23', 'the answer');
  await sleep(2000 + 2 * EVERY);
  a.stop();
  b.stop();
  t.match(await answered, { kind: 'sent' }, 'the answer went out (after waiting)');
  const c429 = emu.calls.find((c) => c.status === 429) as RecordedCall;
  const during = emu.calls.filter((c) => c.token === TOKEN && c.at > c429.at + 20 && c.at < c429.at + 2000 - 20);
  t.same(during.map((c) => `${c.method} ${String(c.params.chat_id)} +${c.at - c429.at} ms`), [], 'no call to the bot within retry_after');
  t.ok(actions('22').length >= 1, 'the other chat got its typing after it');
  const answer = emu.callsTo('sendMessage', TOKEN)[0] as RecordedCall;
  t.ok(answer.at - c429.at >= 2000 - 20, `the answer waited for the typing action's 429 (${answer.at - c429.at} ms)`);
});

t.test("a 429 to an answer quiets the bot's typing too", async (t) => {
  const replies = new ReplySender({ telegram, log });
  const n = notifier({ gate: replies });
  emu.failNext('sendMessage', { status: 429, retry_after: 2 });
  const answered = replies.send(TOKEN, '24', 'the answer');
  await waitFor429();
  for (let i = 0; i < 100 && replies.quietFor(TOKEN) === 0; i++) await sleep(10);
  const handle = n.start('alice', '25');
  await sleep(2000 + EVERY);
  handle.stop();
  await answered;
  const c429 = emu.calls.find((c) => c.status === 429) as RecordedCall;
  const typed = actions('25');
  t.ok(typed.length >= 1, 'typing once the bot may call again');
  t.ok((typed[0] as RecordedCall).at - c429.at >= 2000 - 20, `not within the answer's retry_after (${(typed[0] as RecordedCall).at - c429.at} ms)`);
});

async function waitFor429(): Promise<void> {
  await emu.waitFor((calls) => calls.some((c) => c.status === 429), { timeoutMs: 5_000 });
}
