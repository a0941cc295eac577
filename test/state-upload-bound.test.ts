/**
 * The state upload is a presigned POST form whose policy bounds the size (content-length-range)
 * and names the one key: the store (the embedded s3rver behind its SigV4 gate, as S3 itself does)
 * refuses an oversize upload, a form pointed at another key, and the form's signature used as a
 * PUT. The uploads go through the shim's own uploadState, which does not check the size itself:
 * what is refused here is refused by the store.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { uploadState } from '../agent/state-transfer.js';
import { startEmbeddedS3 } from '../lib/state/embedded-s3.js';
import { createS3Client } from '../lib/state/s3-client.js';
import { StateStore, stateUploadLimit } from '../lib/state/state-store.js';
import { freePort } from '../lib/util/free-port.js';

const MAX_STATE = 1_048_576;

t.test('presigned POST: size-bounded and key-bound by the store', async (t) => {
  const s3 = await startEmbeddedS3({ port: await freePort() });
  const s3client = createS3Client({ endpoint: s3.endpoint, region: 'us-east-1' });
  const store = new StateStore({ s3: s3client, bucket: 'zeroclaw-tenant-state', maxStateBytes: MAX_STATE });
  await store.ensureBucket();
  const dir = mkdtempSync(path.join(tmpdir(), 'ztm-upload-'));
  t.teardown(async () => {
    rmSync(dir, { recursive: true, force: true });
    s3client.destroy();
    await s3.close();
  });
  const owner = { tenant_id: 'ursula', incarnation: 'incarnation-of-ursula-0' };
  const limit = stateUploadLimit(MAX_STATE);
  t.equal(store.uploadLimit, limit);
  const file = (name: string, bytes: number): string => {
    const p = path.join(dir, name);
    writeFileSync(p, randomBytes(bytes));
    return p;
  };
  const urls = await store.presign(owner, { expiresInS: 600 });
  const form = new URL(urls.putUrl);
  t.ok(form.searchParams.get('Policy') && form.searchParams.get('X-Amz-Signature'), 'a signed POST policy');
  const policy = JSON.parse(Buffer.from(form.searchParams.get('Policy') ?? '', 'base64').toString()) as { conditions: unknown[] };
  t.same(policy.conditions.filter((c) => Array.isArray(c) && c[0] === 'content-length-range'), [['content-length-range', 1, limit]], 'bounded by STATE_MAX_BYTES plus archive overhead');
  t.equal(form.searchParams.get('key'), 'tenants/ursula/incarnation-of-ursula-0/state.tar.gz', 'this incarnation\'s key');

  await t.rejects(uploadState(urls.putUrl, file('big', limit + 1), { attempts: 1 }), { code: 'E_RUNTIME', message: /HTTP 400/ }, 'one byte over the bound: refused by the store');
  t.equal(await store.head(owner), undefined, 'nothing stored');

  await uploadState(urls.putUrl, file('ok', limit));
  t.match(await store.head(owner), { key: 'tenants/ursula/incarnation-of-ursula-0/state.tar.gz', bytes: limit }, 'at the bound: stored');

  // What a hostile agent holding the form could try.
  const other = new URL(urls.putUrl);
  other.searchParams.set('key', 'tenants/victim/state.tar.gz');
  await t.rejects(uploadState(other.toString(), file('small', 100), { attempts: 1 }), { message: /HTTP 403/ }, 'the form pointed at another key: refused (the policy names the key)');
  t.equal(await store.head('victim'), undefined);
  const asPut = await request(`${form.origin}${form.pathname}/tenants/ursula/incarnation-of-ursula-0/state.tar.gz${form.search}`, { method: 'PUT', body: randomBytes(10) });
  await asPut.body.dump();
  t.ok(asPut.statusCode >= 400, `the form's signature is no PUT credential (${asPut.statusCode})`);
  t.match(await store.head(owner), { bytes: limit }, 'the stored state is untouched');
});
