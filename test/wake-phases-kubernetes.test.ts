/**
 * `ztm tenant wake` on the Kubernetes runtime (API stand-in with a scaled clock, simulated kubelet,
 * real shims): the operator sees the phases of a cold start as they change (waiting for a node,
 * pulling image, starting, restoring state, ready), `ztm tenant get` the phase while it lasts; a
 * pod that can never start (its image cannot be pulled) fails the wake with its reason, shown by
 * `ztm tenant wake` (non-zero exit) and kept in `ztm tenant get`.
 */
import t from 'tap';
import { startTestPlatform } from './support/platform.js';
import { waitUntil } from './support/wait.js';

const SCALE = 0.02;
const TOKENS = { kilo: '420000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1', lima: '420000002:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw2' };

const p = await startTestPlatform({ full: true, runtime: 'kubernetes', env: { WARM_POOL_TARGET: '0', WAKE_LOCK_TTL_S: '10', COLD_START_TIMEOUT_S: '60' } });
t.teardown(() => p.close());
const api = p.kube?.api;
if (!api) throw new Error('no Kubernetes stand-in');
for (const [id, token] of Object.entries(TOKENS)) {
  p.emulator.addBot(token);
  const created = await p.ztm('tenant', 'create', id, token);
  if (created.code !== 0) throw new Error(`tenant create ${id}: ${created.stderr}`);
}
t.afterEach(() => api.behaviour.reset());

const progressLines = (stderr: string): string[] => stderr.split('\n').filter((l) => l.startsWith('… ')).map((l) => l.slice(2));

t.test('a cold start that waits for a node and pulls its image: each phase printed once, in order', async (t) => {
  // 300 simulated s of node provisioning (6 s) and a 100 s pull (2 s).
  api.behaviour.set({ timeScale: SCALE, scheduling: { provisionS: 300, nominate: true }, images: { pullS: 100 } });
  let midWake: Record<string, unknown> | undefined;
  const wake = p.ztm('tenant', 'wake', 'kilo');
  for (let i = 0; i < 100 && !midWake; i++) {
    const got = JSON.parse((await p.ztm('tenant', 'get', 'kilo', '--json')).stdout) as Record<string, unknown>;
    if (typeof got.wake_phase === 'string' && got.wake_phase.startsWith('waiting for a node')) midWake = got;
    else await new Promise((r) => setTimeout(r, 200));
  }
  const r = await wake;
  t.equal(r.code, 0, r.stderr);
  const lines = progressLines(r.stderr);
  const phaseOf = (l: string): string => l.replace(/ \(.*$/, '');
  const phases = lines.map(phaseOf).filter((l) => ['scheduling', 'waiting for a node', 'pulling image', 'starting', 'restoring state', 'ready'].includes(l));
  const distinct = phases.filter((ph, i) => ph !== phases[i - 1]);
  const order = ['scheduling', 'waiting for a node', 'pulling image', 'starting', 'restoring state', 'ready'];
  t.same(distinct.filter((ph) => ph !== 'scheduling' && ph !== 'starting'), ['waiting for a node', 'pulling image', 'restoring state', 'ready'], `the phases that last, in order (${lines.join(' | ')})`);
  t.same([...distinct].sort((a, b) => order.indexOf(a) - order.indexOf(b)), distinct, 'never out of order');
  t.ok(lines.some((l) => /^waiting for a node \(.*(Unschedulable|nodes are available|nominated)/.test(l)), 'the wait for a node says what the scheduler said');
  t.equal(new Set(lines).size, lines.length, 'no line printed twice');
  t.match(midWake, { wake_phase: /^waiting for a node/ }, 'ztm tenant get showed the phase meanwhile');
  // `ready` is recorded before the waker marks the record running.
  await waitUntil('the record marked running', async () => (await p.clients.registry.get('kilo'))?.status === 'running', 15_000).catch(() => undefined);
  const after = JSON.parse((await p.ztm('tenant', 'get', 'kilo', '--json')).stdout) as Record<string, unknown>;
  t.notOk('wake_phase' in after, 'and none once awake');
  t.equal(after.status, 'running');
});

t.test('an image that cannot be pulled: the wake fails with image_pull_failed, said by ztm tenant wake and kept by ztm tenant get', async (t) => {
  const image = p.config.zeroclawImage;
  api.behaviour.set({ timeScale: SCALE, images: { faults: { [image]: 'InvalidImageName' } } });
  const r = await p.ztm('tenant', 'wake', 'lima');
  t.not(r.code, 0, 'ztm tenant wake fails');
  t.match(r.stderr, /wake failed: image_pull_failed: /, `with the reason (${r.stderr.trim().split('\n').at(-1)})`);
  const got = JSON.parse((await p.ztm('tenant', 'get', 'lima', '--json')).stdout) as Record<string, unknown>;
  t.match(got, { last_wake_failure: /^wake failed: image_pull_failed: /, last_wake_failure_at: String }, 'ztm tenant get keeps it');
  t.notOk('wake_phase' in got, 'no phase: the wake is over');
  const failed = p.logs.find('wake failed').filter((l) => l.tenant === 'lima');
  t.match(failed[0], { wake_failure: 'start-failed', start_reason: 'image_pull_failed' }, '`wake failed` names it');
});
