/** Pieces the profiles share: the agent's base environment and the usual probes. */
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { RuntimeError } from '../../lib/errors.js';
import type { Probe, ProfileContext } from './profile.js';

/**
 * The environment every agent gets: the shim's own minus its secrets (ctx.baseEnv), then the
 * platform's facts under the names the reference agent and custom agents read. Set last, so a
 * claim's extra env cannot redirect the port or workspace the shim relies on.
 */
export function agentEnv(ctx: ProfileContext, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { ...ctx.baseEnv, ...extra };
  env.HOST ??= ctx.host;
  env.PORT = String(ctx.port);
  env.WORKSPACE = ctx.workspace;
  env.TENANT_ID = ctx.tenantId;
  delete env.TELEGRAM_BOT_TOKEN;
  delete env.TELEGRAM_WEBHOOK_SECRET;
  // The bot token opens the tenant's bot: only an agent that talks to Telegram itself gets it.
  if (ctx.settings.protocol === 'telegram') {
    if (ctx.botToken !== undefined) env.TELEGRAM_BOT_TOKEN = ctx.botToken;
    if (ctx.webhookSecret !== undefined) env.TELEGRAM_WEBHOOK_SECRET = ctx.webhookSecret;
  }
  return env;
}

/** The model provider under the platform's own names (reference and custom agents read these). */
export function llmEnv(ctx: ProfileContext): Record<string, string> {
  const llm = ctx.settings.llm;
  if (!llm) return {};
  const env: Record<string, string> = { AGENT_LLM_BASE_URL: llm.baseUrl, AGENT_LLM_MODEL: llm.model };
  if (llm.apiKey !== undefined) env.AGENT_LLM_API_KEY = llm.apiKey;
  return env;
}

export function httpProbe(port: number, probePath: string, describe: string, ok?: Probe['ok']): Probe {
  return { port, path: probePath, describe, ...(ok ? { ok } : {}) };
}

/**
 * A binary named by a setting: an absolute or relative path must be executable, a bare name must
 * be found on PATH. The error names the setting and what to do, never a secret.
 */
export async function resolveExecutable(value: string, setting: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const candidates = value.includes('/') ? [path.resolve(value)] : (env.PATH ?? '').split(':').filter(Boolean).map((d) => path.join(d, value));
  for (const file of candidates) {
    try {
      await access(file, constants.X_OK);
      return file;
    } catch {
      // next
    }
  }
  throw new RuntimeError(value.includes('/')
    ? `${setting}: ${value} is not an executable file`
    : `${setting}: \`${value}\` is not on PATH (set ${setting} to its full path)`);
}

/** Like resolveExecutable, for a file that only needs to be readable (a script run by a given interpreter). */
export async function resolveReadable(value: string, setting: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (!value.includes('/')) return resolveExecutable(value, setting, env);
  try {
    await access(path.resolve(value), constants.R_OK);
    return path.resolve(value);
  } catch {
    throw new RuntimeError(`${setting}: ${value} does not exist or is not readable`);
  }
}
