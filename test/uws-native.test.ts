/**
 * The ingress runs on the native uWebSockets.js addon or not at all: the package's pure-JS stand-in
 * (what it loads on a Node it has no build for, or with UWS_USE_FALLBACK) routes differently, so a
 * service on it would be another server than the one tested.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { assertNativeUws, isNativeUws } from '../lib/util/uws-native.js';
import { ROOT } from './support/platform.js';

t.test('the addon this suite runs on is the native one', async (t) => {
  t.equal(isNativeUws(), true);
  t.doesNotThrow(() => assertNativeUws());
});

t.test('a module without the native exports is refused with one line naming Node and the supported versions', async (t) => {
  t.equal(isNativeUws({ App: () => undefined }), false);
  t.throws(() => assertNativeUws({ App: () => undefined }, { ...process.versions, node: '24.11.0', modules: '137' }), {
    code: 'E_RUNTIME',
    message: /native addon did not load on Node 24\.11\.0 \(ABI 137\): the ingress runs only on Node 20/,
  });
});

t.test('the ingress started on the JavaScript fallback exits non-zero with that line', async (t) => {
  const res = spawnSync(process.execPath, ['--import', 'tsx', 'services/ingress/main.ts'], {
    cwd: ROOT, encoding: 'utf8', timeout: 60_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', UWS_USE_FALLBACK: '1', WEBHOOK_SECRET: 'w'.repeat(32), REDIS_URL: 'redis://127.0.0.1:1', LOG_LEVEL: 'silent' },
  });
  t.equal(res.status, 1, res.stderr);
  t.match(res.stderr, /ingress: failed to start: uWebSockets\.js native addon did not load/);
});
