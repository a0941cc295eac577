/**
 * What AGENT_SANDBOX means on this host, decided once per process: `namespaces` when the probe (the
 * real sandbox run once on a scratch directory, agent/agent-sandbox.ts) passes; `auto` falls back
 * to no sandbox with a reason; an explicit `namespaces` the host cannot give is a ConfigError.
 * The line it gives is what `npm start` prints and `ztm status` shows.
 */
import type { AgentSandboxConfig } from '../config.js';
import { ConfigError } from '../errors.js';
import { describeSandbox, probeSandbox, type SandboxProbe } from '../../agent/agent-sandbox.js';

export interface AgentIsolation {
  sandboxed: boolean;
  /** `agents sandboxed (...)` or `agents are NOT sandboxed: <reason>`. */
  line: string;
  /** Who a sandboxed agent runs as when the platform is root. */
  uid: number;
  gid: number;
}

let probed: SandboxProbe | undefined;

/** The probe's outcome, run at most once per process (~0.1 s). */
function probeOnce(c: AgentSandboxConfig): SandboxProbe {
  probed ??= probeSandbox({ uid: c.uid, gid: c.gid });
  return probed;
}

export function resolveAgentIsolation(c: AgentSandboxConfig): AgentIsolation {
  const ids = { uid: c.uid, gid: c.gid };
  if (c.mode === 'off') return { sandboxed: false, line: 'agents are NOT sandboxed: AGENT_SANDBOX=off', ...ids };
  const probe = probeOnce(c);
  if (probe.ok) return { sandboxed: true, line: `agents sandboxed (${describeSandbox({ hide: [], ...ids })})`, ...ids };
  if (c.mode === 'namespaces') throw new ConfigError('AGENT_SANDBOX', `namespaces: this host cannot run a sandboxed agent (${probe.reason})`);
  return { sandboxed: false, line: `agents are NOT sandboxed: this host cannot (${probe.reason}); set AGENT_SANDBOX=off to say that is intended`, ...ids };
}
