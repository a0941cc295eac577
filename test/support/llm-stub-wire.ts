/**
 * The OpenAI wire shapes the stub LLM answers with: chat completions (whole and as server-sent
 * event chunks), the Responses API (whole and as its typed events), the model list, and errors
 * (`{"error": {message, type, param, code}}`).
 */
import type { ServerResponse } from 'node:http';
import { roughTokens } from './llm-stub-reply.js';

export const STUB_MODEL = 'stub-model';

export interface OpenAiError {
  status: number;
  message: string;
  type: string;
  code: string | null;
  param?: string | null;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, e: OpenAiError): void {
  sendJson(res, e.status, { error: { message: e.message, type: e.type, param: e.param ?? null, code: e.code } });
}

export const invalidRequest = (message: string, param: string | null = null): OpenAiError =>
  ({ status: 400, message, type: 'invalid_request_error', code: null, param });

export function modelObject(id: string): Record<string, unknown> {
  return { id, object: 'model', created: 1_700_000_000, owned_by: 'llm-stub' };
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usageOf(prompt: string, reply: string): Usage {
  const p = roughTokens(prompt);
  const c = roughTokens(reply);
  return { prompt_tokens: p, completion_tokens: c, total_tokens: p + c };
}

const nowS = (): number => Math.floor(Date.now() / 1000);

export function chatCompletion(id: string, model: string, reply: string, usage: Usage): Record<string, unknown> {
  return {
    id, object: 'chat.completion', created: nowS(), model,
    choices: [{ index: 0, message: { role: 'assistant', content: reply, refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage,
  };
}

/** The reply in a few pieces, so callers really assemble a stream rather than read one chunk. */
export function pieces(reply: string, count = 3): string[] {
  const size = Math.max(1, Math.ceil(reply.length / count));
  const out: string[] = [];
  for (let i = 0; i < reply.length; i += size) out.push(reply.slice(i, i + size));
  return out.length > 0 ? out : [''];
}

/** The chat.completion.chunk events of a streamed answer, each a `data:` payload, then [DONE]. */
export function chatChunks(id: string, model: string, reply: string, usage: Usage | undefined): string[] {
  const created = nowS();
  const chunk = (delta: Record<string, unknown>, finish: string | null): string => JSON.stringify({
    id, object: 'chat.completion.chunk', created, model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...(usage ? { usage: null } : {}),
  });
  const events = pieces(reply).map((text, i) => chunk(i === 0 ? { role: 'assistant', content: text } : { content: text }, null));
  events.push(chunk({}, 'stop'));
  // With stream_options.include_usage OpenAI sends one more chunk: no choices, the usage.
  if (usage) events.push(JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage }));
  events.push('[DONE]');
  return events;
}

/** A completed Responses API object holding one assistant message. */
export function response(id: string, model: string, reply: string, usage: Usage, status = 'completed'): Record<string, unknown> {
  const done = status === 'completed';
  return {
    id, object: 'response', created_at: nowS(), status, model, error: null, incomplete_details: null,
    output: done ? [outputMessage(id, reply)] : [],
    ...(done ? { output_text: reply } : {}),
    usage: done ? { input_tokens: usage.prompt_tokens, output_tokens: usage.completion_tokens, total_tokens: usage.total_tokens } : null,
  };
}

function outputMessage(id: string, text: string): Record<string, unknown> {
  return { type: 'message', id: `msg_${id}`, status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] };
}

/** The typed events of a streamed Responses API answer, as [event name, data] pairs. */
export function responseEvents(id: string, model: string, reply: string, usage: Usage): Array<[string, string]> {
  const itemId = `msg_${id}`;
  const events: Array<Record<string, unknown>> = [
    { type: 'response.created', response: response(id, model, reply, usage, 'in_progress') },
    { type: 'response.output_item.added', output_index: 0, item: { type: 'message', id: itemId, status: 'in_progress', role: 'assistant', content: [] } },
    { type: 'response.content_part.added', item_id: itemId, output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } },
    ...pieces(reply).map((delta) => ({ type: 'response.output_text.delta', item_id: itemId, output_index: 0, content_index: 0, delta })),
    { type: 'response.output_text.done', item_id: itemId, output_index: 0, content_index: 0, text: reply },
    { type: 'response.content_part.done', item_id: itemId, output_index: 0, content_index: 0, part: { type: 'output_text', text: reply, annotations: [] } },
    { type: 'response.output_item.done', output_index: 0, item: outputMessage(id, reply) },
    { type: 'response.completed', response: response(id, model, reply, usage) },
  ];
  return events.map((e, i) => [String(e.type), JSON.stringify({ ...e, sequence_number: i })]);
}
