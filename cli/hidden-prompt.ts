/**
 * Reads one line from a terminal without echoing it (`ztm tenant create <id> --bot-token -` typed
 * at a shell): raw mode turns the terminal's echo off, so the token never shows on screen.
 */
import type { Readable } from 'node:stream';
import { ValidationError } from '../lib/errors.js';

export interface TtyInput {
  isTTY: boolean;
  setRawMode: (raw: boolean) => unknown;
}

const MAX_TYPED = 4096;

export function promptHidden(input: Readable & Partial<TtyInput>, write: (text: string) => void, prompt: string): Promise<string> {
  const setRawMode = input.setRawMode?.bind(input);
  if (!setRawMode) {
    return Promise.reject(new ValidationError('--bot-token -: this terminal cannot hide what is typed; pipe the token in or use --bot-token-file <path>'));
  }
  // Echo goes off before the prompt shows: typed as soon as it appears (a paste), the token would
  // otherwise be echoed by the terminal in the instant between the two.
  setRawMode(true);
  write(prompt);
  input.setEncoding('utf8');
  input.resume();
  return new Promise((resolve, reject) => {
    let typed = '';
    const finish = (err?: Error): void => {
      input.off('data', onData);
      setRawMode(false);
      input.pause();
      write('\n');
      if (err) reject(err);
      else resolve(typed);
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        // Raw mode delivers Ctrl-C as a character instead of SIGINT: it cancels, as at any prompt.
        if (ch === '\u0003' || (ch === '\u0004' && typed === '')) return finish(new ValidationError('no bot token: input cancelled'));
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return finish();
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else if (ch === '\u0015') typed = '';
        else if (ch >= ' ') typed += ch;
        if (typed.length > MAX_TYPED) return finish(new ValidationError(`more than ${MAX_TYPED} characters typed: not a bot token`));
      }
    };
    input.on('data', onData);
  });
}
