/**
 * pino with `service` in the base and one redaction policy for the whole platform: known secret
 * fields by path, and any bot token by shape in every string (messages, URLs, error stacks).
 */
import pino, { type Logger, type DestinationStream } from 'pino';
import { REDACTED, redactDeep, redactSecrets } from './redact.js';

export type { Logger } from 'pino';

const REDACT_PATHS = [
  'bot_token', 'botToken', 'token', 'secret', 'webhookSecret', 'warmPoolSecret', 'password',
  '*.bot_token', '*.botToken', '*.token', '*.secret', '*.webhookSecret', '*.warmPoolSecret', '*.password',
  'req.headers["x-telegram-bot-api-secret-token"]', 'headers["x-telegram-bot-api-secret-token"]',
  'headers.authorization', 'req.headers.authorization',
];

export interface LoggerOptions {
  service: string;
  level?: string;
  /** Where lines go; stdout by default. Tests pass a stream to capture and grep them. */
  destination?: DestinationStream;
}

function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return redactDeep(err);
  const out: Record<string, unknown> = {
    type: err.name,
    message: redactSecrets(err.message),
    stack: err.stack ? redactSecrets(err.stack) : undefined,
  };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (err.cause !== undefined) out.cause = serializeError(err.cause);
  return out;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: options.service },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      serializers: { err: serializeError, error: serializeError },
      formatters: {
        // Scrub strings by shape too: a token can hide in a URL or a third-party message.
        log: (obj) => redactDeep(obj) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          for (let i = 0; i < args.length; i++) {
            if (typeof args[i] === 'string') args[i] = redactSecrets(args[i] as string);
          }
          method.apply(this, args as Parameters<typeof method>);
        },
        // Last line of defence on the finished line: pino takes `msg` from an error's raw message
        // (`log.error(err)`, `log.error({ err })`) and writes child bindings without the log formatter.
        streamWrite: (line) => redactSecrets(line),
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
