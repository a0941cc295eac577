/**
 * `TELEGRAM_API_BASE=sandbox` for `npm start`: runs the local Bot API sandbox (lib/sandbox/) before
 * any client is built, and returns the configuration the platform then runs with: the Telegram
 * client's base is the sandbox's URL, and ROUTER_PUBLIC_URL defaults to the ingress's own loopback
 * URL, so `ztm tenant create` registers each bot's webhook at the sandbox, which delivers there.
 */
import type { Config } from '../config.js';
import { usesTelegramSandbox } from '../config.js';
import { ConfigError } from '../errors.js';
import type { Logger } from '../logger.js';
import { freePort } from '../util/free-port.js';
import { BotApiSandbox } from '../sandbox/bot-api-sandbox.js';

export interface TelegramSandboxSetup {
  /** The configuration to run with (the input itself when no sandbox was asked for). */
  config: Config;
  sandbox: BotApiSandbox | undefined;
}

const ANY_ADDRESS = new Set(['0.0.0.0', '::', '']);

export async function startTelegramSandbox(config: Config, log: Logger): Promise<TelegramSandboxSetup> {
  if (!usesTelegramSandbox(config)) return { config, sandbox: undefined };
  let sandbox: BotApiSandbox;
  try {
    sandbox = await BotApiSandbox.start({ port: config.telegramSandboxPort, log: log.child({ component: 'sandbox' }) });
  } catch (err) {
    if ((err as { code?: unknown }).code === 'EADDRINUSE') {
      throw new ConfigError('TELEGRAM_SANDBOX_PORT', `port ${config.telegramSandboxPort} is in use: choose another (0 = any free port)`);
    }
    throw err;
  }
  let ingressPort = config.ingressPort;
  let routerPublicUrl = config.routerPublicUrl;
  if (routerPublicUrl === undefined) {
    // The webhook URL must be known before the ingress listens (create registers it): fix the port.
    if (ingressPort === 0) ingressPort = await freePort(config.ingressHost);
    const host = ANY_ADDRESS.has(config.ingressHost) ? '127.0.0.1' : config.ingressHost;
    routerPublicUrl = `http://${host.includes(':') ? `[${host}]` : host}:${ingressPort}`;
  }
  log.info({ url: sandbox.url, webhooks: routerPublicUrl }, 'telegram bot api sandbox started');
  return { config: { ...config, telegramApiBase: sandbox.url, ingressPort, routerPublicUrl }, sandbox };
}
