/**
 * What a profile (AGENT_PROFILE) tells the shim about its agent: the command and environment it
 * starts with, the config it writes from the platform's settings before the start, where its
 * liveness and readiness answer, and which files under its state root are its whole state. One
 * module per profile beside this file; the platform-side facts are in lib/agent-profiles.ts.
 */
import type { AgentProfileName, AgentProtocol, AgentSettings } from '../../lib/agent-profiles.js';
import type { Logger } from '../../lib/logger.js';
import type { StatePath } from '../state-archive.js';
import type { AgentCommand } from '../shim-config.js';

/** One HTTP check on loopback (or the agent's host): 200 (and `ok`, when given) means pass. */
export interface Probe {
  port: number;
  path: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** When given, it decides from the status and body (e.g. a readiness document that says ready); else 200 passes. */
  ok?: (status: number, body: string) => boolean;
  /** Probe 127.0.0.1 instead of the agent's host (an internal, loopback-only listener). */
  loopback?: boolean;
  /** For logs and errors: what the probe means. */
  describe: string;
}

/** Everything a profile needs to prepare a start; secrets in here never reach a log line. */
export interface ProfileContext {
  workspace: string;
  /** The profile's state root (absolute): `<workspace>/<stateDir>`. */
  stateRoot: string;
  /** Where the platform reaches the agent: its host (pod IP or loopback) and port. */
  host: string;
  port: number;
  /** A second port for the agent's own internal listener (OpenClaw's gateway), loopback only. */
  internalPort: number;
  tenantId: string;
  settings: AgentSettings;
  /** Only given in the telegram protocol (the agent answers Telegram itself). */
  botToken: string | undefined;
  /** The tenant's webhook secret (telegram protocol: the agent checks it on every update). */
  webhookSecret: string | undefined;
  /** SHA-256 (hex) of the bearer the forwarder sends to this tenant's agent (zeroclaw protocol). */
  agentTokenSha256: string | undefined;
  /** The Bot API base the platform itself uses (the sandbox's URL in sandbox mode). */
  botApiBase: string | undefined;
  /** `<ROUTER_PUBLIC_URL>/tg/<id>`: the only webhook URL an agent may register. */
  webhookUrl: string | undefined;
  /** The environment the agent's own starts from (the shim's, minus its secrets). */
  baseEnv: Record<string, string>;
  log: Logger;
}

export interface AgentLaunch {
  command: AgentCommand;
  env: Record<string, string>;
  cwd: string;
  /** The process answers (GET, any time). */
  liveness: Probe;
  /** All must pass before the platform may route to the agent: it can answer. */
  readiness: Probe[];
}

export interface AgentProfile {
  readonly name: AgentProfileName;
  readonly protocol: AgentProtocol;
  /** The state root under the workspace ('' = the workspace itself). */
  readonly stateDir: string;
  /** The whole state, relative to the state root (each SQLite database copied with the backup API). */
  readonly statePaths: readonly StatePath[];
  /** Regenerable paths under the state root, never checkpointed. */
  readonly stateExcludes: readonly string[];
  /** Where a tenant saved in the older single-brain.db form restores (undefined: this agent cannot use it). */
  readonly legacyBrainDb: string | undefined;
  /** Checks that need no tenant (binaries present, Node new enough); throws a one-line RuntimeError. */
  preflight(settings: AgentSettings): Promise<void>;
  /** Writes the agent's config from the platform's settings and says how to start and probe it. */
  prepare(ctx: ProfileContext): Promise<AgentLaunch>;
}
