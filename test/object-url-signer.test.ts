/**
 * ObjectUrlSigner against the SDK's getSignedUrl: the same URL byte for byte at the same instant,
 * for the clients the platform builds (an S3-compatible endpoint, path style; AWS virtual-hosted in
 * two regions; temporary credentials with a session token), keys that take the fast path and keys
 * that fall back. Whether S3 takes such a URL: test/embedded-store-auth.test.ts (the embedded
 * store's SigV4 check) signs every state URL through it.
 */
import t from 'tap';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { ObjectUrlSigner } from '../lib/state/object-url-signer.js';
import { createS3Client } from '../lib/state/s3-client.js';

const KEYS = { accessKeyId: 'AKIDEXAMPLE0000000000', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const clients: Array<[string, S3Client]> = [
  ['S3-compatible endpoint, path style', createS3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:4569', credentials: KEYS })],
  ['AWS, virtual-hosted, eu-west-1', new S3Client({ region: 'eu-west-1', credentials: KEYS })],
  ['AWS, us-east-1, temporary credentials', new S3Client({ region: 'us-east-1', credentials: { ...KEYS, sessionToken: 'FwoGZXIvYXdzE+/session=token' } })],
  ['AWS, path style forced, ap-southeast-2', new S3Client({ region: 'ap-southeast-2', forcePathStyle: true, credentials: KEYS })],
];

t.test('the same URL as getSignedUrl, at the same instant', async (t) => {
  const signingDate = new Date('2026-12-02T14:30:05Z');
  for (const [name, s3] of clients) {
    const signer = new ObjectUrlSigner(s3, 'ztm-state-bucket');
    for (const key of ['tenants/alice/4f1c2b/state.tar.gz', 'tenants/bob/brain.db', 'a', 'with space/and+plus', 'tenants//double']) {
      for (const expiresIn of [60, 3600, 604_800]) {
        const ours = await signer.getUrl(key, { expiresIn, signingDate });
        const sdk = await getSignedUrl(s3, new GetObjectCommand({ Bucket: 'ztm-state-bucket', Key: key }), { expiresIn, signingDate });
        if (ours !== sdk) t.fail(`${name}, ${key}, ${expiresIn} s:\n  ours ${ours}\n  sdk  ${sdk}`);
      }
    }
    t.pass(name);
  }
});

t.test('the signature changes with the key, the expiry and the instant (no cached signature)', async (t) => {
  const signer = new ObjectUrlSigner(clients[0]![1], 'b-1');
  const sig = (u: string): string | null => new URL(u).searchParams.get('X-Amz-Signature');
  const base = await signer.getUrl('tenants/a/state.tar.gz', { expiresIn: 60, signingDate: new Date(0) });
  t.not(sig(base), sig(await signer.getUrl('tenants/b/state.tar.gz', { expiresIn: 60, signingDate: new Date(0) })));
  t.not(sig(base), sig(await signer.getUrl('tenants/a/state.tar.gz', { expiresIn: 61, signingDate: new Date(0) })));
  t.not(sig(base), sig(await signer.getUrl('tenants/a/state.tar.gz', { expiresIn: 60, signingDate: new Date(1000) })));
  const now = new URL(await signer.getUrl('tenants/a/state.tar.gz', { expiresIn: 60 }));
  const stamp = now.searchParams.get('X-Amz-Date') ?? '';
  const at = Date.parse(`${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}T${stamp.slice(9, 11)}:${stamp.slice(11, 13)}:${stamp.slice(13, 15)}Z`);
  t.ok(Math.abs(at - Date.now()) < 5_000, 'signed now by default');
  t.equal(now.searchParams.get('X-Amz-Expires'), '60');
});

t.test('plain keys bypass getSignedUrl\'s per-call stack once the bucket is known; other keys go through it', async (t) => {
  const s3 = createS3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:4569', credentials: KEYS });
  const signer = new ObjectUrlSigner(s3, 'b-2');
  await signer.getUrl('tenants/a/state.tar.gz', { expiresIn: 60 }); // learns the bucket's URL
  // From now on the client's own stack fails every request it builds.
  s3.middlewareStack.add(() => async () => {
    throw new Error('the middleware stack ran');
  }, { step: 'build', name: 'failEverything' });
  t.match(await signer.getUrl('tenants/b/brain.db', { expiresIn: 60 }), /^http:\/\/127\.0\.0\.1:4569\/b-2\/tenants\/b\/brain\.db\?/, 'a plain key: signed without it');
  await t.rejects(signer.getUrl('with space', { expiresIn: 60 }), /the middleware stack ran/, 'any other key: through getSignedUrl');
});
