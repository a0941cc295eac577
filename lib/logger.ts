/**
 * pino with `service` in the base and the platform's one redaction policy (lib/redact.ts) on every
 * way into a line: the merging object and child bindings are walked at any depth (secret-named
 * fields, secret-shaped strings, errors with their causes), and the message, its interpolated
 * arguments and a message pino takes from an error are scrubbed by shape.
 */
import pino, { type Logger, type DestinationStream } from 'pino';
import { redactDeep, redactSecrets } from './redact.js';
import { prettyDestination, wantsPretty, type LogFormat } from './log-pretty.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  service: string;
  level?: string;
  /** Where lines go; stdout by default. Tests pass a stream to capture and grep them. */
  destination?: DestinationStream;
  /** `auto` (default): readable lines when stdout is a terminal, JSON otherwise (a log collector). */
  format?: LogFormat;
}

function defaultDestination(format: LogFormat): DestinationStream {
  if (!wantsPretty(format, process.stdout.isTTY === true)) return pino.destination({ dest: 1, sync: false });
  const colors = process.stdout.isTTY === true && process.stdout.hasColors?.() === true;
  return prettyDestination({ colors, write: (text) => process.stdout.write(text) });
}

// A log line is not a data dump: past these bounds values print as `[Truncated]`, never raw.
const BOUNDS = { maxDepth: 16, maxNodes: 5000 };

const redactObject = (obj: Record<string, unknown>): Record<string, unknown> => redactDeep(obj, BOUNDS) as Record<string, unknown>;

function redactArg(arg: unknown): unknown {
  if (typeof arg === 'string') return redactSecrets(arg);
  return arg !== null && typeof arg === 'object' ? redactDeep(arg, BOUNDS) : arg;
}

/** The message pino would take from an error (`log.error(err)`, `log.error({ err })`), scrubbed. */
function messageFromError(first: unknown): string | undefined {
  if (first instanceof Error) return redactSecrets(String(first.message));
  if (first === null || typeof first !== 'object' || 'msg' in first) return undefined;
  const message = (first as { err?: { message?: unknown } }).err?.message;
  return typeof message === 'string' ? redactSecrets(message) : undefined;
}

export function createLogger(options: LoggerOptions): Logger {
  const logger = pino(
    {
      level: options.level ?? 'info',
      base: { service: options.service },
      timestamp: pino.stdTimeFunctions.isoTime,
      // The walk has already turned errors into redacted plain objects; pino's own err
      // serializer would take those for errors again and rename their type.
      serializers: { err: (v: unknown) => v, error: (v: unknown) => v },
      formatters: { log: redactObject },
      hooks: {
        logMethod(args, method) {
          const first: unknown = args[0];
          const from = first !== null && typeof first === 'object' ? 1 : 0; // args[0] is walked by the formatter
          for (let i = from; i < args.length; i++) args[i] = redactArg(args[i]) as never;
          if (from === 1 && args.length === 1) {
            const msg = messageFromError(first);
            if (msg !== undefined) args.splice(1, 0, msg as never);
          }
          method.apply(this, args as Parameters<typeof method>);
        },
      },
    },
    options.destination ?? defaultDestination(options.format ?? 'auto'),
  );
  // pino passes child bindings through serializers only (its bindings formatter sees the base
  // alone), so they are walked here; children inherit these from the root by prototype.
  const { child, setBindings } = logger;
  logger.child = function (this: Logger, bindings, childOptions) {
    return child.call(this, redactObject(bindings), childOptions);
  } as Logger['child'];
  logger.setBindings = function (this: Logger, bindings) {
    setBindings.call(this, redactObject(bindings));
  };
  return logger;
}
