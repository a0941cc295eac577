/**
 * Any agent: AGENT_COMMAND (run by /bin/sh -c in the workspace), AGENT_PROTOCOL, AGENT_PORT,
 * AGENT_HEALTH_PATH (its readiness, default /health) and AGENT_STATE_PATHS (its state under the
 * workspace, default memory/brain.db). It gets PORT, HOST, WORKSPACE, TENANT_ID and AGENT_LLM_*;
 * in the telegram protocol also TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET.
 */
import type { AgentSettings } from '../../lib/agent-profiles.js';
import { parseStatePaths, type StatePath } from '../state-archive.js';
import { agentEnv, httpProbe, llmEnv } from './common.js';
import type { AgentProfile } from './profile.js';

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
        env: agentEnv(ctx, llmEnv(ctx)),
        cwd: ctx.workspace,
        liveness: health,
        readiness: [health],
      };
    },
  };
}
