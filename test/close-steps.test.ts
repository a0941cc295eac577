/**
 * closeInOrder (lib/platform/close-steps.ts): steps run in the order given, a throwing step, a
 * rejecting step and a hanging step are logged by name and do not stop the steps after them, and
 * it never throws; a builder's CloseChain runs reversed, and a failed start closes what was built.
 */
import t from 'tap';
import { closeInOrder } from '../lib/platform/close-steps.js';
import { CloseChain, startOrClose, type BuiltService } from '../lib/platform/service-parts.js';
import { LogCapture } from './support/log-capture.js';

t.test('runs every step in order; failures and hangs are logged by name and skipped', async (t) => {
  const capture = new LogCapture();
  const log = capture.logger('close-steps-test');
  const ran: string[] = [];
  let hungStarted = false;
  await closeInOrder([
    ['ingress', async () => { ran.push('ingress'); }],
    ['throwing step', () => { ran.push('throwing step'); throw new Error('boom-sync'); }],
    ['rejecting step', async () => { ran.push('rejecting step'); throw new Error('boom-async'); }],
    ['hung step', () => { ran.push('hung step'); hungStarted = true; return new Promise<void>(() => undefined); }],
    ['absent step', () => undefined],
    ['clients', async () => { ran.push('clients'); }],
  ], log, { stepTimeoutMs: 50 });
  t.same(ran, ['ingress', 'throwing step', 'rejecting step', 'hung step', 'clients'], 'every step ran, in the given order');
  t.ok(hungStarted);
  const failed = capture.find('failed');
  t.same(failed.map((e) => e.step), ['throwing step', 'rejecting step'], 'each failing step is named');
  t.match(JSON.stringify(failed[0]), /boom-sync/, 'with its error');
  const hung = capture.find('timed out');
  t.same(hung.map((e) => e.step), ['hung step'], 'the hung step is named');
  t.equal(capture.find('closing ingress').length, 0, 'a step that closed cleanly logs nothing');
});

t.test('an empty list closes nothing and resolves', async (t) => {
  const capture = new LogCapture();
  await closeInOrder([], capture.logger('close-steps-test'));
  t.equal(capture.lines.length, 0);
});

t.test('CloseChain closes in reverse order of construction; startOrClose closes a service whose start failed', async (t) => {
  const capture = new LogCapture();
  const log = capture.logger('close-steps-test');
  const closed: string[] = [];
  const chain = new CloseChain(log, 50);
  for (const part of ['runtime', 'queue', 'worker']) chain.add(part, async () => { closed.push(part); });
  const service: BuiltService = {
    start: () => Promise.reject(new Error('port in use')),
    close: () => chain.close(),
  };
  await t.rejects(startOrClose(service), /port in use/, 'the start failure is what the caller sees');
  t.same(closed, ['worker', 'queue', 'runtime'], 'everything built was closed, last built first');
});

t.test('withTimeout: the outcome when in time, TIMED_OUT when not, a synchronous throw as a rejection', async (t) => {
  const { withTimeout, TIMED_OUT } = await import('../lib/platform/close-steps.js');
  t.equal(await withTimeout(async () => 'done', 1000), 'done');
  t.equal(await withTimeout(() => new Promise((r) => setTimeout(() => r('late'), 200)), 20), TIMED_OUT);
  await t.rejects(withTimeout(() => { throw new Error('sync'); }, 1000), /sync/);
});
