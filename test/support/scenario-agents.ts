/**
 * The agent a scenario file runs the platform with (test/support/delivery-scenarios.ts,
 * lifecycle-scenarios.ts), and how a scenario reads what that agent did:
 *
 *   reference   the echo agent: `You said: <text> (memories: N)`; its memory is the `memories`
 *               table of `<workspace>/memory/brain.db` (agent/reference-agent.ts).
 *   zeroclaw    AGENT_PROFILE=zeroclaw with the emulator as ZEROCLAW_BIN (zeroclaw-bin.ts) behind
 *               the stub LLM (llm-stub.ts). Its answer is the stub's, `stub reply: user turns 1;
 *               last: "<text>"` (each /webhook turn is the system prompt and one user message,
 *               `[<local time>] <text>`), so it cannot carry a count: the count is read from
 *               ZeroClaw's own memory, the webhook autosave rows (`webhook_msg_<uuid>`) of
 *               `<install>/data/memory/brain.db` (zeroclaw-emulator-stores.ts), install = the
 *               agent's ZEROCLAW_CONFIG_DIR. The model calls are counted at the stub.
 *
 * Where the memory is read: a tenant with a live agent, in the database that agent has open (found
 * from the process listening on the tenant's endpoint, so on either runtime and for a cold or a
 * claimed warm pod alike); a sleeping tenant, in its saved state, `tenants/<id>/state.tar.gz`
 * (the profile's state root as a tar.gz; agent/state-archive.ts), fetched with a presigned GET.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { extract } from 'tar';
import { request } from 'undici';
import { startLlmStub, type LlmStub } from './llm-stub.js';
import { contentText } from './llm-stub-reply.js';
import { ROOT, type TestPlatform } from './platform.js';
import { zeroclawEmulatorBin } from './zeroclaw-bin.js';

export type ScenarioAgentName = 'reference' | 'zeroclaw';

/** Where a memory count was read: the live agent's database, or the sleeping tenant's saved state. */
export type MemorySource = 'live' | 'saved';

export interface ScenarioAgent {
  readonly name: ScenarioAgentName;
  /** The platform's env for this agent (starts the stub LLM once, when the agent needs one). */
  env(): Promise<Record<string, string>>;
  close(): Promise<void>;
  /** The user's text the answer echoes, or undefined when the text is not an answer of this agent. */
  said(answer: string): string | undefined;
  /** The memory count the answer itself carries (the reference agent), else undefined. */
  countIn(answer: string): number | undefined;
  /** The messages the agent holds in its memory store, oldest first. */
  stored(p: TestPlatform, tenantId: string, from?: MemorySource): Promise<string[]>;
  /** How many messages the agent holds in its memory store. */
  memories(p: TestPlatform, tenantId: string, from?: MemorySource): Promise<number>;
  /** How many model calls carried `text` as the user's message (undefined: the agent calls no model). */
  modelCallsFor(text: string): number | undefined;
  /** Secrets the platform was given for this agent: they must be in no log line. */
  secrets(): string[];
}

/** How one agent keeps its memory: the database under the state root, and the query of its messages. */
interface MemoryLayout {
  /** The state root of a live agent, from its process (cwd, environment). */
  liveRoot(pid: number): string;
  /** The database, relative to the state root (and as an entry of state.tar.gz). */
  db: string;
  /** Selects the stored messages as `text`, oldest first. */
  query: string;
}

function procEnv(pid: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

const REFERENCE_MEMORY: MemoryLayout = {
  // The shim starts the reference agent with the workspace as its cwd and its state root.
  liveRoot: (pid) => readlinkSync(`/proc/${pid}/cwd`),
  db: 'memory/brain.db',
  query: 'SELECT text FROM memories ORDER BY id',
};

const ZEROCLAW_MEMORY: MemoryLayout = {
  // ZeroClaw's install dir is what its ZEROCLAW_CONFIG_DIR names (the highest-precedence source).
  liveRoot: (pid) => {
    const dir = procEnv(pid).ZEROCLAW_CONFIG_DIR;
    if (!dir) throw new Error(`the agent (pid ${pid}) has no ZEROCLAW_CONFIG_DIR: not a zeroclaw-profile agent`);
    return path.isAbsolute(dir) ? dir : path.resolve(readlinkSync(`/proc/${pid}/cwd`), dir);
  },
  db: 'data/memory/brain.db',
  // The webhook autosave: one row per /webhook turn (lib.rs handle_webhook), keyed webhook_msg_<uuid>.
  query: "SELECT content AS text FROM memories WHERE key LIKE 'webhook\\_msg\\_%' ESCAPE '\\' ORDER BY rowid",
};

function readMessages(file: string, query: string): string[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare(query).all() as Array<{ text: string }>).map((r) => r.text);
  } finally {
    db.close();
  }
}

/** The messages in a tenant's saved state (none saved: an empty memory). */
async function savedMessages(p: TestPlatform, tenantId: string, layout: MemoryLayout): Promise<string[]> {
  // The state key carries the record's incarnation.
  const { getUrl } = await p.clients.state.presign((await p.clients.registry.get(tenantId)) ?? tenantId);
  const res = await request(getUrl);
  if (res.statusCode === 404) {
    await res.body.dump();
    return [];
  }
  if (res.statusCode !== 200) throw new Error(`saved state of ${tenantId}: GET answered ${res.statusCode}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'ztm-scenario-state-'));
  try {
    const archive = path.join(dir, 'state.tar.gz');
    writeFileSync(archive, Buffer.from(await res.body.arrayBuffer()));
    await extract({ file: archive, cwd: dir, strict: true }, [layout.db]);
    if (!existsSync(path.join(dir, layout.db))) throw new Error(`saved state of ${tenantId} has no ${layout.db}`);
    return readMessages(path.join(dir, layout.db), layout.query);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function messagesOf(p: TestPlatform, tenantId: string, layout: MemoryLayout, from: MemorySource | undefined): Promise<string[]> {
  const pid = from === 'saved' ? undefined : await p.agentPidOf(tenantId);
  if (pid !== undefined) return readMessages(path.join(layout.liveRoot(pid), layout.db), layout.query);
  if (from === 'live') throw new Error(`${tenantId} has no live agent`);
  const status = from === 'saved' ? undefined : (await p.clients.registry.get(tenantId))?.status;
  if (status === 'running' || status === 'provisioning') throw new Error(`${tenantId} is ${status} but no agent listens on its endpoint: neither live nor saved memory is its memory`);
  return savedMessages(p, tenantId, layout);
}

/** `You said: <text> (memories: N)`, the whole answer. */
const REFERENCE_ANSWER = /^You said: ([\s\S]*) \(memories: (\d+)\)$/;

export function referenceAgent(): ScenarioAgent {
  return {
    name: 'reference',
    // Nothing set: the platform's default profile, exactly what the scenarios always ran with.
    async env() {
      return {};
    },
    async close() {},
    said: (answer) => REFERENCE_ANSWER.exec(answer)?.[1],
    countIn(answer) {
      const m = REFERENCE_ANSWER.exec(answer);
      return m ? Number(m[2]) : undefined;
    },
    stored: (p, tenantId, from) => messagesOf(p, tenantId, REFERENCE_MEMORY, from),
    memories: async (p, tenantId, from) => (await messagesOf(p, tenantId, REFERENCE_MEMORY, from)).length,
    modelCallsFor: () => undefined,
    secrets: () => [],
  };
}

/** The stub's answer to one ZeroClaw turn (llm-stub-reply.ts): a turn is one user message. */
const STUB_ANSWER = /^stub reply: user turns 1; last: ("(?:[^"\\]|\\.)*")$/;
/** The end of ZeroClaw's user message: `[%Y-%m-%d %H:%M:%S %:z] <message>` (after any memory context). */
const TURN_TAIL = /\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{2}:\d{2}\] ([\s\S]*)$/;

export function zeroclawAgent(): ScenarioAgent {
  let stub: Promise<LlmStub> | undefined;
  let started: LlmStub | undefined;
  const apiKey = `sk-scenario-${randomBytes(12).toString('hex')}`;
  /** The user's text of one turn, from the message ZeroClaw sent the model. */
  const turnText = (userMessage: string): string | undefined => TURN_TAIL.exec(userMessage)?.[1];
  return {
    name: 'zeroclaw',
    async env() {
      stub ??= startLlmStub().then((s) => (started = s));
      const s = await stub;
      return {
        AGENT_PROFILE: 'zeroclaw',
        // Outside /tmp: the Kubernetes stand-in gives each pod its own /tmp (env paths under it are
        // rewritten into the pod's volume), as a real pod has the binary in its image instead.
        ZEROCLAW_BIN: zeroclawEmulatorBin(path.join(ROOT, 'node_modules', '.cache', 'ztm-zeroclaw-emulator')),
        AGENT_LLM_BASE_URL: s.url,
        AGENT_LLM_MODEL: 'scenario-model',
        AGENT_LLM_API_KEY: apiKey,
      };
    },
    async close() {
      await (await stub)?.close();
    },
    said(answer) {
      const m = STUB_ANSWER.exec(answer);
      if (!m) return undefined;
      const quoted = JSON.parse(m[1] as string) as string;
      // The stub quotes what the person typed (llm-stub-reply.ts typedText); should it quote ZeroClaw's
      // whole user message, the text is what follows the turn's timestamp.
      return turnText(quoted) ?? quoted;
    },
    countIn: () => undefined,
    stored: (p, tenantId, from) => messagesOf(p, tenantId, ZEROCLAW_MEMORY, from),
    memories: async (p, tenantId, from) => (await messagesOf(p, tenantId, ZEROCLAW_MEMORY, from)).length,
    modelCallsFor(text) {
      if (!started) return 0;
      let n = 0;
      for (const r of started.requests) {
        if (r.method !== 'POST' || !r.path.endsWith('/chat/completions')) continue;
        const messages = (r.body as { messages?: Array<{ role?: unknown; content?: unknown }> } | undefined)?.messages ?? [];
        const user = messages.filter((m) => m.role === 'user').at(-1);
        if (user && turnText(contentText(user.content)) === text) n++;
      }
      return n;
    },
    secrets: () => [apiKey],
  };
}

export function scenarioAgent(name: ScenarioAgentName): ScenarioAgent {
  return name === 'zeroclaw' ? zeroclawAgent() : referenceAgent();
}
