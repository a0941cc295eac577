/**
 * setMyCommands, getMyCommands and deleteMyCommands with the Bot API's checks and descriptions
 * (from the Bot API server and TDLib): commands are trimmed and lose a leading '/', 1-32
 * characters of a-z 0-9 _ (else BOT_COMMAND_INVALID), descriptions 1-256 characters, at most 100;
 * a scope (BotCommandScope JSON) and a language code (two lowercase letters) pick the list.
 * getMyCommands answers exactly what was set for that scope and language, [] when nothing was.
 */
import { badRequest, int, jsonValue, ok, str, type BotApiAnswer, type BotApiParams } from './bot-api-wire.js';

export interface BotCommand {
  command: string;
  description: string;
}

const COMMAND = /^[a-z0-9_]+$/;
const MAX_COMMANDS = 100;
const PLAIN_SCOPES = new Set(['default', 'all_private_chats', 'all_group_chats', 'all_chat_administrators']);
const CHAT_SCOPES = new Set(['chat', 'chat_administrators', 'chat_member']);

/** The per-bot store: scope key + language → commands. */
export type CommandLists = Map<string, BotCommand[]>;

export function setMyCommands(lists: CommandLists, p: BotApiParams): BotApiAnswer {
  const commands = parseCommands(p.commands);
  if (typeof commands === 'string') return badRequest(commands);
  const key = listKey(p);
  if ('error' in key) return badRequest(key.error);
  const checked: BotCommand[] = [];
  for (const c of commands) {
    const command = c.command.trim().replace(/^\//, '');
    const description = c.description.trim();
    if (command === '') return badRequest('command must be non-empty');
    if ([...command].length > 32) return badRequest('command length must not exceed 32');
    if (description === '') return badRequest('command description must be non-empty');
    if ([...description].length > 256) return badRequest('command description length must not exceed 256');
    checked.push({ command, description });
  }
  // What Telegram's servers (not the Bot API server) refuse, in their error-code style.
  if (checked.length > MAX_COMMANDS) return badRequest('BOT_COMMANDS_TOO_MUCH');
  if (checked.some((c) => !COMMAND.test(c.command))) return badRequest('BOT_COMMAND_INVALID');
  if (checked.length === 0) lists.delete(key.key);
  else lists.set(key.key, checked);
  return ok(true);
}

export function getMyCommands(lists: CommandLists, p: BotApiParams): BotApiAnswer {
  const key = listKey(p);
  return 'error' in key ? badRequest(key.error) : ok(lists.get(key.key) ?? []);
}

export function deleteMyCommands(lists: CommandLists, p: BotApiParams): BotApiAnswer {
  const key = listKey(p);
  if ('error' in key) return badRequest(key.error);
  lists.delete(key.key);
  return ok(true);
}

function parseCommands(v: unknown): Array<{ command: string; description: string }> | string {
  if (v === undefined || v === '') return [];
  const list = jsonValue(v);
  if (list === undefined) return "can't parse commands JSON object";
  if (!Array.isArray(list)) return 'expected an Array of BotCommand';
  const out: Array<{ command: string; description: string }> = [];
  for (const item of list) {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) return "can't parse BotCommand: expected an Object";
    const o = item as Record<string, unknown>;
    for (const field of ['command', 'description'] as const) {
      if (o[field] === undefined) return `can't parse BotCommand: Can't find field "${field}"`;
      if (typeof o[field] !== 'string') return `can't parse BotCommand: Field "${field}" must be of type String`;
    }
    out.push({ command: o.command as string, description: o.description as string });
  }
  return out;
}

/** The list a call addresses: its scope (default when absent) and language code. */
function listKey(p: BotApiParams): { key: string } | { error: string } {
  const language = str(p.language_code) ?? '';
  const scope = scopeKey(p.scope);
  if ('error' in scope) return scope;
  if (language !== '' && !/^[a-z]{2}$/.test(language)) return { error: 'invalid language code specified' };
  return { key: `${scope.key}|${language}` };
}

function scopeKey(v: unknown): { key: string } | { error: string } {
  if (v === undefined || v === '') return { key: 'default' };
  const scope = jsonValue(v);
  if (scope === undefined) return { error: "can't parse BotCommandScope JSON object" };
  if (scope === null || typeof scope !== 'object' || Array.isArray(scope)) return { error: "can't parse BotCommandScope: BotCommandScope must be an Object" };
  const s = scope as Record<string, unknown>;
  if (typeof s.type !== 'string') return { error: 'can\'t parse BotCommandScope: Can\'t find field "type"' };
  if (PLAIN_SCOPES.has(s.type)) return { key: s.type };
  if (!CHAT_SCOPES.has(s.type)) return { error: "can't parse BotCommandScope: Unsupported type specified" };
  const chat = str(s.chat_id);
  if (chat === undefined) return { error: 'can\'t parse BotCommandScope: Can\'t find field "chat_id"' };
  if (chat === '') return { error: "can't parse BotCommandScope: Empty chat_id specified" };
  const chatId = int(chat);
  // An @username the sandbox cannot resolve, or chat 0: as Telegram answers an unknown chat.
  if (chatId === undefined || chatId === 0) return { error: 'chat not found' };
  if (s.type !== 'chat_member') return { key: `${s.type}:${chatId}` };
  const userId = int(s.user_id);
  if (s.user_id === undefined) return { error: 'can\'t parse BotCommandScope: Can\'t find field "user_id"' };
  if (userId === undefined || userId <= 0) return { error: "can't parse BotCommandScope: Invalid user_id specified" };
  return { key: `chat_member:${chatId}:${userId}` };
}
