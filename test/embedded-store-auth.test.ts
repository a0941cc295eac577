/**
 * The embedded stores take only requests signed with their own key (lib/platform/sigv4-gate.ts),
 * as an agent on the same host would find them: real dynalite and s3rver on loopback, raw HTTP and
 * SDK clients. Before the gate every refusal below was answered (the Scan returned every bot token).
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { ScanCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { startEmbeddedDynamo, type EmbeddedDynamo } from '../lib/registry/embedded-dynamodb.js';
import { startEmbeddedS3, type EmbeddedS3 } from '../lib/state/embedded-s3.js';
import { createDynamoClient } from '../lib/registry/dynamo-client.js';
import { createS3Client } from '../lib/state/s3-client.js';
import { TenantRegistry } from '../lib/registry/tenant-registry.js';
import { StateStore } from '../lib/state/state-store.js';
import { describeStoreEndpoint, splitStoreEndpoint } from '../lib/platform/store-credentials.js';
import { startEmbeddedStores } from '../lib/platform/embedded-stores.js';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { downloadState, uploadState } from '../agent/state-transfer.js';
import { LogCapture } from './support/log-capture.js';
import { startTestPlatform } from './support/platform.js';
import { scenarioAgent } from './support/scenario-agents.js';
import { waitUntil } from './support/wait.js';

const TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const BUCKET = 'zeroclaw-tenant-state';
const scratch = mkdtempSync(path.join(tmpdir(), 'ztm-store-auth-'));
const logs = new LogCapture();
let dynamo: EmbeddedDynamo;
let s3: EmbeddedS3;
let dynamoClient: DynamoDBClient;
let s3Client: S3Client;
let registry: TenantRegistry;
let state: StateStore;
const clients: Array<{ destroy(): void }> = [];

t.before(async () => {
  dynamo = await startEmbeddedDynamo({ log: logs.logger('dynamo') });
  s3 = await startEmbeddedS3({ log: logs.logger('s3') });
  dynamoClient = createDynamoClient({ endpoint: dynamo.endpoint, region: 'us-east-1' });
  s3Client = createS3Client({ endpoint: s3.endpoint, region: 'us-east-1' });
  clients.push(dynamoClient, s3Client);
  registry = new TenantRegistry({ client: dynamoClient, table: 'tenants-auth' });
  await registry.ensureTable();
  await registry.create({ tenant_id: 'victim', bot_token: TOKEN });
  state = new StateStore({ s3: s3Client, bucket: BUCKET, maxStateBytes: 1_048_576 });
  await state.ensureBucket();
  writeFileSync(path.join(scratch, 'victim.tar.gz'), 'the victim\'s memory');
  await uploadState((await state.presign('victim')).putUrl, path.join(scratch, 'victim.tar.gz'));
});

t.teardown(async () => {
  for (const c of clients) c.destroy();
  await s3?.close();
  await dynamo?.close();
  rmSync(scratch, { recursive: true, force: true });
});

const plain = (endpoint: string) => splitStoreEndpoint(endpoint, 'test').endpoint;
const dynamoUrl = () => plain(dynamo.endpoint);
const s3Url = () => plain(s3.endpoint);

/** A Scan as an agent would send it, with whatever signature it has. */
async function rawScan(headers: Record<string, string> = {}): Promise<{ status: number; json: { __type?: string; message?: string }; text: string }> {
  const res = await request(dynamoUrl(), {
    method: 'POST',
    headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'DynamoDB_20120810.Scan', ...headers },
    body: JSON.stringify({ TableName: 'tenants-auth' }),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: JSON.parse(text) as { __type?: string }, text };
}

async function get(url: string, method = 'GET'): Promise<{ status: number; text: string }> {
  const res = await request(url, { method });
  return { status: res.statusCode, text: await res.body.text() };
}

t.test('the endpoint carries the key; what is shown of it does not', async (t) => {
  t.match(dynamo.endpoint, new RegExp(`^http://${dynamo.credentials.accessKeyId}:[^@]+@127\\.0\\.0\\.1:\\d+$`));
  t.notMatch(describeStoreEndpoint(s3.endpoint), s3.credentials.secretAccessKey);
  t.match(describeStoreEndpoint(s3.endpoint), /^http:\/\/127\.0\.0\.1:\d+ \(signed requests only\)$/);
  const presigned = await state.presign('victim');
  for (const url of [presigned.getUrl, presigned.putUrl]) {
    t.notOk(url.includes(s3.credentials.secretAccessKey), 'no secret in a presigned URL');
    t.equal(new URL(url).username, '', 'no user info in a presigned URL');
  }
  t.notOk(dynamo.credentials.secretAccessKey === s3.credentials.secretAccessKey, 'stores started without a key get fresh ones');
});

t.test('DynamoDB: unsigned, signed with local/local or another secret, altered: refused', async (t) => {
  const unsigned = await rawScan();
  t.equal(unsigned.status, 400);
  t.equal(unsigned.json.__type, 'com.amazon.coral.service#MissingAuthenticationTokenException');
  t.notOk(unsigned.text.includes(TOKEN.split(':')[1]!), 'no bot token in the answer');

  const dummy = createDynamoClient({ endpoint: dynamoUrl(), region: 'us-east-1' }); // local/local
  clients.push(dummy);
  await t.rejects(dummy.send(new ScanCommand({ TableName: 'tenants-auth' })), { name: 'UnrecognizedClientException', $metadata: { httpStatusCode: 400 } });

  const guessed = createDynamoClient({ endpoint: `http://${dynamo.credentials.accessKeyId}:not-the-secret@${new URL(dynamoUrl()).host}`, region: 'us-east-1' });
  clients.push(guessed);
  await t.rejects(guessed.send(new ScanCommand({ TableName: 'tenants-auth' })), { name: 'InvalidSignatureException' });

  // The platform's own client, its request changed after signing: another table, then another body.
  const tampering = createDynamoClient({ endpoint: dynamo.endpoint, region: 'us-east-1' });
  clients.push(tampering);
  tampering.middlewareStack.add((next) => async (args) => {
    const req = args.request as { body?: unknown };
    req.body = String(req.body).replace('tenants-autx', 'tenants-auth'); // same length: only the signature can tell
    return next(args);
  }, { step: 'deserialize', name: 'tamper', priority: 'low' });
  await t.rejects(tampering.send(new ScanCommand({ TableName: 'tenants-autx' })), { name: 'InvalidSignatureException' }, 'a body changed after signing');

  const forged = await rawScan({ authorization: `AWS4-HMAC-SHA256 Credential=${dynamo.credentials.accessKeyId}/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}`, 'x-amz-date': new Date().toISOString().replace(/[-:]|\.\d+/g, '') });
  t.equal(forged.json.__type, 'com.amazon.coral.service#InvalidSignatureException', 'a made-up signature with the right key id');
});

t.test('DynamoDB: the platform\'s own registry reads and writes work', async (t) => {
  t.equal((await registry.get('victim'))?.bot_token, TOKEN);
  await registry.create({ tenant_id: 'second', bot_token: TOKEN });
  const page = await registry.list({ limit: 10 });
  t.same(page.items.map((i) => i.tenant_id).sort(), ['second', 'victim']);
});

t.test('S3: anonymous, altered, expired, with another key: refused, as S3 refuses them', async (t) => {
  const key = `${BUCKET}/tenants/victim/state.tar.gz`;
  const anonymous = await get(`${s3Url()}/${key}`);
  t.equal(anonymous.status, 403);
  t.match(anonymous.text, /<Code>AccessDenied<\/Code>/);
  t.notMatch(anonymous.text, /victim's memory/);
  t.equal((await get(`${s3Url()}/${BUCKET}?list-type=2`)).status, 403, 'no anonymous listing');
  const deleteBody = `<Delete><Object><Key>tenants/victim/state.tar.gz</Key></Object></Delete>`;
  const del = await request(`${s3Url()}/${BUCKET}?delete`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: deleteBody });
  t.equal(del.statusCode, 403, 'no anonymous DeleteObjects');
  await del.body.dump();
  const formDelete = await request(`${s3Url()}/${BUCKET}?delete`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: deleteBody });
  t.equal(formDelete.statusCode, 403, 'nor one dressed as a form upload');
  await formDelete.body.dump();

  const attacker = await state.presign('attacker');
  const altered = attacker.getUrl.replace('/tenants/attacker/', '/tenants/victim/');
  const other = await get(altered);
  t.equal(other.status, 403, 'a presigned URL altered to another tenant\'s key');
  t.match(other.text, /<Code>SignatureDoesNotMatch<\/Code>/);
  t.notMatch(other.text, /victim's memory/);
  t.match((await get(attacker.getUrl, 'DELETE')).text, /SignatureDoesNotMatch/, 'a GET URL used to DELETE');
  t.equal((await get(attacker.getUrl)).status, 404, 'the unaltered URL is good (no state yet)');

  const expiredUrl = await getSignedUrl(s3Client, new GetObjectCommand({ Bucket: BUCKET, Key: 'tenants/victim/state.tar.gz' }), { expiresIn: 60, signingDate: new Date(Date.now() - 3_600_000) });
  const expired = await get(expiredUrl);
  t.equal(expired.status, 403);
  t.match(expired.text, /<Code>AccessDenied<\/Code><Message>Request has expired<\/Message><X-Amz-Expires>60<\/X-Amz-Expires>/);

  const s3rverKey = createS3Client({ endpoint: s3Url(), region: 'us-east-1' }); // s3rver's built-in S3RVER key
  clients.push(s3rverKey);
  await t.rejects(s3rverKey.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'tenants/victim/state.tar.gz' })), { name: 'InvalidAccessKeyId' });
  await t.rejects(s3rverKey.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'tenants/victim/state.tar.gz' })), { name: 'InvalidAccessKeyId' });

  // A PutObject whose body is swapped after signing: the signed hash no longer matches.
  const tampering = createS3Client({ endpoint: s3.endpoint, region: 'us-east-1' });
  clients.push(tampering);
  tampering.middlewareStack.add((next) => async (args) => {
    (args.request as { body?: unknown }).body = Buffer.from('evil');
    return next(args);
  }, { step: 'deserialize', name: 'tamper', priority: 'low' });
  await t.rejects(tampering.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'tenants/victim/state.tar.gz', Body: Buffer.from('good') })), { name: 'XAmzContentSHA256Mismatch' });

  const d = await downloadState((await state.presign('victim')).getUrl, path.join(scratch, 'check'));
  t.ok(d, 'the victim\'s state is still there');
  t.equal(readFileSync(path.join(scratch, 'check'), 'utf8'), 'the victim\'s memory', 'and unchanged');
});

t.test('S3: the shim\'s presigned GET and POST form work; a form bent to another key or size does not', async (t) => {
  const own = await state.presign('alice');
  const file = path.join(scratch, 'alice.tar.gz');
  const payload = Buffer.alloc(300_000, 7);
  writeFileSync(file, payload);
  await uploadState(own.putUrl, file);
  await downloadState(own.getUrl, path.join(scratch, 'alice.back'));
  t.ok(readFileSync(path.join(scratch, 'alice.back')).equals(payload), 'byte-identical round trip through the gate');

  // A plain presigned PUT (streamed, UNSIGNED-PAYLOAD) also works.
  const put = await getSignedUrl(s3Client, new PutObjectCommand({ Bucket: BUCKET, Key: 'tenants/alice/extra' }), { expiresIn: 60 });
  const res = await request(put, { method: 'PUT', body: payload, headers: { 'content-length': String(payload.length) } });
  await res.body.dump();
  t.equal(res.statusCode, 200, 'presigned PUT');

  const form = new URL(own.putUrl);
  const post = async (u: URL, size = 10) => {
    writeFileSync(path.join(scratch, 'form'), Buffer.alloc(size, 1));
    return uploadState(u.toString(), path.join(scratch, 'form'), { attempts: 1 }).then(() => 'stored', (err: Error) => err.message);
  };
  const otherKey = new URL(form);
  otherKey.searchParams.set('key', 'tenants/victim/state.tar.gz');
  t.match(await post(otherKey), /HTTP 403/, 'the form\'s key changed to another tenant\'s');
  const forgedPolicy = new URL(form);
  const policy = JSON.parse(Buffer.from(form.searchParams.get('Policy')!, 'base64').toString()) as { conditions: unknown[] };
  policy.conditions = policy.conditions.map((c) => (c !== null && typeof c === 'object' && 'key' in c ? { key: 'tenants/victim/state.tar.gz' } : c));
  forgedPolicy.searchParams.set('Policy', Buffer.from(JSON.stringify(policy)).toString('base64'));
  forgedPolicy.searchParams.set('key', 'tenants/victim/state.tar.gz');
  t.match(await post(forgedPolicy), /HTTP 403/, 'a policy rewritten for another key (its signature no longer matches)');
  t.match(await post(form, state.uploadLimit + 1), /HTTP 400/, 'a file over the policy\'s content-length-range');
  const unsignedForm = new URL(form);
  unsignedForm.searchParams.delete('X-Amz-Signature');
  t.match(await post(unsignedForm), /HTTP 4\d\d/, 'a form without its signature');
  t.equal(readFileSync(path.join(scratch, 'check'), 'utf8'), 'the victim\'s memory');
  await downloadState((await state.presign('victim')).getUrl, path.join(scratch, 'check2'));
  t.equal(readFileSync(path.join(scratch, 'check2'), 'utf8'), 'the victim\'s memory', 'the victim\'s state untouched by every attempt');
});

t.test('refusals are logged, without the signature or the query', async (t) => {
  const refused = logs.find('not signed with its key');
  t.ok(refused.some((l) => l.store === 's3' && l.refusal === 'mismatch'));
  t.ok(refused.some((l) => l.store === 'dynamodb' && l.refusal === 'missing'));
  t.ok(refused.some((l) => l.store === 's3' && l.refusal === 'expired'));
  const text = logs.text();
  t.notMatch(text, /X-Amz-Signature|X-Amz-Credential|Signature=/, 'no signature in any line');
  t.notOk(text.includes(s3.credentials.secretAccessKey) || text.includes(dynamo.credentials.secretAccessKey), 'no secret in any line');
});

t.test('npm start\'s stores: one key per DATA_DIR, kept 0600 in secrets.json beside the platform\'s secrets', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'ztm-store-auth-data-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const config = loadConfig({ DATA_DIR: dataDir, REDIS_URL: 'redis://127.0.0.1:1' });
  const log = createLogger({ service: 'test', level: 'silent' });
  const first = await startEmbeddedStores(config, log);
  const file = path.join(dataDir, 'secrets.json');
  t.equal(statSync(file).mode & 0o777, 0o600);
  const kept = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  const split = splitStoreEndpoint(first.dynamodbEndpoint!, 'test');
  t.equal(split.credentials?.accessKeyId, kept.storeAccessKeyId);
  t.equal(split.credentials?.secretAccessKey, kept.storeSecretAccessKey);
  t.equal(splitStoreEndpoint(first.s3Endpoint!, 'test').credentials?.secretAccessKey, kept.storeSecretAccessKey, 'both stores, one key');
  t.notOk(first.started.join('\n').includes(kept.storeSecretAccessKey!), 'the start lines do not show it');
  const c = createDynamoClient({ endpoint: first.dynamodbEndpoint!, region: 'us-east-1' });
  const r = new TenantRegistry({ client: c, table: 'kept' });
  await r.ensureTable();
  await r.create({ tenant_id: 'kept', bot_token: TOKEN });
  c.destroy();
  await first.close();

  const { loadOrCreateSecrets } = await import('../lib/local-secrets.js');
  const platformSecrets = loadOrCreateSecrets(dataDir, {});
  const after = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  t.equal(after.storeSecretAccessKey, kept.storeSecretAccessKey, 'the platform\'s secrets written beside it, the store key kept');
  t.equal(after.webhookSecret, platformSecrets.webhookSecret);

  const second = await startEmbeddedStores(config, log);
  t.teardown(() => second.close());
  t.equal(splitStoreEndpoint(second.dynamodbEndpoint!, 'test').credentials?.secretAccessKey, kept.storeSecretAccessKey, 'the same key after a restart');
  const c2 = createDynamoClient({ endpoint: second.dynamodbEndpoint!, region: 'us-east-1' });
  t.teardown(() => c2.destroy());
  t.equal((await new TenantRegistry({ client: c2, table: 'kept' }).get('kept'))?.bot_token, TOKEN);
});

t.test('a whole platform on the gated stores answers, sleeps with its state and wakes with it', async (t) => {
  const agent = scenarioAgent('reference');
  const p = await startTestPlatform({ full: true, env: { WARM_POOL_TARGET: '0', ...(await agent.env()) } });
  t.teardown(async () => {
    await p.close();
    await agent.close();
  });
  p.emulator.addBot(TOKEN);
  t.equal((await p.ztm('tenant', 'create', 'sleeper', TOKEN)).code, 0);
  let updateId = 1;
  const answers = () => p.emulator.sentMessages(TOKEN).filter((m) => agent.said(m.text) !== undefined).map((m) => m.text);
  const ask = async (text: string) => {
    const before = answers().length;
    const id = updateId++;
    t.equal((await p.postUpdate('sleeper', { update_id: id, message: { message_id: id, date: 1, chat: { id: 9, type: 'private' }, text } })).status, 200);
    await waitUntil(`answer to ${text}`, () => answers().length > before);
    return answers()[before]!;
  };
  t.equal(agent.said(await ask('one')), 'one');
  await p.platform!.lifecycle.sleep('sleeper');
  t.equal((await p.clients.registry.get('sleeper'))?.status, 'idle');
  const record = await p.clients.registry.get('sleeper');
  t.ok((await p.clients.state.head(record!)) ?? (await p.clients.state.head('sleeper')), 'state saved through the gate');
  const second = await ask('two');
  t.equal(agent.said(second), 'two');
  t.equal(agent.countIn(second), 2, 'woken with its memory');
});
