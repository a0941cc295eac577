/**
 * The ZeroClaw emulator's files under `<install>` (zeroclaw-emulator.ts), shaped like upstream's
 * (15d2866) so the shim's checkpoint sees what it will see in a pod:
 *   data/memory/brain.db    crates/zeroclaw-memory/src/sqlite.rs (PRAGMAs, init_schema) reshaped by
 *                           crates/zeroclaw-config/src/schema/v2.rs migrate_sqlite_memory_to_v3
 *                           (agents table, memories.agent_id, UNIQUE (agent_id, key))
 *   recall + injection      sqlite.rs fts5_search_scoped (terms OR'ed, bm25), crates/zeroclaw-runtime/
 *                           src/agent/memory_inject.rs (skip set, 4 entries, 800/4000 chars, wrapper)
 *   data/sessions/sessions.db  crates/zeroclaw-infra/src/session_sqlite.rs (WAL)
 *   data/devices.db         crates/zeroclaw-gateway/src/api_pairing.rs (WAL)
 *   data/cron/jobs.db       crates/zeroclaw-runtime/src/cron/store.rs (daemon only)
 *   data/state/costs.jsonl  crates/zeroclaw-config/src/cost/tracker.rs (cost tracking is on by default)
 *   agents/<a>/workspace/   schema.rs ensure_bootstrap_files (IDENTITY.md, SOUL.md), made at a turn
 *   .secret_key             crates/zeroclaw-config/src/secrets.rs; upstream makes it on the first
 *                           encryption, the emulator at start so every checkpoint has one
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

const now = (): string => new Date().toISOString();

const BRAIN_SCHEMA = `
CREATE TABLE IF NOT EXISTS agents (id TEXT PRIMARY KEY, alias TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS memories (
  id TEXT PRIMARY KEY, key TEXT NOT NULL, content TEXT NOT NULL, category TEXT NOT NULL DEFAULT 'core',
  embedding BLOB, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, session_id TEXT,
  namespace TEXT DEFAULT 'default', importance REAL DEFAULT 0.5, superseded_by TEXT,
  agent_id TEXT NOT NULL REFERENCES agents(id), kind TEXT, pinned INTEGER NOT NULL DEFAULT 0, tenant_id TEXT,
  UNIQUE (agent_id, key)
);
CREATE INDEX IF NOT EXISTS idx_memories_category ON memories(category);
CREATE INDEX IF NOT EXISTS idx_memories_key ON memories(key);
CREATE INDEX IF NOT EXISTS idx_memories_session ON memories(session_id);
CREATE INDEX IF NOT EXISTS idx_memories_namespace ON memories(namespace);
CREATE INDEX IF NOT EXISTS idx_memories_agent_id ON memories(agent_id);
CREATE INDEX IF NOT EXISTS idx_memories_namespace_category ON memories(namespace, category);
CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(key, content, content=memories, content_rowid=rowid);
CREATE TRIGGER IF NOT EXISTS memories_ai AFTER INSERT ON memories BEGIN
  INSERT INTO memories_fts(rowid, key, content) VALUES (new.rowid, new.key, new.content);
END;
CREATE TRIGGER IF NOT EXISTS memories_ad AFTER DELETE ON memories BEGIN
  INSERT INTO memories_fts(memories_fts, rowid, key, content) VALUES ('delete', old.rowid, old.key, old.content);
END;
CREATE TRIGGER IF NOT EXISTS memories_au AFTER UPDATE ON memories BEGIN
  INSERT INTO memories_fts(memories_fts, rowid, key, content) VALUES ('delete', old.rowid, old.key, old.content);
  INSERT INTO memories_fts(rowid, key, content) VALUES (new.rowid, new.key, new.content);
END;
CREATE TABLE IF NOT EXISTS embedding_cache (content_hash TEXT PRIMARY KEY, embedding BLOB NOT NULL, created_at TEXT NOT NULL, accessed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS memory_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL, applied_at TEXT NOT NULL);
`;

const SESSIONS_SCHEMA = `
CREATE TABLE IF NOT EXISTS sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, session_key TEXT NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_sessions_key ON sessions(session_key);
CREATE TABLE IF NOT EXISTS session_metadata (session_key TEXT PRIMARY KEY, created_at TEXT NOT NULL, last_activity TEXT NOT NULL, message_count INTEGER NOT NULL DEFAULT 0, name TEXT);
CREATE TABLE IF NOT EXISTS jsonl_import_receipts (source_name TEXT PRIMARY KEY, session_key TEXT NOT NULL, source_hash TEXT NOT NULL, source_len INTEGER NOT NULL, imported_at TEXT NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS sessions_fts USING fts5(session_key, content, content=sessions, content_rowid=id);
`;

export interface Recalled {
  key: string;
  content: string;
  category: string;
}

/** brain.db, opened with upstream's PRAGMAs and final v0.8 shape; the gateway's own rows belong to agent "default". */
export class BrainDb {
  private readonly db: Database.Database;

  constructor(dataDir: string) {
    mkdirSync(path.join(dataDir, 'memory'), { recursive: true });
    this.db = new Database(path.join(dataDir, 'memory', 'brain.db'));
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(BRAIN_SCHEMA);
    this.db.prepare("INSERT OR IGNORE INTO schema_version (component, version, applied_at) VALUES ('memories', 1, ?)").run(now());
    this.agentId('default');
  }

  /** schema/v2.rs sqlite_ensure_agent_uuid: mint-or-query the agent row of an alias. */
  agentId(alias: string): string {
    this.db.prepare('INSERT OR IGNORE INTO agents (id, alias, created_at) VALUES (?, ?, ?)').run(randomUUID(), alias, now());
    return (this.db.prepare('SELECT id FROM agents WHERE alias = ?').get(alias) as { id: string }).id;
  }

  /** The webhook's autosave (lib.rs handle_webhook): key webhook_msg_<uuid>, category conversation. */
  store(key: string, content: string, category: string, sessionId: string | undefined, agent = 'default'): void {
    const at = now();
    this.db.prepare(`INSERT INTO memories (id, key, content, category, created_at, updated_at, session_id, agent_id)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id, key) DO UPDATE SET content = excluded.content, updated_at = excluded.updated_at`)
      .run(randomUUID(), key, content, category, at, at, sessionId ?? null, this.agentId(agent));
  }

  /** fts5_search_scoped for one agent: every term quoted and OR'ed; a session also sees durable global rows. */
  recall(agent: string, query: string, sessionId: string | undefined, limit = 5): Recalled[] {
    const terms = query.split(/\s+/).filter((w) => w !== '').map((w) => `"${w.replaceAll('"', '""')}"`);
    if (terms.length === 0) return [];
    const scoped = sessionId === undefined ? '' : " AND (m.session_id = @sid OR (m.session_id IS NULL AND m.category IN ('core', 'daily')))";
    return this.db.prepare(`SELECT m.key, m.content, m.category FROM memories_fts f JOIN memories m ON m.rowid = f.rowid
      WHERE memories_fts MATCH @q AND m.agent_id = @agent${scoped} ORDER BY bm25(memories_fts) LIMIT @limit`)
      .all({ q: terms.join(' OR '), agent: this.agentId(agent), limit, ...(sessionId === undefined ? {} : { sid: sessionId }) }) as Recalled[];
  }

  close(): void {
    this.db.close();
  }
}

/** lib.rs (zeroclaw-memory) should_skip_autosave_content: noise never stored as a conversation memory. */
export function skipAutosave(content: string): boolean {
  const t = content.trim().toLowerCase();
  return t === '' || t.startsWith('[cron:') || t.startsWith('[heartbeat task') || t.startsWith('[distilled_')
    || t.startsWith('[memory context]') || t.includes('distilled_index_sig:');
}

/**
 * memory_inject.rs render_memory_context: without a session, conversation rows are left out;
 * autosave keys, *_history keys and image/tool-result blobs never are injected; then the budgets.
 */
export function renderMemoryContext(entries: readonly Recalled[], hasSession: boolean): string {
  const lines: string[] = [];
  let used = 0;
  for (const e of entries) {
    if (lines.length >= 4) break;
    if (!hasSession && e.category === 'conversation') continue;
    const key = e.key.trim().toLowerCase();
    if (/^(user_msg|assistant_resp)(_|$)/.test(key) || key.endsWith('_history') || skipAutosave(e.content) || e.content.includes('[IMAGE:') || e.content.includes('<tool_result')) continue;
    const content = [...e.content].length > 800 ? `${[...e.content].slice(0, 797).join('')}...` : e.content;
    const line = `- ${e.key}: ${content}\n`;
    if (used + line.length > 4000) break;
    lines.push(line);
    used += line.length;
  }
  return lines.length === 0 ? '' : `[Memory context]\n${lines.join('')}[/Memory context]\n\n`;
}

/** The other stores a gateway (and a daemon) makes at start, so a checkpoint has them all. */
export class SideStores {
  private readonly dbs: Database.Database[] = [];
  private readonly devices: Database.Database;

  constructor(private readonly installDir: string, daemon: boolean) {
    const data = path.join(installDir, 'data');
    for (const d of ['sessions', 'state', 'cron']) mkdirSync(path.join(data, d), { recursive: true });
    const sessions = this.open(path.join(data, 'sessions', 'sessions.db'), true);
    sessions.exec(SESSIONS_SCHEMA);
    this.devices = this.open(path.join(data, 'devices.db'), true);
    this.devices.exec(`CREATE TABLE IF NOT EXISTS devices (token_hash TEXT PRIMARY KEY, id TEXT NOT NULL, name TEXT, device_type TEXT,
      paired_at TEXT NOT NULL, last_seen TEXT NOT NULL, ip_address TEXT, capabilities TEXT)`);
    if (daemon) {
      this.open(path.join(data, 'cron', 'jobs.db'), false).exec(`CREATE TABLE IF NOT EXISTS cron_jobs (id TEXT PRIMARY KEY, expression TEXT NOT NULL,
        command TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1);
        CREATE TABLE IF NOT EXISTS cron_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL, status TEXT NOT NULL, output TEXT)`);
    }
    const key = path.join(installDir, '.secret_key');
    if (!existsSync(key)) writeFileSync(key, randomBytes(32).toString('hex'), { mode: 0o600 });
  }

  private open(file: string, wal: boolean): Database.Database {
    const db = new Database(file);
    if (wal) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
    }
    this.dbs.push(db);
    return db;
  }

  registerDevice(tokenHash: string, ip: string): void {
    const at = now();
    this.devices.prepare('INSERT OR REPLACE INTO devices (token_hash, id, paired_at, last_seen, ip_address) VALUES (?, ?, ?, ?, ?)').run(tokenHash, randomUUID(), at, at, ip);
  }

  recordCost(model: string, usage: { prompt_tokens?: number; completion_tokens?: number } | undefined, agent: string): void {
    const input = usage?.prompt_tokens ?? 0;
    const output = usage?.completion_tokens ?? 0;
    const record = { id: randomUUID(), usage: { model, input_tokens: input, output_tokens: output, total_tokens: input + output, cost_usd: 0, timestamp: now() }, session_id: 'gateway', agent_alias: agent };
    appendFileSync(path.join(this.installDir, 'data', 'state', 'costs.jsonl'), `${JSON.stringify(record)}\n`);
  }

  close(): void {
    for (const db of this.dbs) db.close();
  }
}

const BOOTSTRAP: Array<[string, string]> = [
  ['IDENTITY.md', '# IDENTITY.md — Who Am I?\n\nI am ZeroClaw, an autonomous AI agent.\n'],
  ['SOUL.md', '# SOUL.md — Who You Are\n\nYou are ZeroClaw, an autonomous AI agent.\n'],
];

/** The agent's system prompt from its workspace files (made when missing, as at an agent's first turn). */
export function systemPrompt(installDir: string, agent: string, model: string): string {
  const ws = path.join(installDir, 'agents', agent, 'workspace');
  mkdirSync(ws, { recursive: true });
  const parts = BOOTSTRAP.map(([name, text]) => {
    const file = path.join(ws, name);
    if (!existsSync(file)) writeFileSync(file, text);
    return `## ${name}\n\n${readFileSync(file, 'utf8')}`;
  });
  return `${parts.join('\n')}\n## Runtime\n\nModel: ${model}. Risk profile: supervised. (ZeroClaw emulator)\n`;
}
