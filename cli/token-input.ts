/**
 * Where `ztm tenant create|update` takes a bot token from. A token in argv is visible to every
 * user in `ps`, lands in shell history and, in kubectl mode, in the API server's audit log (the
 * exec URL carries argv), so ztm also reads it from stdin, a file or an environment variable.
 */
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { ValidationError } from '../lib/errors.js';
import { assertBotToken } from '../lib/validate.js';
import { promptHidden, type TtyInput } from './hidden-prompt.js';

export const TOKEN_ENV = 'ZTM_BOT_TOKEN';
/** More than any token file or piped token needs; stops `--bot-token-file /dev/zero` early. */
const MAX_TOKEN_BYTES = 4096;

export type TokenSource =
  | { kind: 'argv' } // positional or `--bot-token <t>`: kept working for the runbook, with a warning
  | { kind: 'stdin' }
  | { kind: 'file'; path: string }
  | { kind: 'env' };

export const SAFER_FORMS = `--bot-token - (stdin), --bot-token-file <path> or --bot-token-env ($${TOKEN_ENV})`;
export const ARGV_TOKEN_WARNING = `a bot token on the command line is visible in ps and shell history; use ${SAFER_FORMS}`;

export interface TokenOptions {
  positional?: string | undefined;
  /** `--bot-token` and `--bot-token-file` as typed (cac would turn digits into a number). */
  flag?: string | undefined;
  file?: string | undefined;
  env?: unknown;
}

/** The one source the command line names (undefined: none); two sources are a usage error. */
export function tokenSource(o: TokenOptions): { source: TokenSource; value?: string } | undefined {
  const given: Array<{ source: TokenSource; value?: string; name: string }> = [];
  if (o.positional !== undefined) given.push({ source: { kind: 'argv' }, value: o.positional, name: '<bot_token>' });
  if (o.flag === '-') given.push({ source: { kind: 'stdin' }, name: '--bot-token -' });
  else if (o.flag !== undefined) given.push({ source: { kind: 'argv' }, value: o.flag, name: '--bot-token' });
  if (o.file !== undefined) {
    if (o.file === '') throw new ValidationError('--bot-token-file needs a path');
    given.push({ source: { kind: 'file', path: o.file }, name: '--bot-token-file' });
  }
  if (o.env === true) given.push({ source: { kind: 'env' }, name: '--bot-token-env' });
  if (given.length > 1) throw new ValidationError(`give the bot token one way, not ${given.map((g) => g.name).join(' and ')}`);
  const [one] = given;
  return one && { source: one.source, value: one.value };
}

export interface TokenReadContext {
  env: Record<string, string | undefined>;
  stdin: () => Readable & Partial<TtyInput>;
  /** Where the TTY prompt is written (stderr: stdout stays the command's result). */
  promptTo: (text: string) => void;
  tenantId: string;
}

/** Reads and validates the token; errors name the source, never the value. */
export async function readBotToken(s: { source: TokenSource; value?: string }, ctx: TokenReadContext): Promise<string> {
  switch (s.source.kind) {
    case 'argv': return assertBotToken(s.value ?? '');
    case 'env': {
      const v = ctx.env[TOKEN_ENV];
      if (!v) throw new ValidationError(`--bot-token-env: ${TOKEN_ENV} is not set`);
      return checked(v, TOKEN_ENV);
    }
    case 'file': return checked(await readTokenFile(s.source.path), `bot token file ${shownPath(s.source.path)}`);
    case 'stdin': {
      const stdin = ctx.stdin();
      if (stdin.isTTY) return checked(await promptHidden(stdin, ctx.promptTo, `bot token for ${ctx.tenantId} (not echoed): `), 'the terminal');
      const text = await readBounded(stdin, 'stdin');
      if (text.trim() === '') throw new ValidationError('--bot-token -: stdin is empty, expected the bot token');
      return checked(text, 'stdin');
    }
  }
}

/** One token, surrounding whitespace (the trailing newline of `echo` or an editor) ignored. */
function checked(text: string, from: string): string {
  try {
    return assertBotToken(text.trim());
  } catch (err) {
    throw new ValidationError(`${(err as Error).message} (read from ${from})`);
  }
}

/** A path is fine to show, unless the operator put the token itself where the path goes. */
function shownPath(p: string): string {
  return /[0-9]+:[A-Za-z0-9_-]{20,}/.test(p) ? '(a path that looks like a bot token)' : JSON.stringify(p);
}

async function readTokenFile(p: string): Promise<string> {
  let handle;
  try {
    handle = await open(p, 'r');
    const buf = Buffer.alloc(MAX_TOKEN_BYTES + 1);
    const { bytesRead } = await handle.read(buf, 0, buf.length, null);
    if (bytesRead > MAX_TOKEN_BYTES) throw new ValidationError(`bot token file ${shownPath(p)} is larger than ${MAX_TOKEN_BYTES} bytes: not a bot token`);
    return buf.subarray(0, bytesRead).toString('utf8');
  } catch (err) {
    if (err instanceof ValidationError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : code;
    throw new ValidationError(`cannot read bot token file ${shownPath(p)}: ${why}`);
  } finally {
    await handle?.close();
  }
}

function readBounded(stream: Readable, from: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err?: Error): void => {
      stream.off('data', onData).off('end', onEnd).off('error', onError);
      stream.pause();
      if (err) reject(err);
      else resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onData = (d: Buffer | string): void => {
      const b = typeof d === 'string' ? Buffer.from(d) : d;
      size += b.length;
      if (size > MAX_TOKEN_BYTES) return done(new ValidationError(`more than ${MAX_TOKEN_BYTES} bytes on ${from}: not a bot token`));
      chunks.push(b);
    };
    const onEnd = (): void => done();
    const onError = (e: Error): void => done(new ValidationError(`cannot read the bot token from ${from}: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    stream.on('data', onData).once('end', onEnd).once('error', onError);
  });
}
