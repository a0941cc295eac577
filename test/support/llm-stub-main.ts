/**
 * The stub LLM (llm-stub.ts) as a process, for running agents by hand:
 *
 *   npm run llm-stub                      # LLM_STUB_PORT (default 4000), LLM_STUB_DELAY_MS (0)
 *   AGENT_LLM_BASE_URL=http://127.0.0.1:4000/v1 AGENT_LLM_MODEL=stub-model npm start
 *
 * Prints `AGENT_LLM_BASE_URL=<url>` first (a line a script can read or a shell can eval), then one
 * line per request: what it proves about the conversation, never the Authorization's value.
 */
import { startLlmStub, type StubRequest } from './llm-stub.js';
import { contentText } from './llm-stub-reply.js';
import { STUB_MODEL } from './llm-stub-wire.js';

function envInt(name: string, fallback: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!/^[0-9]{1,6}$/.test(raw) || n > max) {
    console.error(`llm stub: ${name} must be a whole number from 0 to ${max}, not ${JSON.stringify(raw.slice(0, 20))}`);
    process.exit(2);
  }
  return n;
}

/** e.g. `POST /v1/chat/completions model=stub-model stream=true messages=7 user=3 system=48213ch tools=11 auth=yes`. */
function describe(r: StubRequest): string {
  const b = (r.body ?? {}) as Record<string, unknown>;
  const parts = [r.method, r.path];
  const messages = Array.isArray(b.messages) ? b.messages : Array.isArray(b.input) ? b.input : undefined;
  if (typeof b.model === 'string') parts.push(`model=${b.model.slice(0, 60)}`);
  if (r.method === 'POST') parts.push(`stream=${b.stream === true}`);
  if (messages) {
    const roles = messages.map((m) => (m as { role?: unknown } | null)?.role);
    const system = messages
      .filter((m) => ['system', 'developer'].includes(String((m as { role?: unknown } | null)?.role)))
      .reduce((n: number, m) => n + contentText((m as { content?: unknown }).content).length, 0);
    parts.push(`messages=${messages.length}`, `user=${roles.filter((x) => x === 'user').length}`, `system=${system}ch`);
  }
  if (Array.isArray(b.tools)) parts.push(`tools=${b.tools.length}`);
  parts.push(`auth=${r.authorization ? 'yes' : 'no'}`);
  return `${new Date(r.at).toISOString()} ${parts.join(' ')}`;
}

async function main(): Promise<void> {
  const port = envInt('LLM_STUB_PORT', 4000, 65535);
  const delayMs = envInt('LLM_STUB_DELAY_MS', 0, 600_000);
  const stub = await startLlmStub({ port, delayMs, onRequest: (r) => console.log(describe(r)) });
  console.log(`AGENT_LLM_BASE_URL=${stub.url}`);
  console.log(`llm stub listening (model ${STUB_MODEL}, any model id and any API key accepted); Ctrl-C to stop`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    stub.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  const code = (err as { code?: unknown } | undefined)?.code;
  console.error(code === 'EADDRINUSE'
    ? `llm stub: port ${process.env.LLM_STUB_PORT ?? 4000} is in use: set LLM_STUB_PORT to another port (0 picks a free one)`
    : `llm stub: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
