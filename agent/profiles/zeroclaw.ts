/**
 * ZeroClaw (the Go system's agent), v0.8: `$ZEROCLAW_BIN daemon` with its install directory inside
 * the workspace (ZEROCLAW_CONFIG_DIR, the highest-precedence way to name it, so no home-directory
 * guess applies). The shim writes a schema-v3 config.toml before every start: the gateway where the
 * forwarder delivers, pairing on with the one bearer the platform derives for this tenant (only its
 * SHA-256 is written), and the provider from AGENT_LLM_* (the key only through the environment).
 * Facts: ../shared/reference/agents.md and agent/zeroclaw/config.ts; what was verified: docs/agents.md.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { AgentSettings } from '../../lib/agent-profiles.js';
import { RuntimeError } from '../../lib/errors.js';
import {
  ZEROCLAW_CACHE_EXCLUDES, ZEROCLAW_COMMAND_ARGS, ZEROCLAW_HEALTH_PATH, ZEROCLAW_OVERRIDE_NAME, ZEROCLAW_STATE_PATHS, newZeroclawProbeToken, renderZeroclawConfig,
  zeroclawEnv, zeroclawReadinessProbe,
} from '../zeroclaw/config.js';
import { agentEnv, httpProbe, resolveExecutable } from './common.js';
import type { AgentProfile } from './profile.js';

export const zeroclawProfile: AgentProfile = {
  name: 'zeroclaw',
  protocol: 'zeroclaw',
  stateDir: 'zeroclaw',
  statePaths: ZEROCLAW_STATE_PATHS,
  stateExcludes: ZEROCLAW_CACHE_EXCLUDES,
  // The Go system saved ZeroClaw's brain.db alone: it is ZeroClaw's memory database.
  legacyBrainDb: 'data/memory/brain.db',
  async preflight(settings: AgentSettings) {
    await resolveExecutable(settings.zeroclawBin, 'ZEROCLAW_BIN');
  },
  async prepare(ctx) {
    if (!ctx.agentTokenSha256) throw new RuntimeError('the zeroclaw profile needs the tenant\'s agent token hash (AGENT_TOKEN_SHA256 / claim agent_token_sha256)');
    const bin = await resolveExecutable(ctx.settings.zeroclawBin, 'ZEROCLAW_BIN');
    const home = path.join(ctx.workspace, 'home');
    await Promise.all([mkdir(ctx.stateRoot, { recursive: true }), mkdir(home, { recursive: true })]);
    const llm = ctx.settings.llm;
    // A second bearer, the shim's own for this start: its readiness probe is an authenticated call.
    const probe = newZeroclawProbeToken();
    const toml = renderZeroclawConfig({
      host: ctx.host,
      port: ctx.port,
      llm: llm && { baseUrl: llm.baseUrl, model: llm.model },
      pairedTokenSha256: ctx.agentTokenSha256,
      probeTokenSha256: probe.sha256,
    });
    // Removed first, then created exclusively: a link the (sandboxed) agent left in its place is not followed.
    await rm(path.join(ctx.stateRoot, 'config.toml'), { force: true });
    await writeFile(path.join(ctx.stateRoot, 'config.toml'), toml, { mode: 0o600, flag: 'wx' });
    if (!llm) ctx.log.warn('no AGENT_LLM_BASE_URL/AGENT_LLM_MODEL: ZeroClaw will answer every message 503 needs_quickstart');
    const env = agentEnv(ctx, { HOME: home, ZEROCLAW_CONFIG_DIR: ctx.stateRoot });
    // ZeroClaw refuses to start on an override name that is no config path: only ours reach it.
    for (const name of Object.keys(env)) if (ZEROCLAW_OVERRIDE_NAME.test(name)) delete env[name];
    Object.assign(env, zeroclawEnv({ ...(llm?.apiKey ? { apiKey: llm.apiKey } : {}) }));
    const health = httpProbe(ctx.port, ZEROCLAW_HEALTH_PATH, `GET ${ZEROCLAW_HEALTH_PATH}`);
    const ready = zeroclawReadinessProbe;
    return {
      // Started directly (no sh -c): the stop's SIGTERM must reach ZeroClaw itself.
      command: { file: bin, args: [...ZEROCLAW_COMMAND_ARGS], display: `zeroclaw ${ZEROCLAW_COMMAND_ARGS.join(' ')}` },
      env,
      cwd: ctx.workspace,
      liveness: health,
      // /health is liveness only (200 with no model); /api/status with a model configured means it can
      // answer. Given no model on purpose, it is started anyway: each message then dead-letters as
      // needs_quickstart, which names the fix, instead of every wake timing out.
      readiness: llm ? [health, {
        port: ctx.port, path: ready.path, method: ready.method, headers: { authorization: `Bearer ${probe.token}` },
        ok: ready.readyWhen, describe: `${ready.method} ${ready.path} (a model configured)`,
      }] : [health],
    };
  },
};
