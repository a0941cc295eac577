/**
 * Lifecycle on the embedded default: idle shutdown with state saved, the reconciler's repairs, the
 * warm pool (hit, replenish, shrink, no overshoot), the stop/wake race, and the delete path, with
 * the reference agent or ZeroClaw (the emulator behind the stub LLM; test/support/scenario-agents.ts).
 */
import t from 'tap';
import { CoreV1Api } from '@kubernetes/client-node';
import { startTestPlatform, type TestPlatform } from './platform.js';
import { PoolKeeper } from '../../services/pool-keeper/pool-keeper.js';
import { scenarioAgent, type ScenarioAgentName } from './scenario-agents.js';
import { waitUntil } from './wait.js';
import { incarnationKey } from '../../lib/keys.js';

/**
 * The scenarios, run once per runtime and agent by test/lifecycle*.test.ts. `raceCycles`: the
 * stop/wake race's cycles (each wakes an agent: ZeroClaw's take longer to start).
 */
export function lifecycleScenarios(runtime: 'local' | 'kubernetes', agentName: ScenarioAgentName = 'reference', o: { raceCycles?: number } = {}): void {
  const agent = scenarioAgent(agentName);
  const raceCycles = o.raceCycles ?? 50;

  const TOKEN = '222222222:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
  let p: TestPlatform;
  let nextUpdateId = 5000;
  const message = (chatId: number, text: string) => {
    const id = nextUpdateId++;
    return { update_id: id, message: { message_id: id, date: 1, chat: { id: chatId, type: 'private' }, text } };
  };
  const replies = (chatId: number) => p.emulator.sentMessages(TOKEN).filter((m) => m.chat_id === chatId && agent.said(m.text) !== undefined).map((m) => m.text);
  /** The memory count right after `answer`: the one it carries, else the agent's own store now. */
  const memoriesAfter = async (answer: string, tenantId: string) => agent.countIn(answer) ?? agent.memories(p, tenantId);
  const status = async (id: string) => (await p.clients.registry.get(id))?.status;


  async function ask(tenant: string, chat: number, text: string): Promise<string> {
    const before = replies(chat).length;
    const res = await p.postUpdate(tenant, message(chat, text));
    if (res.status !== 200) throw new Error(`ingress answered ${res.status}`);
    await waitUntil(`answer to ${text}`, () => replies(chat).length > before);
    return replies(chat)[before] as string;
  }

  t.before(async () => {
    p = await startTestPlatform({ full: true, runtime, env: { IDLE_CHECK_INTERVAL_S: '1', RECONCILE_INTERVAL_S: '1', WARM_POOL_TARGET: '1', ...(await agent.env()) } });
    p.emulator.addBot(TOKEN);
    for (const id of ['idler', 'crashy', 'racer', 'doomed']) {
      const r = await p.ztm('tenant', 'create', id, TOKEN, '--idle-timeout', id === 'idler' ? '2' : '3600');
      if (r.code !== 0) throw new Error(r.stderr);
    }
    await waitUntil('a claimable warm member', async () => (await p.platform!.runtime.countReadyWarm()) === 1);
  });
  t.teardown(async () => {
    const s = Date.now();
    await p.close();
    await agent.close();
    t.comment(`teardown ${Date.now() - s} ms`);
  });

  t.test('a message wakes from the warm pool; silence stops it with state saved; the next wakes with memory', async (t) => {
    const first = await ask('idler', 1, 'one');
    t.equal(agent.said(first), 'one');
    t.equal(await memoriesAfter(first, 'idler'), 1);
    t.ok(p.logs.find('warm pool hit: reusing node').length >= 1, 'woken from the warm pool');
    await waitUntil('idle shutdown', async () => (await status('idler')) === 'idle', 20_000);
    t.ok(p.logs.find('idle check: terminating idle tenant').some((l) => l.tenant === 'idler'));
    t.ok(await p.clients.state.head((await p.clients.registry.get('idler')) ?? 'idler'), 'state saved in S3 (under its incarnation)');
    t.equal(await agent.memories(p, 'idler', 'saved'), 1, 'the saved state holds the message');
    t.equal(await p.clients.redis.get('router:endpoint:idler'), null);
    t.ok((await p.clients.registry.get('idler'))?.last_active_at, 'last_active_at written at stop');
    const second = await ask('idler', 1, 'two');
    t.equal(agent.said(second), 'two');
    t.equal(await memoriesAfter(second, 'idler'), 2, 'memory intact after sleep');
    await waitUntil('a claimable warm member again', async () => (await p.platform!.runtime.countReadyWarm()) === 1);
  });

  t.test('running agents get fresh presigned state URLs before theirs expire', async (t) => {
    await ask('crashy', 2, 'before refresh');
    const refreshed = await p.platform!.janitor.lifecycleWorker!.refreshStateUrls(0);
    t.ok(refreshed.includes('crashy'), 'the shim accepted fresh URLs (authenticated)');
    t.same(await p.platform!.janitor.lifecycleWorker!.refreshStateUrls(), [], 'fresh URLs are not refreshed again');
  });

  t.test('an agent killed by hand is repaired by the reconciler within an interval', async (t) => {
    await ask('crashy', 2, 'hi');
    t.equal(await status('crashy'), 'running');
    t.ok(await p.killPod('crashy'), 'pod killed by hand');
    await waitUntil('reconciler reset', async () => (await status('crashy')) === 'idle', 10_000);
    t.ok(p.logs.find('reconciler: pod missing, resetting state').some((l) => l.tenant === 'crashy'));
    t.equal(agent.said(await ask('crashy', 2, 'again')), 'again');
  });

  t.test("the reconciler's full pass restores the incarnation index the ingress verifies webhooks against", async (t) => {
    const key = incarnationKey('racer');
    const incarnation = (await p.clients.registry.get('racer'))?.incarnation;
    t.ok(incarnation, 'the tenant has an incarnation');
    t.equal(await p.clients.redis.get(key), incarnation, 'published at create');
    await p.clients.redis.del(key); // Redis lost it (a flush, a failover without the write)
    await p.platform!.janitor.lifecycleWorker!.reconcile({ fullPass: true });
    t.equal(await p.clients.redis.get(key), incarnation, 'written again from the registry');
  });

  t.test('the reconciler clears stale wake locks and deletes agents of tenants that are not running', async (t) => {
    await p.clients.redis.set('tenant:waking:nobody', 'x', 'EX', 100);
    await waitUntil('lock cleared', async () => (await p.clients.redis.exists('tenant:waking:nobody')) === 0, 10_000);
    t.pass('stale wake lock cleared');
    await ask('doomed', 3, 'hi');
    // The answer can arrive before the waker's last registry write (running): set idle after it.
    await waitUntil('doomed running', async () => (await p.clients.registry.get('doomed'))?.status === 'running', 10_000);
    await p.clients.registry.update('doomed', { status: 'idle' });
    await waitUntil('orphan agent stopped', async () => !(await p.platform!.runtime.list()).some((i) => i.tenantId === 'doomed'), 10_000);
    t.ok(p.logs.find('reconciler: pod without a running tenant').length >= 1);
  });

  t.test('warm pool: never overshoots with two keepers; shrinks when the target drops', async (t) => {
    const runtime = p.platform!.runtime;
    const log = p.logs.logger('keeper-test');
    const a = new PoolKeeper({ pool: runtime, redis: p.clients.redis, log, target: 3 });
    const b = new PoolKeeper({ pool: runtime, redis: p.clients.redis, log, target: 3 });
    p.platform!.poolKeeper.setTarget(3);
    for (let i = 0; i < 10; i++) {
      await Promise.all([a.tick(), b.tick()]);
      t.ok((await runtime.countWarm()) <= 3, 'never above the target');
    }
    t.equal(await runtime.countWarm(), 3);
    for (const k of [a, b]) k.setTarget(1);
    p.platform!.poolKeeper.setTarget(1);
    // The platform's own keeper may hold the keepers' lock at this instant (a.tick() then does
    // nothing) or be mid-tick with the old target: shrinking must happen within a few ticks.
    await waitUntil('warm pool shrunk to 1', async () => {
      await a.tick();
      return (await runtime.countWarm()) === 1;
    }, 10_000);
    t.equal(await runtime.countWarm(), 1, 'shrunk to the new target');
    t.ok(p.logs.find('warm pool: shrunk').length >= 1);
  });

  t.test(`stop/wake race, ${raceCycles} rapid cycles: never delivered to a dying agent, memory never goes back`, async (t) => {
    let last = await memoriesAfter(await ask('racer', 4, 'start'), 'racer');
    let regressions = 0;
    for (let i = 0; i < raceCycles; i++) {
      const before = replies(4).length;
      const [res] = await Promise.all([
        p.postUpdate('racer', message(4, `r${i}`)),
        p.platform!.lifecycle.sleep('racer').catch(() => undefined),
      ]);
      t.equal(res.status, 200);
      await waitUntil(`answer ${i}`, () => replies(4).length > before, 30_000);
      const answer = replies(4)[before] as string;
      if (agent.said(answer) !== `r${i}`) t.fail(`answer ${i} echoes ${JSON.stringify(agent.said(answer))}`);
      // The sleep has returned: the tenant is asleep with its state saved, or awake again for this message.
      const count = await memoriesAfter(answer, 'racer');
      if (count !== last + 1) regressions++;
      last = count;
    }
    t.equal(regressions, 0, 'each answer shows exactly one more memory than the one before');
    t.equal(replies(4).length, raceCycles + 1, 'every message answered exactly once');
    const held = await agent.stored(p, 'racer');
    t.same(held, ['start', ...Array.from({ length: raceCycles }, (_, i) => `r${i}`)], 'the agent holds each message once, in order');
  });

  t.test('delete: agent, state, cache, lock, record; twice is harmless', async (t) => {
    await ask('doomed', 5, 'last words');
    const core = p.kube?.api.kubeConfig(p.config.k8sNamespace).makeApiClient(CoreV1Api);
    const secretName = 'zeroclaw-doomed-token';
    if (core) {
      const rotated = '333333333:AAHrotatedtokenAAAAAAAAAAAAAAAAAAAAA';
      p.emulator.addBot(rotated);
      t.equal((await p.ztm('tenant', 'update', 'doomed', '--bot-token', rotated)).code, 0);
      const secret = await core.readNamespacedSecret({ name: secretName, namespace: p.config.k8sNamespace });
      t.equal(Buffer.from(secret.data?.BOT_TOKEN ?? '', 'base64').toString(), rotated, 'token Secret rotated on update');
    }
    const doomed = (await p.clients.registry.get('doomed')) ?? 'doomed';
    const r = await p.ztm('tenant', 'delete', 'doomed', '--purge-state');
    t.equal(r.code, 0, r.stderr);
    t.notOk((await p.platform!.runtime.list()).some((i) => i.tenantId === 'doomed'), 'agent stopped');
    t.equal(await p.clients.state.head(doomed), undefined, 'state purged');
    t.equal(await p.clients.redis.get('router:endpoint:doomed'), null);
    t.equal(await p.clients.registry.get('doomed'), undefined);
    if (core) {
      await t.rejects(core.readNamespacedSecret({ name: secretName, namespace: p.config.k8sNamespace }), 'token Secret deleted');
      const pods = await core.listNamespacedPod({ namespace: p.config.k8sNamespace, labelSelector: 'tenant=doomed' });
      t.equal(pods.items.length, 0, 'no pod left');
    }
    const again = await p.ztm('tenant', 'delete', 'doomed');
    t.equal(again.code, 1);
    t.match(again.stderr, /not found/);
  });
}
