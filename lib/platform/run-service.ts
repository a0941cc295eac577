/**
 * The shared skeleton of every `main.ts`: parse config once (a bad value prints one line naming the
 * variable and exits 2), make the logger, start, and on SIGTERM/SIGINT stop taking work, finish or
 * hand back in-flight jobs, close connections and exit.
 */
import { loadConfig, usesTelegramSandbox, type Config } from '../config.js';
import { ConfigError } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';
import { redactSecrets } from '../redact.js';

export interface Closeable {
  close(): Promise<void>;
}

export interface ServiceContext {
  config: Config;
  log: Logger;
}

export interface RunServiceOptions {
  /**
   * Accept TELEGRAM_API_BASE=sandbox. Only `npm start` (services/platform) runs the local Bot API
   * sandbox: a service on its own would have no sandbox to talk to, so the others refuse it.
   */
  sandbox?: boolean;
}

const SHUTDOWN_GRACE_MS = 25_000;

export async function runService(service: string, start: (ctx: ServiceContext) => Promise<Closeable>, options: RunServiceOptions = {}): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
    if (usesTelegramSandbox(config) && !options.sandbox) {
      throw new ConfigError('TELEGRAM_API_BASE', `sandbox runs only inside npm start (the whole platform in one process); give ${service} a Bot API URL`);
    }
  } catch (err) {
    const msg = err instanceof ConfigError ? err.message : redactSecrets(String(err));
    process.stderr.write(`${service}: configuration error: ${msg}\n`);
    process.exit(2);
  }
  const log = createLogger({ service, level: config.logLevel, format: config.logFormat });
  let running: Closeable;
  try {
    running = await start({ config, log });
  } catch (err) {
    if (err instanceof ConfigError) {
      // A setting this service needs (checked in its main): the same one line and exit code as above.
      process.stderr.write(`${service}: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    log.fatal({ err }, `${service} failed to start`);
    process.stderr.write(`${service}: failed to start: ${redactSecrets(err instanceof Error ? err.message : String(err))}\n`);
    log.flush();
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, `${service} stopping`);
    const force = setTimeout(() => {
      log.error('shutdown took too long: exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    running.close().then(
      () => {
        log.info(`${service} stopped`);
        log.flush();
        process.exitCode = 0;
        setTimeout(() => process.exit(0), 50).unref();
      },
      (err: unknown) => {
        log.error({ err }, 'error while stopping');
        log.flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
