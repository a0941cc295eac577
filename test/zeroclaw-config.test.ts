/**
 * agent/zeroclaw/config.ts: the rendered config.toml parsed with a real TOML parser and checked
 * against ZeroClaw v0.8's schema as read from its source; the env, state list and probe shapes.
 */
import t from 'tap';
import { parse } from 'smol-toml';
import {
  newZeroclawProbeToken, providerUri, renderZeroclawConfig, tomlString, ZEROCLAW_CACHE_EXCLUDES, ZEROCLAW_COMMAND_ARGS,
  ZEROCLAW_OVERRIDE_NAME, ZEROCLAW_STATE_PATHS, zeroclawEnv, zeroclawReadinessProbe, zeroclawTokenSha256,
} from '../agent/zeroclaw/config.js';

const HASH = zeroclawTokenSha256('the-forwarder-bearer');
const base = { host: '0.0.0.0', port: 3000, pairedTokenSha256: HASH, llm: { baseUrl: 'http://127.0.0.1:4000/v1', model: 'gpt-4o-mini' } };
const toml = (o: Partial<Parameters<typeof renderZeroclawConfig>[0]> = {}) => parse(renderZeroclawConfig({ ...base, ...o })) as Record<string, any>;

t.test('schema v3 with the platform provider, the agent and its risk profile', async (t) => {
  const c = toml();
  t.same(c, {
    schema_version: 3,
    gateway: {
      host: '0.0.0.0', port: 3000, allow_public_bind: true, require_pairing: true, paired_tokens: [HASH],
      request_timeout_secs: 30, webhook_rate_limit_per_minute: 0,
    },
    memory: { backend: 'sqlite', auto_save: true },
    providers: { models: { custom: { platform: { uri: 'http://127.0.0.1:4000/v1', model: 'gpt-4o-mini', wire_api: 'chat_completions' } } } },
    agents: { main: { model_provider: 'custom.platform', risk_profile: 'default' } },
    risk_profiles: { default: { level: 'supervised' } },
  });
  t.notMatch(renderZeroclawConfig(base), /api_key\s*=/, 'no api_key in the file');
  t.equal(zeroclawTokenSha256('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'SHA-256 hex, lowercase');
});

t.test('gateway: loopback binds need no allow_public_bind; options; the probe token', async (t) => {
  for (const host of ['127.0.0.1', 'localhost', '::1']) t.equal(toml({ host }).gateway.allow_public_bind, false, host);
  for (const host of ['0.0.0.0', '10.1.2.3', '127.0.0.2']) t.equal(toml({ host }).gateway.allow_public_bind, true, `${host} (upstream's is_public_bind)`);
  const probe = newZeroclawProbeToken();
  t.match(probe.token, /^zc_[0-9a-f]{64}$/);
  t.equal(probe.sha256, zeroclawTokenSha256(probe.token));
  t.same(toml({ probeTokenSha256: probe.sha256 }).gateway.paired_tokens, [HASH, probe.sha256], 'forwarder and probe bearers');
  t.same(toml({ probeTokenSha256: HASH }).gateway.paired_tokens, [HASH], 'one entry when they are the same');
  t.equal(toml({ requestTimeoutS: 1 }).gateway.request_timeout_secs, 1);
  t.equal(toml({ webhookRateLimitPerMinute: 60 }).gateway.webhook_rate_limit_per_minute, 60);
});

t.test('no LLM: no provider and no model_provider (ZeroClaw answers 503 needs_quickstart)', async (t) => {
  const c = toml({ llm: undefined });
  t.equal(c.providers, undefined);
  t.same(c.agents, { main: { risk_profile: 'default' } }, 'the agent stays, so brain.db is still made');
  t.same(c.risk_profiles, { default: { level: 'supervised' } });
});

t.test('AGENT_LLM_BASE_URL maps to uri, minus trailing slashes (ZeroClaw appends /chat/completions)', async (t) => {
  t.equal(providerUri('http://127.0.0.1:4000/v1/'), 'http://127.0.0.1:4000/v1');
  t.equal(providerUri('https://api.example.com/v1//'), 'https://api.example.com/v1');
  t.equal(providerUri('https://gw.example.com/llm/chat/completions'), 'https://gw.example.com/llm/chat/completions', 'a full endpoint is used as is upstream');
  for (const bad of ['127.0.0.1:4000/v1', 'ftp://x/v1', 'http://x/v1?key=1', 'not a url']) t.throws(() => providerUri(bad), TypeError, bad);
});

t.test('inputs are validated and strings escaped', async (t) => {
  t.throws(() => renderZeroclawConfig({ ...base, pairedTokenSha256: HASH.toUpperCase() }), /lowercase/, 'uppercase hash never matches upstream');
  t.throws(() => renderZeroclawConfig({ ...base, pairedTokenSha256: 'abc' }));
  t.throws(() => renderZeroclawConfig({ ...base, probeTokenSha256: 'zc_plain' }));
  for (const port of [0, 65_536, 1.5, Number.NaN]) t.throws(() => renderZeroclawConfig({ ...base, port }), /port/, String(port));
  for (const host of ['', ' 0.0.0.0']) t.throws(() => renderZeroclawConfig({ ...base, host }), /host/);
  t.throws(() => renderZeroclawConfig({ ...base, requestTimeoutS: 0 }), /requestTimeoutS/);
  t.throws(() => renderZeroclawConfig({ ...base, llm: { baseUrl: base.llm.baseUrl, model: ' ' } }), /model/);
  const weird = 'a "quoted" \\ model\n\ttab\u0001\u007f é 🦀';
  t.equal(toml({ llm: { baseUrl: base.llm.baseUrl, model: weird } }).providers.models.custom.platform.model, weird, 'round-trips through TOML');
  t.equal(tomlString('x'), '"x"');
  t.throws(() => tomlString('\ud800'), /well-formed/);
});

t.test('the key travels only as the v0.8 env override', async (t) => {
  t.same(zeroclawEnv({ apiKey: 'sk-1' }), { ZEROCLAW_providers__models__custom__platform__api_key: 'sk-1' });
  t.same(zeroclawEnv({}), {});
  t.same(zeroclawEnv({ apiKey: '  ' }), {}, 'a blank key is no key (upstream trims it away)');
  for (const name of Object.keys(zeroclawEnv({ apiKey: 'k' }))) t.match(name, ZEROCLAW_OVERRIDE_NAME, 'an override name (lowercase tail)');
  t.notMatch('ZEROCLAW_CONFIG_DIR', ZEROCLAW_OVERRIDE_NAME, 'bootstrap names are uppercase');
});

t.test('state paths, excludes, command, readiness', async (t) => {
  const paths = ZEROCLAW_STATE_PATHS.map((p) => p.path);
  t.equal(new Set(paths).size, paths.length, 'no duplicates');
  for (const p of [...paths, ...ZEROCLAW_CACHE_EXCLUDES]) t.ok(!p.startsWith('/') && !p.split('/').includes('..') && !p.endsWith('/') && !p.includes('\\'), `${p}: relative posix`);
  t.same(ZEROCLAW_STATE_PATHS.find((p) => p.path === 'data/memory/brain.db'), { path: 'data/memory/brain.db', kind: 'sqlite' });
  t.ok(ZEROCLAW_STATE_PATHS.some((p) => p.path === 'data/sessions/sessions.db' && p.kind === 'sqlite'));
  t.ok(ZEROCLAW_STATE_PATHS.some((p) => p.path === '.secret_key' && p.kind === 'file'));
  t.ok(ZEROCLAW_STATE_PATHS.some((p) => p.path === 'agents' && p.kind === 'dir'));
  t.notOk(paths.includes('config.toml'), 'config.toml is rewritten at every start: not state');
  const dirs = ZEROCLAW_STATE_PATHS.filter((p) => p.kind === 'dir').map((p) => `${p.path}/`);
  for (const db of ZEROCLAW_STATE_PATHS.filter((p) => p.kind === 'sqlite')) t.notOk(dirs.some((d) => db.path.startsWith(d)), `${db.path} is not inside a listed dir (never copied raw)`);
  for (const x of ZEROCLAW_CACHE_EXCLUDES) t.notOk(paths.includes(x), `${x} is not also state`);
  t.same([...ZEROCLAW_COMMAND_ARGS], ['daemon']);

  const p = zeroclawReadinessProbe;
  t.same([p.method, p.path, p.headers], ['GET', '/api/status', 'bearer']);
  t.ok(p.readyWhen(200, JSON.stringify({ model: 'gpt-4o-mini', paired: true })));
  t.notOk(p.readyWhen(200, JSON.stringify({ model: '' })), 'no model: needs_quickstart');
  t.notOk(p.readyWhen(200, JSON.stringify({ model: null })));
  t.notOk(p.readyWhen(401, JSON.stringify({ model: 'm' })), 'not paired');
  t.notOk(p.readyWhen(200, '<html>'), 'not the status document');
});
