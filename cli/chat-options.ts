/**
 * What `ztm chat` is asked to do, parsed and checked while the command line is read: kept apart from
 * cli/chat.ts so that parsing any ztm command does not load the chat's clients.
 */
import { ValidationError } from '../lib/errors.js';

export interface ChatInvocation {
  tenantId: string;
  chatId: number;
  message: string | undefined;
  waitS: number;
}

/** The sandbox user (and private chat) ztm chat speaks as unless --chat-id says otherwise. */
export const DEFAULT_CHAT_ID = 10001;
export const DEFAULT_CHAT_WAIT_S = 30;
const MAX_CHAT_ID = 2 ** 52;
const MAX_WAIT_S = 3600;

export function chatIdOption(v: unknown): number {
  const s = String(v);
  const n = Number(s);
  if (!/^[0-9]{1,16}$/.test(s) || n < 1 || n > MAX_CHAT_ID) throw new ValidationError(`invalid --chat-id ${JSON.stringify(s.slice(0, 30))}: a whole number from 1 to ${MAX_CHAT_ID} (the sandbox user's id)`);
  return n;
}

export function waitOption(v: unknown): number {
  const s = String(v);
  const n = Number(s);
  if (!/^[0-9]{1,5}$/.test(s) || n < 1 || n > MAX_WAIT_S) throw new ValidationError(`invalid --wait ${JSON.stringify(s.slice(0, 30))}: a whole number of seconds from 1 to ${MAX_WAIT_S}`);
  return n;
}

export function messageOption(v: string): string {
  if (v.trim() === '' || v.length > 4096) throw new ValidationError('invalid --message: 1 to 4096 characters, not only spaces');
  return v;
}
