/**
 * The OpenAPI document against the implementation, on the whole platform (`startPlatform` with
 * ADMIN_API_PORT, agents as local processes): the document served is the one in the code; every
 * documented path and method is served and every route is documented (probed over HTTP, not only
 * compared as lists); every answer of a real run through every operation, wake and stop included,
 * validates against the document's schema for its status (ajv, JSON Schema 2020-12 as OpenAPI 3.1
 * uses), and every status met is one the document lists for the operation.
 */
import t, { type Test } from 'tap';
import { request } from 'undici';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { startTestPlatform, type TestPlatform } from './support/platform.js';
import { waitUntil } from './support/wait.js';
import { OPENAPI_DOCUMENT } from '../lib/admin-api/openapi.js';
import { ROUTES } from '../lib/admin-api/routes.js';

const BOT = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const NEW_BOT = '987654321:BBHnewtokenAAAAAAAAAAAAAAAAAAAAAAAA2';
const METHODS = ['get', 'post', 'patch', 'delete', 'put'] as const;
type Doc = { paths: Record<string, Record<string, any>>; components: { schemas: Record<string, unknown> } };
const doc = OPENAPI_DOCUMENT as unknown as Doc;

let p: TestPlatform;
let base: string;
let admin: string;

async function call(method: string, path: string, o: { token?: string; body?: unknown } = {}) {
  const res = await request(`${base}${path}`, {
    method: method as 'GET', headersTimeout: 120_000, bodyTimeout: 120_000,
    headers: { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
  });
  const text = await res.body.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.statusCode, headers: res.headers, body };
}

const ajv = new Ajv2020({ strict: false, allErrors: true });
// RFC 3339 date-time, as `toISOString()` writes it (ajv-formats is not a dependency).
ajv.addFormat('date-time', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
ajv.addSchema(OPENAPI_DOCUMENT as object, 'https://admin-api.invalid/openapi.json');
const pointer = (...parts: string[]) => parts.map((s) => s.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
const validators = new Map<string, ReturnType<typeof ajv.compile>>();
function validatorFor(schemaPointer: string) {
  let v = validators.get(schemaPointer);
  if (!v) {
    v = ajv.compile({ $ref: `https://admin-api.invalid/openapi.json#/${schemaPointer}` });
    validators.set(schemaPointer, v);
  }
  return v;
}

/** The documented operation of `method path` (a concrete path matched against the templates). */
function operationOf(method: string, path: string): { template: string; op: any } | undefined {
  for (const [template, item] of Object.entries(doc.paths)) {
    const re = new RegExp(`^${template.split(/(\{[a-z_]+\})/).map((s) => (/^\{/.test(s) ? '[^/:]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('')}$`);
    if (re.test(path.split('?')[0] as string) && item[method.toLowerCase()]) return { template, op: item[method.toLowerCase()] };
  }
  return undefined;
}

const met = new Map<string, Set<number>>();

/** A real request whose answer must be documented and valid against its schema. */
async function conform(tt: Test, method: string, path: string, o: { token?: string; body?: unknown } = {}) {
  const r = await call(method, path, o);
  const found = operationOf(method, path);
  tt.ok(found, `${method} ${path} is documented`);
  if (!found) return r;
  const { template, op } = found;
  const response = op.responses[String(r.status)];
  tt.ok(response, `${op.operationId}: status ${r.status} is documented`);
  if (!response) return r;
  if (response.content?.['application/json']) {
    const v = validatorFor(pointer('paths', template, method.toLowerCase(), 'responses', String(r.status), 'content', 'application/json', 'schema'));
    tt.ok(v(r.body), `${op.operationId} ${r.status} validates${v.errors ? `: ${ajv.errorsText(v.errors)}` : ''}`);
  }
  const seen = met.get(op.operationId) ?? new Set<number>();
  seen.add(r.status);
  met.set(op.operationId, seen);
  return r;
}

const sample = (template: string) => template.replace('{tenant_id}', 'sample').replace('{job_id}', 'sample.1.1');

t.before(async () => {
  p = await startTestPlatform({ full: true, env: { ADMIN_API_PORT: '0', ROUTER_PUBLIC_URL: 'https://bots.example.test', WARM_POOL_TARGET: '0' } });
  p.emulator.addBot(BOT);
  p.emulator.addBot(NEW_BOT);
  if (!p.platform?.adminApiUrl) throw new Error('startPlatform did not start the admin API with ADMIN_API_PORT set');
  base = p.platform.adminApiUrl;
  admin = (await p.ztm('api-token', 'create', '--name', 'conformance')).stdout.trim();
});
t.teardown(() => p?.close());

t.test('the document served is the document in the code, and is an OpenAPI 3.1 document whose references resolve', async (t) => {
  const r = await call('GET', '/v1/openapi.json');
  t.equal(r.status, 200);
  t.same(r.body, JSON.parse(JSON.stringify(OPENAPI_DOCUMENT)));
  t.equal(doc.paths && (OPENAPI_DOCUMENT as { openapi: string }).openapi, '3.1.0');
  const refs = [...JSON.stringify(OPENAPI_DOCUMENT).matchAll(/"\$ref":"#\/components\/schemas\/([A-Za-z]+)"/g)].map((m) => m[1] as string);
  for (const name of new Set(refs)) t.ok(doc.components.schemas[name], `#/components/schemas/${name} exists`);
  const ids = Object.values(doc.paths).flatMap((item) => METHODS.filter((m) => item[m]).map((m) => item[m].operationId as string));
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique');
  for (const name of Object.keys(doc.components.schemas)) t.doesNotThrow(() => validatorFor(pointer('components', 'schemas', name)), `${name} compiles`);
});

t.test('every documented route is served and every route is documented', async (t) => {
  const documented = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const m of METHODS) {
      if (!item[m]) continue;
      documented.add(`${m.toUpperCase()} ${path}`);
      // Not 404/405: the server has this route. Secured ones ask for a token first.
      const r = await call(m.toUpperCase(), sample(path));
      const open = Array.isArray(item[m].security) && item[m].security.length === 0;
      t.equal(r.status, open ? 200 : 401, `${m.toUpperCase()} ${path} is served${open ? '' : ' (behind a token)'}`);
    }
    // A method not documented on a documented path is not served either.
    for (const m of METHODS.filter((x) => !item[x])) {
      const r = await call(m.toUpperCase(), sample(path), { token: admin });
      t.equal(r.status, 405, `${m.toUpperCase()} ${path}: not served`);
    }
  }
  const routes = new Set(ROUTES.map((r) => `${r.method} ${r.path}`));
  const secured = [...documented].filter((d) => !/ \/(healthz|readyz|v1\/openapi\.json)$/.test(d));
  t.same([...routes].sort(), secured.sort(), 'the route table is exactly the documented secured operations');
  for (const r of ROUTES) {
    const op = doc.paths[r.path]?.[r.method.toLowerCase()];
    t.equal(op?.operationId, r.operationId, `${r.operationId}: same operationId`);
    t.equal(op?.['x-scope'], r.scope, `${r.operationId}: same scope`);
  }
  t.equal((await call('GET', '/v1/undocumented', { token: admin })).status, 404);
});

t.test('a real run through every operation answers as documented', async (t) => {
  const reader = (await p.ztm('api-token', 'create', '--name', 'reader', '--scope', 'tenants:read')).stdout.trim();
  const once = (await p.ztm('api-token', 'create', '--name', 'once', '--burst', '1', '--rate-per-min', '1')).stdout.trim();
  const createBody = { tenant_id: 'alice', bot_token: BOT, idle_timeout_s: 600 };
  t.ok(validatorFor(pointer('components', 'schemas', 'CreateTenantRequest'))(createBody), 'the request sent is a documented CreateTenantRequest');
  t.notOk(validatorFor(pointer('components', 'schemas', 'CreateTenantRequest'))({ ...createBody, tenant_id: 'Alice' }), 'the document refuses what the server refuses');
  t.equal((await conform(t, 'POST', '/v1/tenants', { token: admin, body: createBody })).status, 201);
  await conform(t, 'POST', '/v1/tenants', { token: admin, body: createBody });
  await conform(t, 'POST', '/v1/tenants', { token: admin, body: { ...createBody, tenant_id: 'Alice' } });
  await conform(t, 'POST', '/v1/tenants', { token: reader, body: createBody });
  await conform(t, 'GET', '/v1/tenants', {});
  await conform(t, 'GET', '/v1/tenants?limit=1', { token: admin });
  await conform(t, 'GET', '/v1/tenants/alice', { token: admin });
  await conform(t, 'GET', '/v1/tenants/nobody', { token: admin });
  await conform(t, 'PATCH', '/v1/tenants/alice', { token: admin, body: { idle_timeout_s: 900 } });
  await conform(t, 'PATCH', '/v1/tenants/alice', { token: admin, body: { bot_token: NEW_BOT } });
  await conform(t, 'GET', '/v1/tenants/alice/webhook', { token: admin });
  await conform(t, 'POST', '/v1/tenants/alice/webhook:register', { token: admin });
  const wake = await conform(t, 'POST', '/v1/tenants/alice:wake', { token: admin });
  t.equal(wake.status, 200, 'the tenant woke');
  t.equal(((await call('GET', '/v1/tenants/alice', { token: admin })).body as { status: string }).status, 'running');
  const stop = await conform(t, 'POST', '/v1/tenants/alice:stop', { token: admin });
  t.equal(stop.status, 200);
  t.equal((stop.body as { status: string }).status, 'idle', 'stopped, state saved');
  await conform(t, 'POST', '/v1/tenants/nobody:wake', { token: admin });
  // A real dead letter: an update for a tenant that does not exist goes through the whole pipeline.
  const update = { update_id: 4242, message: { message_id: 1, date: 1, chat: { id: 77, type: 'private' }, text: 'dead on arrival' } };
  let status = 0;
  await waitUntil('the ingress to accept the update', async () => (status = (await p.postUpdate('ghost', update)).status) !== 503);
  t.equal(status, 200);
  await waitUntil('a dead letter', async () => (await p.forwarderDeadLetters()) > 0, 60_000);
  const letters = await conform(t, 'GET', '/v1/dead-letters', { token: admin });
  const id = (letters.body as { items: Array<{ id: string }> }).items[0]?.id as string;
  t.ok(id, 'the dead letter is listed');
  await conform(t, 'GET', '/v1/dead-letters?tenant_id=ghost&limit=5', { token: admin });
  t.equal((await conform(t, 'POST', `/v1/dead-letters/${encodeURIComponent(id)}:retry`, { token: admin })).status, 200);
  await conform(t, 'POST', '/v1/dead-letters/none.1.1:retry', { token: admin });
  await conform(t, 'POST', '/v1/dead-letters:retry-all', { token: admin });
  await conform(t, 'GET', '/v1/tenants/alice', { token: once });
  t.equal((await conform(t, 'GET', '/v1/tenants/alice', { token: once })).status, 429);
  t.equal((await conform(t, 'DELETE', '/v1/tenants/alice?purge_state=true', { token: admin })).status, 200);
  await conform(t, 'DELETE', '/v1/tenants/alice', { token: admin });
  const operations = ROUTES.map((r) => r.operationId);
  t.same(operations.filter((o) => !met.has(o)), [], 'every operation was run');
  for (const [op, codes] of met) t.ok([...codes].some((c) => c < 300), `${op}: a success was validated`);
  for (const code of [400, 401, 403, 404, 409, 429]) t.ok([...met.values()].some((s) => s.has(code)), `an error ${code} was validated`);
});
