/**
 * Any agent: AGENT_COMMAND (run by /bin/sh -c in the workspace), AGENT_PROTOCOL, AGENT_PORT,
 * AGENT_HEALTH_PATH (its readiness, default /health) and AGENT_STATE_PATHS (its state under the
 * workspace, default memory/brain.db). It gets PORT, HOST, WORKSPACE, TENANT_ID, AGENT_LLM_* and
 * AGENT_TOKEN_SHA256; in the telegram protocol also TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET.
 * The agent must check what the forwarder presents (docs/agents.md): in the zeroclaw protocol the
 * SHA-256 of `Authorization: Bearer <t>` equals AGENT_TOKEN_SHA256, in the telegram protocol
 * X-Telegram-Bot-Api-Secret-Token equals TELEGRAM_WEBHOOK_SECRET; else 401, which the forwarder
 * reads as "not this tenant's agent" (a stale endpoint).
 */
import type { AgentSettings } from '../../lib/agent-profiles.js';
import { parseStatePaths, type StatePath } from '../state-archive.js';
import { agentEnv, httpProbe, llmEnv } from './common.js';
import type { AgentProfile, ProfileContext } from './profile.js';

/** AGENT_TOKEN_SHA256 for an agent that checks the forwarder's bearer itself (reference, custom). */
export function bearerHashEnv(ctx: ProfileContext): Record<string, string> {
  return ctx.agentTokenSha256 === undefined ? {} : { AGENT_TOKEN_SHA256: ctx.agentTokenSha256 };
}

const DEFAULT_STATE = 'memory/brain.db';

export function customProfile(settings: AgentSettings): AgentProfile {
  const statePaths: StatePath[] = parseStatePaths(settings.statePaths ?? DEFAULT_STATE, 'AGENT_STATE_PATHS');
  return {
    name: 'custom',
    protocol: settings.protocol,
    stateDir: '',
    statePaths,
    stateExcludes: [],
    // An older tenant's brain.db goes where the reference agent kept it, if the custom agent keeps it there too.
    legacyBrainDb: statePaths.some((p) => p.path === DEFAULT_STATE) ? DEFAULT_STATE : undefined,
    async preflight() {},
    async prepare(ctx) {
      const command = ctx.settings.command ?? '';
      const health = httpProbe(ctx.port, ctx.settings.healthPath, `GET ${ctx.settings.healthPath}`);
      return {
        command: { file: '/bin/sh', args: ['-c', command], display: command },
        env: agentEnv(ctx, { ...llmEnv(ctx), ...bearerHashEnv(ctx) }),
        cwd: ctx.workspace,
        liveness: health,
        readiness: [health],
      };
    },
  };
}
