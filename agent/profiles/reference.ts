/**
 * The reference agent (default): echo with memory in `<workspace>/memory/brain.db`, speaking the
 * zeroclaw protocol. For local use and tests; its state is that one SQLite database. It answers
 * only the forwarder's bearer for this tenant: it gets the bearer's SHA-256 (AGENT_TOKEN_SHA256, as
 * ZeroClaw gets it in its paired_tokens), never the bearer.
 */
import { defaultAgentCommand } from '../shim-config.js';
import { agentEnv, httpProbe, llmEnv } from './common.js';
import { bearerHashEnv } from './custom.js';
import type { AgentProfile } from './profile.js';

export const referenceProfile: AgentProfile = {
  name: 'reference',
  protocol: 'zeroclaw',
  stateDir: '',
  statePaths: [{ path: 'memory/brain.db', kind: 'sqlite' }],
  stateExcludes: [],
  legacyBrainDb: 'memory/brain.db',
  async preflight() {},
  async prepare(ctx) {
    const health = httpProbe(ctx.port, '/health', 'GET /health');
    return {
      command: defaultAgentCommand(),
      env: agentEnv(ctx, { ...llmEnv(ctx), ...bearerHashEnv(ctx) }),
      cwd: ctx.workspace,
      liveness: health,
      // It answers /health once its brain.db is open: then it can answer.
      readiness: [health],
    };
  },
};
