/**
 * Tenant registry against real DynamoDB wire protocol (in-process dynalite): CRUD, validation,
 * pagination, optimistic concurrency between two replicas, status machine, activity touches.
 */
import t, { type Test } from 'tap';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { createDynamoClient } from '../lib/registry/dynamo-client.js';
import { startEmbeddedDynamo } from '../lib/registry/embedded-dynamodb.js';
import { assertTransition, toPublicTenant, TENANT_STATUSES, TENANT_TRANSITIONS } from '../lib/registry/tenant.js';
import { TenantRegistry } from '../lib/registry/tenant-registry.js';
import { startDynamo, uniqueTableName, type TestDynamo } from './support/dynamo.js';

const SECRET = 'AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
const TOKEN = `123456789:${SECRET}`;
const TOKEN2 = `987654321:${'B'.repeat(35)}`;

let dyn: TestDynamo;
t.before(async () => {
  dyn = await startDynamo();
});
t.teardown(async () => {
  await dyn.close();
});

async function freshRegistry(): Promise<TenantRegistry> {
  const reg = new TenantRegistry({ client: dyn.client, table: uniqueTableName() });
  await reg.ensureTable();
  return reg;
}

/** The message of a rejected promise, asserted not to leak the secret part of a token. */
async function rejectsWithout(t: Test, p: Promise<unknown>, code: string, what: string): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e as Error & { code?: string });
  t.ok(err, `${what}: rejects`);
  t.equal(err?.code, code, `${what}: ${code}`);
  t.notMatch(err?.message ?? '', SECRET, `${what}: message has no token`);
  t.notMatch(err?.message ?? '', /\n/, `${what}: message is one line`);
}

t.test('constructor checks its options', async (t) => {
  t.throws(() => new TenantRegistry({ client: dyn.client, table: 'x' }), { code: 'E_VALIDATION' });
  t.throws(() => new TenantRegistry({ client: {} as never, table: 'tenants' }), { code: 'E_VALIDATION' });
  t.throws(() => new TenantRegistry(undefined as never), { code: 'E_VALIDATION' });
});

t.test('ensureTable is idempotent and survives a race', async (t) => {
  const table = uniqueTableName();
  const a = new TenantRegistry({ client: dyn.client, table });
  const b = new TenantRegistry({ client: dyn.newClient(), table });
  await Promise.all([a.ensureTable(), b.ensureTable()]);
  await a.ensureTable();
  await a.ensureTable();
  t.equal((await a.list()).items.length, 0);
});

t.test('create / get / require / list / update / delete', async (t) => {
  const reg = await freshRegistry();
  const created = await reg.create({ tenant_id: 'alice', bot_token: TOKEN });
  t.match(created, { tenant_id: 'alice', bot_token: TOKEN, status: 'idle', idle_timeout_s: 300, version: 1 });
  t.equal(created.created_at, created.updated_at);
  t.same(await reg.get('alice'), created);
  t.same(await reg.require('alice'), created);
  t.equal(await reg.get('bob'), undefined);
  await rejectsWithout(t, reg.require('bob'), 'E_NOT_FOUND', 'require missing');

  const bob = await reg.create({ tenant_id: 'bob', bot_token: TOKEN2, idle_timeout_s: 5 });
  t.equal(bob.idle_timeout_s, 5);
  t.same((await reg.list()).items.map((x) => x.tenant_id).sort(), ['alice', 'bob']);

  const updated = await reg.update('alice', { idle_timeout_s: 60, pod_name: 'agent-alice', pod_ip: '10.0.0.7' });
  t.match(updated, { idle_timeout_s: 60, pod_name: 'agent-alice', pod_ip: '10.0.0.7', version: 2, bot_token: TOKEN });
  t.ok(updated.updated_at >= created.updated_at);
  t.equal(updated.created_at, created.created_at);
  const cleared = await reg.update('alice', { pod_name: null, pod_ip: null }, { expectedVersion: 2 });
  t.equal(cleared.pod_name, undefined);
  t.equal(cleared.pod_ip, undefined);
  t.equal(cleared.version, 3);
  const rotated = await reg.update('alice', { bot_token: TOKEN2 });
  t.equal(rotated.bot_token, TOKEN2);

  await rejectsWithout(t, reg.update('carol', { idle_timeout_s: 10 }), 'E_NOT_FOUND', 'update missing');
  await rejectsWithout(t, reg.update('carol', { idle_timeout_s: 10 }, { expectedVersion: 1 }), 'E_NOT_FOUND', 'update missing, versioned');

  t.equal(await reg.delete('alice'), true);
  t.equal(await reg.delete('alice'), false, 'delete is idempotent');
  t.equal(await reg.get('alice'), undefined);
});

t.test('duplicate create is E_EXISTS', async (t) => {
  const reg = await freshRegistry();
  await reg.create({ tenant_id: 'dup', bot_token: TOKEN });
  await rejectsWithout(t, reg.create({ tenant_id: 'dup', bot_token: TOKEN }), 'E_EXISTS', 'duplicate');
  t.equal((await reg.require('dup')).version, 1, 'the original is untouched');
});

t.test('validation errors never echo the token', async (t) => {
  const reg = await freshRegistry();
  for (const id of ['Alice', '1abc', '', 'a'.repeat(41), 'a_b', 'a b']) {
    await rejectsWithout(t, reg.create({ tenant_id: id, bot_token: TOKEN }), 'E_VALIDATION', `id ${JSON.stringify(id)}`);
  }
  for (const token of ['nope', `123456789:${SECRET}!`, `abc:${SECRET}`, `123:${SECRET.slice(0, 10)}`, SECRET]) {
    await rejectsWithout(t, reg.create({ tenant_id: 'ok', bot_token: token }), 'E_VALIDATION', 'bad token');
  }
  for (const timeout of [0, 604_801, 1.5, 'abc', -1, Number.NaN]) {
    await rejectsWithout(
      t, reg.create({ tenant_id: 'ok', bot_token: TOKEN, idle_timeout_s: timeout as number }),
      'E_VALIDATION', `idle timeout ${String(timeout)}`,
    );
  }
  await rejectsWithout(t, reg.create({ tenant_id: 'ok', bot_token: TOKEN, extra: 1 } as never), 'E_VALIDATION', 'unknown field');
  t.equal(await reg.get('ok'), undefined, 'nothing was written');

  await reg.create({ tenant_id: 'ok', bot_token: TOKEN, idle_timeout_s: 604_800 });
  await rejectsWithout(t, reg.update('ok', { idle_timeout_s: 0 }), 'E_VALIDATION', 'patch timeout');
  await rejectsWithout(t, reg.update('ok', { bot_token: `${TOKEN}#` }), 'E_VALIDATION', 'patch token');
  await rejectsWithout(t, reg.update('ok', { status: 'sleeping' as never }), 'E_VALIDATION', 'patch status');
  await rejectsWithout(t, reg.update('ok', { pod_ip: 'not-an-ip' }), 'E_VALIDATION', 'patch pod_ip');
  await rejectsWithout(t, reg.update('ok', { version: 9 } as never), 'E_VALIDATION', 'patch version');
  await rejectsWithout(t, reg.update('ok', {}, { expectedVersion: 0 }), 'E_VALIDATION', 'expectedVersion 0');
  t.equal((await reg.require('ok')).version, 1, 'rejected patches wrote nothing');
});

t.test('pagination: 25 tenants in pages of 7, each exactly once', async (t) => {
  const reg = await freshRegistry();
  const ids = Array.from({ length: 25 }, (_, i) => `t-${String(i).padStart(2, '0')}`);
  await Promise.all(ids.map((id) => reg.create({ tenant_id: id, bot_token: TOKEN })));

  const seen: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await reg.list({ limit: 7, cursor });
    t.ok(page.items.length <= 7, 'page respects the limit');
    seen.push(...page.items.map((x) => x.tenant_id));
    cursor = page.cursor;
    if (cursor !== undefined) t.match(cursor, /^[A-Za-z0-9_-]+$/, 'cursor is base64url');
    t.ok(++pages <= 10, 'terminates');
  } while (cursor !== undefined);
  t.same(seen.sort(), ids);

  const iterated: string[] = [];
  for await (const tenant of reg.iterate({ pageSize: 7 })) iterated.push(tenant.tenant_id);
  t.same(iterated.sort(), ids);

  await rejectsWithout(t, reg.list({ limit: 0 }), 'E_VALIDATION', 'limit 0');
  await rejectsWithout(t, reg.list({ limit: 1001 }), 'E_VALIDATION', 'limit too big');
});

t.test('malformed cursor is E_VALIDATION', async (t) => {
  const reg = await freshRegistry();
  const b64 = (s: string) => Buffer.from(s).toString('base64url');
  for (const cursor of ['', 'not a cursor!', b64('garbage'), b64('{}'), b64('{"k":5}'), b64('{"k":"Bad Id"}'),
    b64('{"k":"ok","x":1}'), b64('null'), 'A'.repeat(500)]) {
    await rejectsWithout(t, reg.list({ cursor }), 'E_VALIDATION', `cursor ${JSON.stringify(cursor.slice(0, 20))}`);
  }
});

t.test('stale expectedVersion is E_VERSION_CONFLICT', async (t) => {
  const reg = await freshRegistry();
  await reg.create({ tenant_id: 'v', bot_token: TOKEN });
  await reg.update('v', { idle_timeout_s: 10 }, { expectedVersion: 1 });
  await rejectsWithout(t, reg.update('v', { idle_timeout_s: 20 }, { expectedVersion: 1 }), 'E_VERSION_CONFLICT', 'stale');
  t.match(await reg.require('v'), { idle_timeout_s: 10, version: 2 }, 'the stale write did not land');
});

t.test('two replicas mutating one tenant lose no update', async (t) => {
  const table = uniqueTableName();
  const replicaA = new TenantRegistry({ client: dyn.newClient(), table });
  const replicaB = new TenantRegistry({ client: dyn.newClient(), table });
  await replicaA.ensureTable();
  const start = await replicaA.create({ tenant_id: 'hot', bot_token: TOKEN, idle_timeout_s: 100 });

  let calls = 0;
  // Sustained two-way contention on one item makes long losing streaks plausible, so allow
  // more attempts than the default; correctness (no lost update) is what is under test.
  const attempts = 50;
  const runA = async () => {
    for (let i = 0; i < 20; i++) {
      await replicaA.mutate('hot', (cur) => (calls++, { idle_timeout_s: cur.idle_timeout_s + 1 }), { attempts });
    }
  };
  const runB = async () => {
    for (let i = 0; i < 20; i++) {
      await replicaB.mutate('hot', (cur) => (calls++, {
        idle_timeout_s: cur.idle_timeout_s + 1,
        pod_name: `agent-b-${i}`,
        status: cur.status === 'idle' ? 'provisioning' : 'idle',
      }), { attempts });
    }
  };
  // Unversioned activity touches interleaved with both: they must not cause lost updates.
  const runTouches = async () => {
    for (let i = 0; i < 20; i++) await replicaA.touchLastActive('hot', new Date(Date.UTC(2030, 0, 1, 0, 0, i)));
  };
  await Promise.all([runA(), runB(), runTouches()]);

  const end = await replicaB.require('hot');
  t.equal(end.idle_timeout_s, start.idle_timeout_s + 40, 'all 40 increments landed');
  t.equal(end.version, start.version + 40, 'one version per write');
  t.equal(end.pod_name, 'agent-b-19');
  t.equal(end.status, 'idle', '20 toggles end where they started');
  t.equal(end.last_active_at, '2030-01-01T00:00:19.000Z');
  t.comment(`fn called ${calls} times for 40 writes (${calls - 40} retries)`);

  t.equal((await replicaA.mutate('hot', () => undefined)).version, end.version, 'undefined patch writes nothing');
  await rejectsWithout(t, replicaA.mutate('nobody', () => ({})), 'E_NOT_FOUND', 'mutate missing');
  await rejectsWithout(t, replicaA.mutate('hot', () => {
    throw new Error('boom');
  }).catch((e: Error) => Promise.reject(Object.assign(e, { code: 'E_FN' }))), 'E_FN', 'fn errors propagate');
});

t.test('status transitions', async (t) => {
  t.doesNotThrow(() => assertTransition('idle', 'provisioning'));
  t.throws(() => assertTransition('idle', 'running'), { code: 'E_VALIDATION', message: /idle -> running/ });
  t.throws(() => assertTransition('terminated', 'idle'), { code: 'E_VALIDATION' });
  for (const s of TENANT_STATUSES) {
    if (s !== 'terminated') t.ok(TENANT_TRANSITIONS[s].includes('terminated'), `${s} -> terminated`);
  }

  const reg = await freshRegistry();
  await reg.create({ tenant_id: 'st', bot_token: TOKEN });
  await rejectsWithout(t, reg.transition('st', 'running'), 'E_VALIDATION', 'idle -> running');
  await rejectsWithout(t, reg.transition('st', 'bogus' as never), 'E_VALIDATION', 'unknown status');

  const prov = await reg.transition('st', 'provisioning', { from: ['idle'], pod_name: 'agent-st' });
  t.match(prov, { status: 'provisioning', pod_name: 'agent-st', version: 2 });
  await rejectsWithout(t, reg.transition('st', 'provisioning', { from: ['idle'] }), 'E_VERSION_CONFLICT', 'from mismatch');
  const running = await reg.transition('st', 'running', { pod_ip: '10.1.2.3' });
  t.match(running, { status: 'running', pod_name: 'agent-st', pod_ip: '10.1.2.3', version: 3 });
  t.equal((await reg.transition('st', 'running', { pod_ip: '10.1.2.3' })).version, 3, 'repeat is a no-op');
  t.equal((await reg.transition('st', 'running', { pod_ip: '10.1.2.4' })).pod_ip, '10.1.2.4', 'same status, new ip');

  const stopping = await reg.transition('st', 'stopping', { from: ['running'] });
  t.equal(stopping.status, 'stopping');
  await rejectsWithout(t, reg.transition('st', 'running'), 'E_VALIDATION', 'stopping -> running');
  const idle = await reg.transition('st', 'idle');
  t.match(idle, { status: 'idle' });
  t.equal(idle.pod_name, undefined, 'idle clears pod_name');
  t.equal(idle.pod_ip, undefined, 'idle clears pod_ip');

  t.equal((await reg.transition('st', 'terminated')).status, 'terminated');
  await rejectsWithout(t, reg.transition('st', 'idle'), 'E_VALIDATION', 'terminated is final');
  await rejectsWithout(t, reg.transition('gone', 'idle'), 'E_NOT_FOUND', 'transition missing');
});

t.test('touchLastActive only moves forward and leaves the version alone', async (t) => {
  const reg = await freshRegistry();
  const created = await reg.create({ tenant_id: 'act', bot_token: TOKEN });
  t.equal(await reg.touchLastActive('act', '2030-01-01T00:00:10.000Z'), true);
  t.equal(await reg.touchLastActive('act', '2030-01-01T00:00:05.000Z'), false, 'older is ignored');
  t.equal(await reg.touchLastActive('act', '2030-01-01T00:00:10.000Z'), false, 'equal is ignored');
  t.equal(await reg.touchLastActive('act', new Date('2030-01-01T00:00:11Z')), true);
  // Non-canonical input is normalised, so string comparison in DynamoDB stays time order.
  t.equal(await reg.touchLastActive('act', '2030-01-01T01:00:00+01:00'), false, 'same instant as 00:00 UTC');
  const after = await reg.require('act');
  t.equal(after.last_active_at, '2030-01-01T00:00:11.000Z');
  t.equal(after.version, created.version, 'no version bump');
  t.equal(after.updated_at, created.updated_at, 'no updated_at bump');
  await rejectsWithout(t, reg.touchLastActive('act', 'yesterday'), 'E_VALIDATION', 'bad timestamp');
  await rejectsWithout(t, reg.touchLastActive('nobody', new Date()), 'E_NOT_FOUND', 'touch missing');
  t.equal(await reg.get('nobody'), undefined, 'touch does not create');
});

t.test('public projection masks the token', async (t) => {
  const reg = await freshRegistry();
  const pub = toPublicTenant(await reg.create({ tenant_id: 'pub', bot_token: TOKEN }));
  t.equal(pub.bot_token, '123456789:[REDACTED]');
  t.notMatch(JSON.stringify(pub), SECRET);
});

t.test('works through a DynamoDBDocumentClient too', async (t) => {
  const reg = new TenantRegistry({ client: DynamoDBDocumentClient.from(dyn.newClient()), table: uniqueTableName() });
  await reg.ensureTable();
  await reg.create({ tenant_id: 'doc', bot_token: TOKEN });
  t.equal((await reg.update('doc', { idle_timeout_s: 9 })).idle_timeout_s, 9);
});

t.test('storage failures are typed and token-free', async (t) => {
  const reg = new TenantRegistry({ client: dyn.client, table: uniqueTableName('missing') });
  await rejectsWithout(t, reg.create({ tenant_id: 'x', bot_token: TOKEN }), 'E_INTERNAL', 'no table');
});

t.test('embedded store persists under dataDir', async (t) => {
  const dir = t.testdir();
  const table = uniqueTableName();
  const first = await startEmbeddedDynamo({ dataDir: dir });
  t.match(first.endpoint, /^http:\/\/ZTM[A-Z2-7]{17}:[A-Za-z0-9_-]{40}@127\.0\.0\.1:\d+$/, 'on loopback, with the store\'s own key');
  const c1 = createDynamoClient({ endpoint: first.endpoint, region: 'us-east-1' });
  const r1 = new TenantRegistry({ client: c1, table });
  await r1.ensureTable();
  await r1.create({ tenant_id: 'kept', bot_token: TOKEN });
  c1.destroy();
  await first.close();
  await first.close();

  const second = await startEmbeddedDynamo({ dataDir: dir });
  const c2 = createDynamoClient({ endpoint: second.endpoint, region: 'us-east-1' });
  t.teardown(async () => {
    c2.destroy();
    await second.close();
  });
  const r2 = new TenantRegistry({ client: c2, table });
  await r2.ensureTable();
  t.match(await r2.get('kept'), { tenant_id: 'kept', status: 'idle' });
  t.throws(() => createDynamoClient({ endpoint: 'ftp://x', region: 'us-east-1' }), { code: 'E_VALIDATION' });
  t.throws(() => createDynamoClient({ region: '' }), { code: 'E_VALIDATION' });
});
