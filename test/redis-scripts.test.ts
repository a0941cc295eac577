/**
 * The one table of Lua scripts (lib/redis-scripts.ts): each compiles on a real Redis, declares as
 * many keys as its source uses (a KEYS[n] beyond the count would read an ARGV as a key: wrong slot on
 * a cluster), and is defined on a client by its first call there, whoever calls first.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { SCRIPTS, callScript, type ScriptName } from '../lib/redis-scripts.js';
import { startRedis } from './support/redis.js';

const server = await startRedis();
const redis = new Redis(server.url);
t.teardown(async () => {
  redis.disconnect();
  await server.close();
});

t.test('every script compiles and uses no more keys than it declares', async (t) => {
  for (const [name, def] of Object.entries(SCRIPTS)) {
    const sha = (await redis.script('LOAD', def.lua)) as string;
    t.match(sha, /^[0-9a-f]{40}$/, `${name} compiles`);
    const used = [...def.lua.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1]));
    if (def.keys === 'variable') {
      t.notOk(used.length > 0 && !/#KEYS/.test(def.lua), `${name}: a variable key count is read with #KEYS`);
    } else {
      const highest = used.length ? Math.max(...used) : 0;
      t.ok(highest <= def.keys, `${name}: KEYS[${highest}] within its ${def.keys} declared keys`);
      t.ok(highest === def.keys || /KEYS\[i\]|ipairs\(KEYS\)|#KEYS/.test(def.lua), `${name}: every declared key is used (highest KEYS[${highest}] of ${def.keys})`);
    }
  }
});

t.test('a script is defined on a fresh client by its first call, by any caller', async (t) => {
  const fresh = new Redis(server.url);
  t.teardown(() => fresh.disconnect());
  const name: ScriptName = 'ztmCompareAndDelete';
  t.equal(typeof (fresh as unknown as Record<string, unknown>)[name], 'undefined', 'nothing defined it before');
  await fresh.set('lock', 'mine');
  t.equal(await callScript<number>(fresh, name, 'lock', 'theirs'), 0, 'not deleted for another value');
  t.equal(await callScript<number>(fresh, name, 'lock', 'mine'), 1, 'deleted for its own');
  t.equal(await fresh.exists('lock'), 0);
});
