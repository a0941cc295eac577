/**
 * The stub LLM (test/support/llm-stub.ts) over real HTTP: OpenAI's shapes whole and streamed, a
 * reply that proves the conversation it was sent, what it records, its errors, and its standalone
 * main (`npm run llm-stub`) as a real child process.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { startLlmStub, MAX_BODY, type LlmStub } from './support/llm-stub.js';
import { quote, stubReply } from './support/llm-stub-reply.js';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const KEY = 'sk-stub-secret-value-0123456789';

let stub: LlmStub;
t.before(async () => {
  stub = await startLlmStub();
});
t.teardown(() => stub.close());

async function post(p: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await request(`${stub.url}${p}`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

/** Server-sent events as [event name | undefined, data] pairs, checking the framing as it goes. */
function events(text: string): Array<[string | undefined, string]> {
  if (!text.endsWith('\n\n')) throw new Error('the stream does not end on an event boundary');
  return text.trimEnd().split('\n\n').map((block) => {
    const lines = block.split('\n');
    const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
    const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
    return [event, data];
  });
}

// What OpenClaw sends, in size and form: a long system prompt, tools, a transcript with parts.
const SYSTEM = `You are a personal assistant.\n${'Rules and skills. '.repeat(2700)}`;
const TOOLS = Array.from({ length: 11 }, (_, i) => ({ type: 'function', function: { name: i === 0 ? 'exec' : `tool_${i}`, parameters: { type: 'object', properties: {} } } }));
const TRANSCRIPT = [
  { role: 'system', content: SYSTEM },
  { role: 'user', content: 'hello' },
  { role: 'assistant', content: 'stub reply: user turns 1; last: "hello"' },
  { role: 'user', content: [{ type: 'text', text: 'my name is' }, { type: 'image_url', image_url: { url: 'data:,' } }, { type: 'text', text: '  Alice "the first"' }] },
  { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'exec', arguments: '{}' } }] },
  { role: 'tool', tool_call_id: 'c1', content: 'ok' },
];

t.test('the reply counts user turns and quotes the last one (string or text parts)', async (t) => {
  t.equal(stubReply(TRANSCRIPT), 'stub reply: user turns 2; last: "my name is Alice \\"the first\\""');
  t.equal(stubReply([{ role: 'system', content: 'memories: likes tea' }]), 'stub reply: user turns 0; last: ""');
  const long = `[Telegram Sandbox id:10001 2026-01-01 10:00] ${'x'.repeat(300)} what did I say?`;
  const q = quote(long);
  t.equal(q.length, 200, 'at most 200 characters');
  t.ok(q.startsWith('…') && q.endsWith('x what did I say?'), 'a long message keeps its end, where the user text is');
});

t.test('GET /v1/models lists stub-model; any model id is answered', async (t) => {
  const list = await request(`${stub.url}/models`);
  t.equal(list.statusCode, 200);
  t.same(await list.body.json(), { object: 'list', data: [{ id: 'stub-model', object: 'model', created: 1_700_000_000, owned_by: 'llm-stub' }] });
  const one = await request(`${stub.url}/models/gpt-4o-mini`);
  t.match(await one.body.json(), { id: 'gpt-4o-mini', object: 'model' });
});

t.test('chat completion, whole: OpenAI shape, the requested model, tools ignored, the request recorded', async (t) => {
  const before = stub.requests.length;
  const r = await post('/chat/completions', { model: 'openclaw/stub-model', messages: TRANSCRIPT, tools: TOOLS, tool_choice: 'auto' }, { authorization: `Bearer ${KEY}` });
  t.equal(r.status, 200);
  t.match(r.headers['content-type'], /^application\/json/);
  const body = JSON.parse(r.text);
  t.match(body, {
    id: /^chatcmpl-/, object: 'chat.completion', model: 'openclaw/stub-model',
    choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: stubReply(TRANSCRIPT) } }],
  });
  t.notOk(body.choices[0].message.tool_calls, 'never a tool call');
  t.ok(body.usage.prompt_tokens > 10_000 && body.usage.total_tokens === body.usage.prompt_tokens + body.usage.completion_tokens, 'usage adds up');
  t.equal(stub.requests.length, before + 1);
  const rec = stub.requests.at(-1);
  t.match(rec, { method: 'POST', path: '/v1/chat/completions', authorization: true });
  t.same((rec?.body as { messages: unknown }).messages, TRANSCRIPT, 'the whole transcript, as sent');
  t.notMatch(JSON.stringify(stub.requests), KEY, 'the key is never kept');

  await post('/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'no key' }] });
  t.equal(stub.requests.at(-1)?.authorization, false);
});

t.test('chat completion, streamed: chunks that assemble to the reply, stop, usage on request, [DONE]', async (t) => {
  const messages = [{ role: 'system', content: 'Recalled memories:\n- likes tea' }, { role: 'user', content: 'what do I like?' }];
  const withUsage = await post('/chat/completions', { model: 'm', messages, stream: true, stream_options: { include_usage: true } });
  t.equal(withUsage.status, 200);
  t.match(withUsage.headers['content-type'], /^text\/event-stream/);
  const ev = events(withUsage.text);
  t.equal(ev.at(-1)?.[1], '[DONE]');
  t.ok(ev.every(([name]) => name === undefined), 'chat chunks are unnamed data events');
  const chunks = ev.slice(0, -1).map(([, d]) => JSON.parse(d));
  t.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id && c.model === 'm'));
  const content = chunks.filter((c) => c.choices.length > 0);
  t.ok(content.length >= 3, 'the reply comes in more than one piece');
  t.equal(content[0].choices[0].delta.role, 'assistant');
  t.equal(content.map((c) => c.choices[0].delta.content ?? '').join(''), 'stub reply: user turns 1; last: "what do I like?"');
  t.same(content.at(-1).choices[0], { index: 0, delta: {}, logprobs: null, finish_reason: 'stop' });
  t.ok(content.slice(0, -1).every((c) => c.choices[0].finish_reason === null));
  const usage = chunks.at(-1);
  t.same(usage.choices, [], 'the usage chunk has no choices');
  t.match(usage.usage, { prompt_tokens: Number, completion_tokens: Number, total_tokens: Number });

  const plain = events((await post('/chat/completions', { model: 'm', messages, stream: true })).text);
  const plainChunks = plain.slice(0, -1).map(([, d]) => JSON.parse(d));
  t.ok(plainChunks.every((c) => c.choices.length === 1 && c.usage === undefined), 'no usage chunk unless asked for');
  t.equal(plainChunks.at(-1).choices[0].finish_reason, 'stop');
});

t.test('Responses API, whole and streamed', async (t) => {
  const input = [{ role: 'user', content: [{ type: 'input_text', text: 'one' }] }, { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'r' }] }, { role: 'user', content: 'two' }];
  const whole = JSON.parse((await post('/responses', { model: 'm', instructions: 'be brief', input })).text);
  t.match(whole, { object: 'response', status: 'completed', model: 'm', output_text: 'stub reply: user turns 2; last: "two"' });
  t.match(whole.output, [{ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'stub reply: user turns 2; last: "two"' }] }]);
  const str = JSON.parse((await post('/responses', { model: 'm', input: 'just a string' })).text);
  t.equal(str.output_text, 'stub reply: user turns 1; last: "just a string"');

  const ev = events((await post('/responses', { model: 'm', input, stream: true })).text);
  const names = ev.map(([name]) => name);
  t.equal(names[0], 'response.created');
  t.equal(names.at(-1), 'response.completed');
  const data = ev.map(([name, d]) => ({ name, ...JSON.parse(d) }));
  t.ok(data.every((d, i) => d.type === d.name && d.sequence_number === i), 'event names match their type, numbered in order');
  t.equal(data.filter((d) => d.type === 'response.output_text.delta').map((d) => d.delta).join(''), 'stub reply: user turns 2; last: "two"');
  t.equal(data.at(-1).response.output_text, 'stub reply: user turns 2; last: "two"');
});

t.test('errors: OpenAI error shape for bad JSON, a missing field, a body too large; 404 elsewhere', async (t) => {
  const bad = await post('/chat/completions', '{"model": "m", "messages": [');
  t.equal(bad.status, 400);
  t.match(JSON.parse(bad.text), { error: { message: /could not parse the JSON body/, type: 'invalid_request_error', code: null } });
  const notObject = await post('/chat/completions', '[1,2]');
  t.equal(notObject.status, 400);
  const missing = await post('/chat/completions', { model: 'm' });
  t.equal(missing.status, 400);
  t.match(JSON.parse(missing.text), { error: { message: /'messages'/, param: 'messages', type: 'invalid_request_error' } });
  t.equal((await post('/responses', { model: 'm', input: 3 })).status, 400);

  const big = await post('/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x'.repeat(MAX_BODY) }] });
  t.equal(big.status, 413);
  t.match(JSON.parse(big.text), { error: { code: 'request_too_large' } });

  for (const [method, p] of [['GET', '/v1/chat/completions'], ['POST', '/v1/embeddings'], ['GET', '/'], ['POST', '/chat/completions']] as const) {
    const res = await request(`${stub.url.replace(/\/v1$/, '')}${p}`, { method, ...(method === 'POST' ? { body: '{}' } : {}) });
    t.equal(res.statusCode, 404, `${method} ${p}`);
    t.same(await res.body.json(), { error: { message: `Invalid URL (${method} ${p})`, type: 'invalid_request_error', param: null, code: null } });
  }
});

t.test('delayMs holds each answer; close() ends a delayed one at once', async (t) => {
  const slow = await startLlmStub({ delayMs: 300 });
  const started = Date.now();
  const r = await request(`${slow.url}/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }) });
  await r.body.text();
  t.ok(Date.now() - started >= 290, 'answered after the delay');

  const long = await startLlmStub({ delayMs: 60_000 });
  const pending = request(`${long.url}/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', messages: [] }) }).then((x) => x.body.text(), () => 'closed');
  await new Promise((r) => setTimeout(r, 100));
  const closing = Date.now();
  await long.close();
  await pending;
  t.ok(Date.now() - closing < 2_000, 'close did not wait for the delay');
  await slow.close();
  await t.rejects(startLlmStub({ host: '0.0.0.0' }), /loopback/);
});

/** The standalone main as `npm run llm-stub` runs it. */
function runMain(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/support/llm-stub-main.ts')], {
    cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null }));
  const url = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', () => {
      const m = /^AGENT_LLM_BASE_URL=(\S+)$/m.exec(stdout);
      if (m?.[1]) resolve(m[1]);
    });
    void exited.then(() => reject(new Error(`exited before printing its URL: ${stderr}`)));
  });
  url.catch(() => undefined); // awaited only by tests that expect it to start
  return { child, url, exited, out: () => stdout, err: () => stderr };
}

t.test('main: prints the base URL, logs requests without the key, stops cleanly on SIGTERM and SIGINT', async (t) => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const main = runMain({ LLM_STUB_PORT: '0' });
    const url = await main.url;
    t.match(url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    const res = await request(`${url}/chat/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ model: 'stub-model', messages: TRANSCRIPT, tools: TOOLS, stream: true }),
    });
    const streamed = events(await res.body.text()).slice(0, -1).map(([, d]) => JSON.parse(d).choices[0].delta.content ?? '').join('');
    t.equal(streamed, stubReply(TRANSCRIPT));
    main.child.kill(signal);
    t.same(await main.exited, { code: 0, signal: null }, `exit 0 on ${signal}`);
    t.match(main.out(), /POST \/v1\/chat\/completions model=stub-model stream=true messages=6 user=2 system=\d{5}ch tools=11 auth=yes/);
    t.notMatch(main.out() + main.err(), KEY);
  }
});

t.test('main: a bad LLM_STUB_PORT exits 2; a port in use exits 1 with a reason', async (t) => {
  const bad = runMain({ LLM_STUB_PORT: 'http' });
  t.same(await bad.exited, { code: 2, signal: null });
  t.match(bad.err(), /LLM_STUB_PORT must be a whole number/);
  const port = new URL(stub.url).port;
  const busy = runMain({ LLM_STUB_PORT: port });
  t.same(await busy.exited, { code: 1, signal: null });
  t.match(busy.err(), new RegExp(`port ${port} is in use`));
});

t.test('the user turns and the typed text, without what OpenClaw and ZeroClaw wrap around them', async (t) => {
  const openclawTurn = '[Tue 2026-12-01 09:05 UTC] Conversation info: \u27e6openclaw:ctx\u27e7\n```json\n{"sender":{"id":"555"}}\n```\n\nhello, remember banana\n\nRuntime: agent=main | model=platform/stub-model';
  const internal = [{ type: 'text', text: '<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nConversation data\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>' }];
  t.equal(stubReply([{ role: 'system', content: 'x' }, { role: 'user', content: openclawTurn }, { role: 'user', content: internal }]),
    'stub reply: user turns 1; last: "hello, remember banana"', 'internal context is no turn; the wrapping is stripped');
  t.equal(stubReply([{ role: 'user', content: '[Memory context]\n- earlier\n[/Memory context]\n\n[2026-12-01 10:00:00 UTC] hi there' }]),
    'stub reply: user turns 1; last: "hi there"', 'ZeroClaw\'s recalled memory and time prefix are stripped');
});
