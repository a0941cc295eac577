/**
 * The message path end to end: ingress → mailbox → forwarder → waker → runtime (real shim + agent
 * processes, local or as pods on the Kubernetes stand-in) → Telegram emulator, with the reference
 * agent or ZeroClaw (the emulator behind the stub LLM; test/support/scenario-agents.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { startTestPlatform, type TestPlatform } from './platform.js';
import { STARTING_UP_TEXT } from '../../services/forwarder/drainer.js';
import type { LocalRuntime } from '../../lib/runtime/local-runtime.js';
import { scenarioAgent, type ScenarioAgentName } from './scenario-agents.js';
import { processAlive as alive, waitUntil } from './wait.js';

/** The scenarios, run once per runtime and agent by test/delivery*.test.ts. */
export function deliveryScenarios(runtime: 'local' | 'kubernetes', agentName: ScenarioAgentName = 'reference'): void {
  const agent = scenarioAgent(agentName);
  const TOKEN = '111111111:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
  let p: TestPlatform;
  /** ZeroClaw runs only: Telegram behind a pass-through that can hold one chat's sendMessage. */
  let telegram: TelegramHold | undefined;
  let nextUpdateId = 1000;

  const message = (chatId: number, text: string, updateId = nextUpdateId++) => ({
    update_id: updateId,
    message: { message_id: updateId, date: Math.floor(Date.now() / 1000), chat: { id: chatId, type: 'private' }, from: { id: chatId, is_bot: false, first_name: 'u' }, text },
  });

  const answersTo = (chatId: number) => p.emulator.sentMessages(TOKEN).filter((m) => m.chat_id === chatId).map((m) => m.text);
  /** The agent's answers of a chat (no notices). */
  const repliesTo = (chatId: number) => answersTo(chatId).filter((a) => agent.said(a) !== undefined);
  /** What a chat saw: the notice as it is, each answer as the text it echoes. */
  const seenIn = (chatId: number) => answersTo(chatId).map((a) => (a === STARTING_UP_TEXT ? a : agent.said(a) ?? `<not an answer: ${a}>`));
  /** The memory count right after `answer`: the one it carries, else the agent's own store now. */
  const memoriesAfter = async (answer: string, tenantId = 'alice') => agent.countIn(answer) ?? agent.memories(p, tenantId);
  const occurrences = (list: readonly string[], text: string) => list.filter((s) => s === text).length;
  /** A pod's own log lines (the local runtime keeps them in a file per pod; none on the kube stand-in here). */
  const podLog = (pod: string): string[] => {
    if (p.kube || !pod) return [];
    const file = pod.startsWith('warm-pool-') ? path.join(p.config.dataDir, 'warm', pod, 'agent.log') : path.join(p.config.dataDir, 'tenants', pod.replace(/^zeroclaw-/, ''), 'agent.log');
    return existsSync(file) ? readFileSync(file, 'utf8').split('\n') : [];
  };
  const timeOf = (line: string) => /"time":"([^"]+)"/.exec(line)?.[1] ?? '';
  /** The OS pid of the tenant's pod (its shim): the local runtime's child, or the kubelet's container. */
  const shimPidOf = async (tenantId: string): Promise<number | undefined> => {
    if (p.kube) {
      const pod = (await p.clients.registry.get(tenantId))?.pod_name;
      return pod ? p.kube.kubelet.pidOf(pod) : undefined;
    }
    return (p.platform!.runtime as unknown as LocalRuntime).pidOf(tenantId);
  };

  t.before(async () => {
    const env: Record<string, string> = { ROUTER_PUBLIC_URL: 'https://bots.example.test', ...(await agent.env()) };
    if (agent.name === 'zeroclaw') {
      telegram = await TelegramHold.start();
      env.TELEGRAM_API_BASE = telegram.url;
    }
    p = await startTestPlatform({ full: true, runtime, env });
    telegram?.connect(p.emulator.url);
    p.emulator.addBot(TOKEN);
    const created = await p.ztm('tenant', 'create', 'alice', TOKEN);
    if (created.code !== 0) throw new Error(created.stderr);
  });
  t.teardown(async () => {
    await p.close();
    await telegram?.close();
    await agent.close();
  });

  t.test('first message to a sleeping tenant: one "Starting up", then the answer', async (t) => {
    const res = await p.postUpdate('alice', message(1, 'hello'));
    t.equal(res.status, 200);
    await waitUntil('the answer', () => answersTo(1).length >= 2);
    t.same(seenIn(1), [STARTING_UP_TEXT, 'hello']);
    t.equal(await memoriesAfter(answersTo(1)[1] as string), 1, 'the agent holds that one message');
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
    t.same(seenIn(2), ['only once']);
    t.equal(occurrences(await agent.stored(p, 'alice'), 'only once'), 1, 'stored once');
  });

  t.test('a sleeping tenant, 5 chats x 20 updates, one in flight per chat: one agent, order kept, each answered once', async (t) => {
    const sleep = await p.ztm('tenant', 'sleep', 'alice');
    t.equal(sleep.code, 0, sleep.stderr);
    const starts = () => p.logs.find('warm pool hit: reusing node').length + p.logs.find('warm pool miss: cold start').length;
    const before = starts();
    const memoriesBefore = 2;
    t.equal(await agent.memories(p, 'alice', 'saved'), memoriesBefore, 'the saved state holds the two messages so far');
    const chats = [101, 102, 103, 104, 105];
    const sent = (chat: number) => Array.from({ length: 20 }, (_, i) => `c${chat}-m${i}`);
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
    const allMemories: Array<number | undefined> = [];
    let notices = 0;
    for (const chat of chats) {
      const answers = answersTo(chat);
      notices += answers.filter((a) => a === STARTING_UP_TEXT).length;
      const replies = answers.filter((a) => a !== STARTING_UP_TEXT);
      t.same(replies.map((a) => agent.said(a)), sent(chat), `chat ${chat} in order, each once`);
      allMemories.push(...replies.map((a) => agent.countIn(a)));
    }
    t.equal(notices, 1, 'one starting notice for the wake');
    if (allMemories.every((n) => n !== undefined)) {
      t.same([...allMemories].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => memoriesBefore + i + 1), 'the agent stored each update exactly once');
    }
    // The agent's own store: every update once, each chat's in the order it was delivered.
    const held = await agent.stored(p, 'alice', 'live');
    t.equal(held.length, memoriesBefore + 100, 'the agent holds each update exactly once');
    for (const chat of chats) t.same(held.filter((m) => m.startsWith(`c${chat}-`)), sent(chat), `chat ${chat} stored in order, each once`);
  });

  t.test('a stale cached endpoint: invalidated, re-woken, delivered', async (t) => {
    await p.clients.redis.set('router:endpoint:alice', '127.0.0.1:1');
    t.equal((await p.postUpdate('alice', message(3, 'after stale'))).status, 200);
    await waitUntil('the answer', () => repliesTo(3).some((a) => agent.said(a) === 'after stale'));
    t.ok(p.logs.find('forward to pod failed, invalidating cache').length >= 1);
    t.not(await p.clients.redis.get('router:endpoint:alice'), '127.0.0.1:1');
  });

  t.test('agent killed mid-conversation: re-woken, memory continues from the checkpoint', async (t) => {
    const last = repliesTo(3);
    const count = await memoriesAfter(last[last.length - 1] as string);
    const logMark = p.logs.lines.length;
    const agentPid = await p.agentPidOf('alice');
    t.ok(agentPid, 'the agent runs');
    process.kill(agentPid as number, 'SIGKILL');
    await waitUntil('the agent is gone', () => !alive(agentPid as number), 10_000);
    // Whether the runtime's exit watch drops the endpoint first or the forwarder finds it dead
    // (and invalidates it), the next message must reach a new agent with the saved memory.
    t.equal((await p.postUpdate('alice', message(4, 'still there?'))).status, 200);
    await waitUntil('the answer', () => repliesTo(4).length >= 1, 60_000);
    const reply = repliesTo(4)[0] as string;
    t.equal(agent.said(reply), 'still there?');
    t.equal(await memoriesAfter(reply), count + 1, 'memory count continues');
    // The serving agent's death was noticed (a new pod may reuse the old address, so compare events).
    const noticed = p.logs.lines.slice(logMark).some((l) => /"msg":"(tenant pod exited|agent process exited|forward to pod failed, invalidating cache)"/.test(l));
    t.ok(noticed, 'the platform noticed the dead agent (exit watch or failed forward)');
  });

  t.test('sleep and wake again: memory intact (checkpoint on stop, restore on wake)', async (t) => {
    const last = repliesTo(4);
    const count = await memoriesAfter(last[last.length - 1] as string);
    t.equal((await p.ztm('tenant', 'sleep', 'alice')).code, 0);
    const tenant = JSON.parse((await p.ztm('tenant', 'get', 'alice', '--json')).stdout) as Record<string, unknown>;
    t.equal(tenant.status, 'idle');
    t.equal(await p.clients.redis.get('router:endpoint:alice'), null);
    t.equal(await agent.memories(p, 'alice', 'saved'), count, 'the saved state holds every memory');
    t.equal((await p.postUpdate('alice', message(5, 'back again'))).status, 200);
    await waitUntil('the answer', () => repliesTo(5).length >= 1);
    t.same(seenIn(5), [STARTING_UP_TEXT, 'back again']);
    t.equal(await memoriesAfter(answersTo(5)[1] as string), count + 1, 'memory restored, then the new message');
  });

  t.test('updates without text are acknowledged and counted, not forwarded', async (t) => {
    const sticker = { update_id: nextUpdateId++, message: { message_id: 1, date: 1, chat: { id: 6, type: 'private' }, sticker: { file_id: 'x' } } };
    t.equal((await p.postUpdate('alice', sticker)).status, 200);
    t.equal((await p.postUpdate('alice', message(6, 'text after sticker'))).status, 200);
    await waitUntil('the answer', () => repliesTo(6).some((a) => agent.said(a) === 'text after sticker'));
    t.equal(repliesTo(6).length, 1);
  });

  if (agent.name === 'zeroclaw') {
    // About the platform, not the agent: run with ZeroClaw only (whose state takes longest to
    // save), so the reference files keep exactly their scenarios.
    t.test('agent killed while its pod is slow to save: the wake restores what the dying pod saved, never an older state', async (t) => {
      // The shim of a killed agent saves the state after the agent died, then exits. Here it is held
      // (SIGSTOP) in that moment, as a slow S3 or a big state would hold it, while the forwarder finds
      // the agent dead and the tenant is woken again: the new pod must not restore the checkpoint
      // from before that final save (design: "A wake that follows a shutdown must restore the state
      // that shutdown saved, never an older one").
      const count = await agent.memories(p, 'alice', 'live');
      t.ok(count > 0, `alice holds ${count} messages`);
      const agentPid = await p.agentPidOf('alice');
      const podPid = await shimPidOf('alice');
      t.ok(agentPid && podPid, 'the agent and its pod run');
      const logMark = p.logs.lines.length;
      const oldPod = (await p.clients.registry.get('alice'))?.pod_name as string;
      process.kill(podPid as number, 'SIGSTOP');
      try {
        process.kill(agentPid as number, 'SIGKILL');
        t.equal((await p.postUpdate('alice', message(10, 'right after the crash'))).status, 200);
        // Long enough for a wake that does not wait for the dying pod to restore (and answer).
        await waitUntil('an answer, or 3 s', () => repliesTo(10).length >= 1, 3_000).catch(() => undefined);
      } finally {
        process.kill(podPid as number, 'SIGCONT');
      }
      await waitUntil('the answer', () => repliesTo(10).length >= 1, 60_000);
      const reply = repliesTo(10)[0] as string;
      t.equal(agent.said(reply), 'right after the crash');
      await waitUntil('the dying pod is gone', () => !alive(podPid as number), 30_000);
      const restored = await agent.memories(p, 'alice', 'live');
      t.equal(restored, count + 1, `the memory the dying pod saved, then the new message (held before the crash: ${count}, now: ${restored})`);
      const held = await agent.stored(p, 'alice', 'live');
      t.equal(occurrences(held, 'text after sticker'), 1, 'the last message before the crash is still held');
      // What happened, in order: the platform's events and the two pods' own lines about the state.
      const newPod = (await p.platform!.runtime.list()).find((i) => i.tenantId === 'alice')?.podName as string;
      t.comment(`pods: ${oldPod} (its agent killed) → ${newPod} (serving now)`);
      const platformEvents = p.logs.lines.slice(logMark).filter((l) => /"msg":"(warm pool hit: reusing node|warm pool miss: cold start|agent process exited|tenant pod exited|forward to pod failed, invalidating cache)"/.test(l));
      const podEvents = [...new Set([oldPod, newPod])].flatMap((pod) => podLog(pod).filter((l) => l.startsWith('{') && /"msg":"(restoring state|state restored|no saved state: starting fresh|agent exited unexpectedly|checkpoint saved|shim stopped)"/.test(l))
        .map((l) => `${pod}: ${l}`));
      t.comment([...platformEvents, ...podEvents].sort((a, b) => timeOf(a).localeCompare(timeOf(b))).join('\n'));
    });

    /**
     * ZeroClaw's idempotency is in memory: a new ZeroClaw process answers (and stores) an update it
     * already answered. The forwarder must not ask it: the answer waits in the outbox with its update.
     * Telegram holds the answer's sendMessage while the agent is restarted, then fails it (502), so
     * the forwarder delivers the update again, to the new ZeroClaw unless it resends the kept answer.
     */
    const restartScenario = (how: 'agent process killed' | 'whole pod killed (p.killPod)', chat: number, text: string) => async (t: Test) => {
      const hold = telegram as TelegramHold;
      const chatKey = String(chat);
      const forwarder = p.platform!.forwarder;
      const startPid = await p.agentPidOf('alice');
      t.ok(startPid, 'alice runs');
      const storedBefore = await agent.memories(p, 'alice', 'live');
      hold.holdChat(chat);
      const update = message(chat, text);
      t.equal((await p.postUpdate('alice', update)).status, 200);
      await waitUntil('the answer held on its way to Telegram', () => hold.held(chat) === 1);
      const { outbox } = await forwarder.mailbox.headWithOutbox('alice', chatKey);
      t.equal(agent.said(outbox?.answer ?? ''), text, 'the answer is kept in the outbox with its update');
      const kept = outbox?.answer as string;
      t.equal(agent.modelCallsFor(text), 1, 'ZeroClaw ran the turn once');
      t.equal(occurrences(await agent.stored(p, 'alice', 'live'), text), 1, 'and stored the message once');

      const logMark = p.logs.lines.length;
      const oldAddress = await p.clients.redis.get('router:endpoint:alice');
      if (how === 'agent process killed') process.kill(startPid as number, 'SIGKILL');
      else t.ok(await p.killPod('alice'), 'pod killed');
      await waitUntil('the old ZeroClaw is gone', () => !alive(startPid as number), 15_000);
      // Woken once the platform saw the pod go (its exit watch drops the endpoint): the pod's last
      // act may be saving the state, which the next one must restore (a wake during that save is the
      // scenario "agent killed while its pod is slow to save").
      await waitUntil('the old endpoint dropped', async () => (await p.clients.redis.get('router:endpoint:alice')) !== oldAddress, 15_000);
      const woken = await p.ztm('tenant', 'wake', 'alice', '--json');
      t.equal(woken.code, 0, woken.stderr);
      const newPid = await p.agentPidOf('alice');
      t.ok(newPid !== undefined && newPid !== startPid, `a new ZeroClaw process serves alice (${startPid} → ${newPid})`);
      t.equal(hold.held(chat), 1, 'the answer is still on its way');

      // Telegram fails the held send: the forwarder takes the update again.
      hold.fail(chat);
      await waitUntil('the answer reached the chat', () => answersTo(chat).length >= 1, 30_000);
      await new Promise((r) => setTimeout(r, 1000));
      t.same(answersTo(chat), [kept], 'one answer: the kept one');
      t.equal(hold.failed(chat), 1, 'after one failed send');
      t.equal(agent.modelCallsFor(text), 1, 'the new ZeroClaw was not asked again');
      const held = await agent.stored(p, 'alice', 'live');
      if (how === 'agent process killed') {
        // The shim saw its agent die and saved the state before exiting: the message is in the new one's memory.
        t.equal(occurrences(held, text), 1, 'the message is stored once, in the restored memory');
        t.equal(held.length, storedBefore + 1, 'and nothing else was stored');
      } else {
        // A pod killed at once keeps only its last checkpoint; what matters here: never a second copy.
        t.ok(occurrences(held, text) <= 1, `no second stored message (${occurrences(held, text)})`);
      }
      const resent = p.logs.find('sent the answer kept from an earlier delivery').filter((l) => l.update_id === update.update_id);
      t.equal(resent.length, 1, 'the forwarder resent the kept answer');
      t.equal((await forwarder.mailbox.headWithOutbox('alice', chatKey)).head, null, 'the update left the mailbox');
      t.notOk(p.logs.lines.slice(logMark).some((l) => l.includes('agent answered duplicate')), 'nothing reached ZeroClaw to call a duplicate');

      // Telegram delivers the update once more after all that: acknowledged, not answered again.
      t.equal((await p.postUpdate('alice', update)).status, 200);
      await new Promise((r) => setTimeout(r, 1000));
      t.same(answersTo(chat), [kept], 'still one answer');
      t.equal(agent.modelCallsFor(text), 1, 'still one turn');

      // The restarted agent carries on.
      const next = `${text}, then more`;
      t.equal((await p.postUpdate('alice', message(chat, next))).status, 200);
      await waitUntil('the next answer', () => repliesTo(chat).length >= 2, 30_000);
      t.equal(agent.said(repliesTo(chat)[1] as string), next);
      t.equal(occurrences(await agent.stored(p, 'alice', 'live'), next), 1);
    };
    t.test('ZeroClaw process killed while its answer waits for Telegram: the redelivery resends the kept answer, ZeroClaw is not asked again',
      restartScenario('agent process killed', 8, 'answer me once'));
    t.test('ZeroClaw pod killed while its answer waits for Telegram: the redelivery resends the kept answer, ZeroClaw is not asked again',
      restartScenario('whole pod killed (p.killPod)', 9, 'answer me once more'));
  }

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
    await waitUntil('the answer', () => repliesTo(7).some((a) => agent.said(a) === 'anyone?'));
  });

  t.test('no token in any log line', async (t) => {
    t.notOk(p.logs.text().includes(TOKEN.split(':')[1] as string));
    for (const secret of agent.secrets()) t.notOk(p.logs.text().includes(secret), 'nor the model provider key');
  });
}

/**
 * A pass-through in front of the Telegram emulator (whose address is known only once the platform
 * runs: `connect`) that holds the sendMessage calls of chosen chats until told to fail them, so a
 * test decides when Telegram's answer to a send comes and what it is.
 */
class TelegramHold {
  private upstream: string | undefined;
  private readonly waitingForUpstream: Array<() => void> = [];
  private readonly holding = new Set<string>();
  private readonly calls = new Map<string, ServerResponse[]>();
  private readonly failures = new Map<string, number>();

  private constructor(private readonly server: Server) {}

  static async start(): Promise<TelegramHold> {
    const server = createServer();
    const hold = new TelegramHold(server);
    server.on('request', (req, res) => void hold.handle(req, res).catch(() => res.destroy()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return hold;
  }

  get url(): string {
    const a = this.server.address() as AddressInfo;
    return `http://${a.address}:${a.port}`;
  }

  connect(upstream: string): void {
    this.upstream = upstream;
    for (const go of this.waitingForUpstream.splice(0)) go();
  }

  /** From now on, this chat's sendMessage calls wait in the hold. */
  holdChat(chatId: number): void {
    this.holding.add(String(chatId));
  }

  held(chatId: number): number {
    return this.calls.get(String(chatId))?.length ?? 0;
  }

  failed(chatId: number): number {
    return this.failures.get(String(chatId)) ?? 0;
  }

  /** Telegram fails the held calls (502) and passes the chat's later ones through. */
  fail(chatId: number): void {
    const chat = String(chatId);
    this.holding.delete(chat);
    for (const res of this.calls.get(chat)?.splice(0) ?? []) {
      this.failures.set(chat, this.failed(chatId) + 1);
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: false, error_code: 502, description: 'Bad Gateway' }));
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = req.url ?? '/';
    if (req.method === 'POST' && /\/sendMessage$/i.test(url.split('?')[0] as string)) {
      let chat = '';
      try {
        chat = String((JSON.parse(body.toString('utf8')) as { chat_id?: unknown }).chat_id);
      } catch {
        // not JSON: passed through
      }
      if (this.holding.has(chat)) {
        const list = this.calls.get(chat) ?? [];
        list.push(res);
        this.calls.set(chat, list);
        return;
      }
    }
    if (this.upstream === undefined) await new Promise<void>((resolve) => this.waitingForUpstream.push(resolve));
    const method = (req.method ?? 'GET') as 'GET';
    const withBody = method !== 'GET' && method !== 'HEAD';
    const contentType = req.headers['content-type'];
    const answer = await request(`${this.upstream}${url}`, {
      method, ...(withBody ? { body, headers: contentType ? { 'content-type': contentType } : {} } : {}),
    });
    const text = await answer.body.text();
    if (res.destroyed || res.writableEnded) return;
    res.writeHead(answer.statusCode, { 'content-type': String(answer.headers['content-type'] ?? 'application/json') });
    res.end(text);
  }

  async close(): Promise<void> {
    for (const list of this.calls.values()) for (const res of list.splice(0)) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
