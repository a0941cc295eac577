/**
 * Every wake an update asks for is tried (issue 12): a wake that fails is announced to the drains
 * waiting for it, and their next request must start a new wake, not be folded into the failed one.
 * The embedded default (real shims, real Redis) with an agent that exits before it is ready, so
 * each wake fails at once; with FORWARD_ATTEMPTS=N the update is dead-lettered after N wakes.
 */
import t from 'tap';
import { Queue } from 'bullmq';
import { startTestPlatform } from './support/platform.js';
import { waitUntil } from './support/wait.js';
import { QUEUES, QUEUE_PREFIX } from '../lib/queues.js';
import { WAKE_DONE_CHANNEL } from '../lib/delivery/endpoint-watch.js';
import { WAKE_FAILED_PREFIX, requestWake } from '../lib/wake/wake-contract.js';

const TOKEN = '333333333:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw3';
const ATTEMPTS = 3;

t.test(`an agent that exits at once: ${ATTEMPTS} wakes tried, then the dead letter`, async (t) => {
  const p = await startTestPlatform({ full: true, env: { AGENT_COMMAND: 'exit 3', FORWARD_ATTEMPTS: String(ATTEMPTS), WARM_POOL_TARGET: '0' } });
  t.teardown(() => p.close());
  p.emulator.addBot(TOKEN);
  const created = await p.ztm('tenant', 'create', 'crashy', TOKEN);
  t.equal(created.code, 0, created.stderr);

  const update = { update_id: 91, message: { message_id: 91, date: Math.floor(Date.now() / 1000), chat: { id: 9, type: 'private' }, from: { id: 9, is_bot: false, first_name: 'u' }, text: 'anyone?' } };
  const res = await p.postUpdate('crashy', update);
  t.equal(res.status, 200, res.body);
  // Before the fix the second request reused the failed job's id and was dropped: one wake, then
  // the drain waited out WAKE_WAIT_MS and a park before dead-lettering (the bound covers that).
  await waitUntil('a dead letter', async () => (await p.forwarderDeadLetters()) > 0, 120_000);

  const wakes = p.logs.find('wake failed');
  t.equal(wakes.length, ATTEMPTS, `one wake per attempt (${wakes.map((w) => String(w.err && (w.err as { message?: string }).message)).join(' | ')})`);
  t.ok(wakes.every((w) => /exited before it was ready/.test(JSON.stringify(w))), 'each failed because the agent exited');
  const list = await p.ztm('dead', 'list', '--json');
  t.equal(list.code, 0, list.stderr);
  const items = (JSON.parse(list.stdout) as { items: Array<{ tenant_id: string; attempts: number; reason: string }> }).items;
  t.equal(items.length, 1, 'the update is in the dead letters');
  t.equal(items[0]?.attempts, ATTEMPTS, 'its attempts are the wakes it asked for');
  t.ok(items[0]?.reason.startsWith(`${WAKE_FAILED_PREFIX}crash_loop: agent process for crashy exited before it was ready`), `the operator sees the wake's reason and the runtime's code: ${items[0]?.reason}`);
  t.ok(wakes.every((w) => w.start_reason === 'crash_loop' && w.wake_failure === 'start-failed'), '`wake failed` names the start failure reason');
  const got = await p.ztm('tenant', 'get', 'crashy', '--json');
  const view = JSON.parse(got.stdout) as { last_wake_failure?: string; last_wake_failure_at?: string };
  t.match(view.last_wake_failure, /^wake failed: crash_loop: agent process for crashy exited/, 'ztm tenant get shows the last wake failure');
  t.ok(view.last_wake_failure_at && Date.parse(view.last_wake_failure_at) > Date.now() - 300_000, `and when: ${view.last_wake_failure_at}`);
  t.equal(await p.clients.redis.exists('tenant:waking:crashy'), 0, 'wake lock released');
});

t.test('a wake requested the moment a failed wake is announced is tried, not folded into the failed one', async (t) => {
  const p = await startTestPlatform({ full: true, env: { AGENT_COMMAND: 'exit 3', WARM_POOL_TARGET: '0' } });
  const queue = new Queue(QUEUES.wake, { connection: p.clients.bull, prefix: QUEUE_PREFIX });
  const listener = p.clients.redis.duplicate();
  t.teardown(async () => {
    listener.disconnect();
    await queue.close();
    await p.close();
  });
  p.emulator.addBot(TOKEN);
  t.equal((await p.ztm('tenant', 'create', 'again', TOKEN)).code, 0);

  // Asked again at once on the first announcement, as a waiting drain does (before the fix the
  // failed wake's job, id `wake.again`, was still active then: the request was dropped).
  let announcements = 0;
  const asked: Array<Promise<void>> = [];
  await listener.subscribe(WAKE_DONE_CHANNEL);
  listener.on('message', (_channel: string, tenantId: string) => {
    if (tenantId !== 'again' || ++announcements > 1) return;
    asked.push(requestWake(queue, 'again'));
  });
  await requestWake(queue, 'again');
  await waitUntil('two failed wakes', () => p.logs.find('wake failed').length >= 2, 20_000)
    .then(() => t.pass('the second request started a second wake'), (err: Error) => t.fail(`${err.message} (wakes tried: ${p.logs.find('wake failed').length})`));
  await Promise.all(asked);
  await waitUntil('the second wake announced', () => announcements >= 2, 10_000);
  t.equal(p.logs.find('wake failed').length, 2, 'exactly the two requested wakes ran');
});
