/**
 * The message path end to end: ingress → mailbox → forwarder → waker → runtime (real shim +
 * reference agent processes, local or as pods on the Kubernetes stand-in) → Telegram emulator.
 */
import t from 'tap';
import { startTestPlatform, type TestPlatform } from './platform.js';
import { STARTING_UP_TEXT } from '../../services/forwarder/drainer.js';
import { waitUntil } from './wait.js';

/** The scenarios, run once per runtime by test/delivery*.test.ts. */
export function deliveryScenarios(runtime: 'local' | 'kubernetes'): void {

  const TOKEN = '111111111:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
  let p: TestPlatform;
  let nextUpdateId = 1000;

  const message = (chatId: number, text: string, updateId = nextUpdateId++) => ({
    update_id: updateId,
    message: { message_id: updateId, date: Math.floor(Date.now() / 1000), chat: { id: chatId, type: 'private' }, from: { id: chatId, is_bot: false, first_name: 'u' }, text },
  });

  const answersTo = (chatId: number) => p.emulator.sentMessages(TOKEN).filter((m) => m.chat_id === chatId).map((m) => m.text);
  const memoriesIn = (text: string) => Number(/memories: (\d+)\)/.exec(text)?.[1] ?? NaN);


  t.before(async () => {
    p = await startTestPlatform({ full: true, runtime, env: { ROUTER_PUBLIC_URL: 'https://bots.example.test' } });
    p.emulator.addBot(TOKEN);
    const created = await p.ztm('tenant', 'create', 'alice', TOKEN);
    if (created.code !== 0) throw new Error(created.stderr);
  });
  t.teardown(() => p.close());

  t.test('first message to a sleeping tenant: one "Starting up", then the answer', async (t) => {
    const res = await p.postUpdate('alice', message(1, 'hello'));
    t.equal(res.status, 200);
    await waitUntil('the answer', () => answersTo(1).length >= 2);
    t.same(answersTo(1), [STARTING_UP_TEXT, 'You said: hello (memories: 1)']);
    const tenant = JSON.parse((await p.ztm('tenant', 'get', 'alice', '--json')).stdout) as Record<string, unknown>;
    t.equal(tenant.status, 'running');
    t.match(tenant.pod_name, /^(zeroclaw-alice|warm-pool-[0-9a-f]+)$/, 'its own pod, cold or claimed from the warm pool');
    t.match(await p.clients.redis.get('router:endpoint:alice'), /^127\.\d+\.\d+\.\d+:\d+$/);
    t.equal(await p.clients.redis.exists('tenant:waking:alice'), 0, 'wake lock released');
    t.ok(p.logs.find('forwarded to pod').length >= 1);
  });

  t.test('a duplicate update_id from Telegram is answered once', async (t) => {
    const update = message(2, 'only once');
    t.equal((await p.postUpdate('alice', update)).status, 200);
    t.equal((await p.postUpdate('alice', update)).status, 200);
    await waitUntil('the answer', () => answersTo(2).length >= 1);
    await new Promise((r) => setTimeout(r, 500));
    t.equal(answersTo(2).length, 1);
  });

  t.test('a sleeping tenant, 5 chats x 20 updates, one in flight per chat: one agent, order kept, each answered once', async (t) => {
    const sleep = await p.ztm('tenant', 'sleep', 'alice');
    t.equal(sleep.code, 0, sleep.stderr);
    const starts = () => p.logs.find('warm pool hit: reusing node').length + p.logs.find('warm pool miss: cold start').length;
    const before = starts();
    const memoriesBefore = 2;
    const chats = [101, 102, 103, 104, 105];
    await Promise.all(chats.map(async (chat) => {
      for (let i = 0; i < 20; i++) {
        const res = await p.postUpdate('alice', message(chat, `c${chat}-m${i}`));
        if (res.status !== 200) throw new Error(`update refused: ${res.status}`);
      }
    }));
    await waitUntil('100 answers', () => chats.every((c) => answersTo(c).filter((a) => a !== STARTING_UP_TEXT).length >= 20), 60_000);
    await new Promise((r) => setTimeout(r, 300));
    t.equal(starts() - before, 1, 'exactly one agent was started');
    t.equal((await p.platform!.runtime.list()).length, 1);
    const allMemories: number[] = [];
    let notices = 0;
    for (const chat of chats) {
      const answers = answersTo(chat);
      notices += answers.filter((a) => a === STARTING_UP_TEXT).length;
      const replies = answers.filter((a) => a !== STARTING_UP_TEXT);
      t.same(replies.map((a) => /You said: (\S+)/.exec(a)?.[1]), Array.from({ length: 20 }, (_, i) => `c${chat}-m${i}`), `chat ${chat} in order, each once`);
      allMemories.push(...replies.map(memoriesIn));
    }
    t.equal(notices, 1, 'one starting notice for the wake');
    t.same([...allMemories].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => memoriesBefore + i + 1), 'the agent stored each update exactly once');
  });

  t.test('a stale cached endpoint: invalidated, re-woken, delivered', async (t) => {
    await p.clients.redis.set('router:endpoint:alice', '127.0.0.1:1');
    t.equal((await p.postUpdate('alice', message(3, 'after stale'))).status, 200);
    await waitUntil('the answer', () => answersTo(3).some((a) => a.startsWith('You said: after stale')));
    t.ok(p.logs.find('forward to pod failed, invalidating cache').length >= 1);
    t.not(await p.clients.redis.get('router:endpoint:alice'), '127.0.0.1:1');
  });

  t.test('agent killed mid-conversation: re-woken, memory continues from the checkpoint', async (t) => {
    const last = answersTo(3).filter((a) => a.startsWith('You said'));
    const count = memoriesIn(last[last.length - 1] as string);
    const logMark = p.logs.lines.length;
    const agentPid = await p.agentPidOf('alice');
    t.ok(agentPid, 'the agent runs');
    process.kill(agentPid as number, 'SIGKILL');
    await waitUntil('the agent is gone', () => {
      try {
        process.kill(agentPid as number, 0);
        return false;
      } catch {
        return true;
      }
    }, 10_000);
    // Whether the runtime's exit watch drops the endpoint first or the forwarder finds it dead
    // (and invalidates it), the next message must reach a new agent with the saved memory.
    t.equal((await p.postUpdate('alice', message(4, 'still there?'))).status, 200);
    await waitUntil('the answer', () => answersTo(4).some((a) => a.startsWith('You said')), 60_000);
    const reply = answersTo(4).find((a) => a.startsWith('You said')) as string;
    t.equal(memoriesIn(reply), count + 1, 'memory count continues');
    // The serving agent's death was noticed (a new pod may reuse the old address, so compare events).
    const noticed = p.logs.lines.slice(logMark).some((l) => /"msg":"(tenant pod exited|agent process exited|forward to pod failed, invalidating cache)"/.test(l));
    t.ok(noticed, 'the platform noticed the dead agent (exit watch or failed forward)');
  });

  t.test('sleep and wake again: memory intact (checkpoint on stop, restore on wake)', async (t) => {
    const last = answersTo(4).filter((a) => a.startsWith('You said'));
    const count = memoriesIn(last[last.length - 1] as string);
    t.equal((await p.ztm('tenant', 'sleep', 'alice')).code, 0);
    const tenant = JSON.parse((await p.ztm('tenant', 'get', 'alice', '--json')).stdout) as Record<string, unknown>;
    t.equal(tenant.status, 'idle');
    t.equal(await p.clients.redis.get('router:endpoint:alice'), null);
    t.equal((await p.postUpdate('alice', message(5, 'back again'))).status, 200);
    await waitUntil('the answer', () => answersTo(5).some((a) => a.startsWith('You said')));
    t.same(answersTo(5), [STARTING_UP_TEXT, `You said: back again (memories: ${count + 1})`]);
  });

  t.test('updates without text are acknowledged and counted, not forwarded', async (t) => {
    const sticker = { update_id: nextUpdateId++, message: { message_id: 1, date: 1, chat: { id: 6, type: 'private' }, sticker: { file_id: 'x' } } };
    t.equal((await p.postUpdate('alice', sticker)).status, 200);
    t.equal((await p.postUpdate('alice', message(6, 'text after sticker'))).status, 200);
    await waitUntil('the answer', () => answersTo(6).some((a) => a.startsWith('You said: text after sticker')));
    t.equal(answersTo(6).filter((a) => a.startsWith('You said')).length, 1);
  });

  t.test('manual wake with ztm', async (t) => {
    t.equal((await p.ztm('tenant', 'sleep', 'alice')).code, 0);
    const r = await p.ztm('tenant', 'wake', 'alice', '--json');
    t.equal(r.code, 0, r.stderr);
    t.match(JSON.parse(r.stdout), { tenant_id: 'alice', address: /^127\.\d+\.\d+\.\d+:\d+$/ });
    t.equal((await p.ztm('tenant', 'sleep', 'alice')).code, 0);
    const human = await p.ztm('tenant', 'wake', 'alice');
    t.equal(human.code, 0, human.stderr);
    t.match(human.stderr, /… wake requested/, 'progress is shown while waking');
    t.match(human.stdout, /address\s+127\./);
  });

  t.test('an unknown tenant: updates are dead-lettered, listable and retryable', async (t) => {
    t.equal((await p.postUpdate('ghost', message(7, 'anyone?'))).status, 200);
    await waitUntil('a dead letter', async () => (await p.forwarderDeadLetters()) > 0);
    const list = await p.ztm('dead', 'list', '--json');
    t.equal(list.code, 0, list.stderr);
    const items = JSON.parse(list.stdout) as { items: Array<{ id: string; tenant_id: string; reason: string }> };
    t.equal(items.items[0]?.tenant_id, 'ghost');
    t.match(items.items[0]?.reason, /unknown tenant/);
    t.equal((await p.ztm('tenant', 'create', 'ghost', TOKEN)).code, 0);
    const retry = await p.ztm('dead', 'retry', items.items[0]!.id);
    t.equal(retry.code, 0, retry.stderr);
    await waitUntil('the answer', () => answersTo(7).some((a) => a.startsWith('You said: anyone?')));
  });

  t.test('no token in any log line', async (t) => {
    t.notOk(p.logs.text().includes(TOKEN.split(':')[1] as string));
  });
}
