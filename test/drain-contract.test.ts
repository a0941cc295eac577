/**
 * The drain job's contract (lib/delivery/drain-contract.ts): what the mailbox adds parses back to
 * the same drain; a payload or id it never makes does not, so the forwarder drops it whole.
 */
import t from 'tap';
import { DRAIN_JOB_NAME, drainJobId, drainJobOpts, parseDrainJob } from '../lib/delivery/drain-contract.js';

t.test('a drain job as the mailbox makes it parses back to its drain', async (t) => {
  const id = drainJobId('alice', '-1001234', '42');
  t.equal(DRAIN_JOB_NAME, 'drain');
  t.equal(drainJobOpts(id).jobId, id);
  t.same(parseDrainJob(id, { t: 'alice', c: '-1001234' }), { tenantId: 'alice', chatId: '-1001234', gen: '42' });
  t.same(parseDrainJob(drainJobId('bob', '_', '1'), { t: 'bob', c: '_' }), { tenantId: 'bob', chatId: '_', gen: '1' }, 'updates without a chat');
});

t.test('anything else is not a drain', async (t) => {
  const id = drainJobId('alice', '7', '3');
  const bad: Array<[string | undefined, unknown, string]> = [
    [id, undefined, 'no payload'],
    [id, {}, 'empty payload'],
    [id, { t: 'alice' }, 'no chat'],
    [id, { t: 'Alice', c: '7' }, 'not a tenant id'],
    [id, { t: 'alice', c: '7x' }, 'not a chat id'],
    [id, { t: 'alice', c: 7 }, 'a number, not the string the mailbox writes'],
    [drainJobId('alice', '7', 'x'), { t: 'alice', c: '7' }, 'a generation that is not a number'],
    [undefined, { t: 'alice', c: '7' }, 'no job id'],
    [drainJobId('bob', '7', '3'), { t: 'alice', c: '7' }, 'an id of another tenant than the payload'],
    [drainJobId('alice', '8', '3'), { t: 'alice', c: '7' }, 'an id of another chat than the payload'],
  ];
  for (const [jobId, data, what] of bad) t.equal(parseDrainJob(jobId, data), undefined, what);
});
