/**
 * `ztm`: the operator's CLI. Commands become admin jobs that the janitor executes; ztm waits for
 * the reply and prints it (a table, or JSON with --json). Any error is one line and a non-zero exit.
 */
import type { Readable } from 'node:stream';
import { cac } from 'cac';
import { loadCliConfig, type Env } from '../lib/config.js';
import { ZtmError, ValidationError } from '../lib/errors.js';
import type { AdminClient } from '../lib/admin/admin-client.js';
import type { AdminArgs, AdminCommand } from '../lib/admin/admin-protocol.js';
import { assertIdleTimeout, assertTenantId } from '../lib/validate.js';
import { printError, printFailure, printJson, printRecord, printTable, type Printer } from './output.js';
import { resolveTarget, runThroughKubectl, kubectlTokenArgv } from './target.js';
import { renderResult } from './render.js';
import { ARGV_TOKEN_WARNING, readBotToken, SAFER_FORMS, tokenSource, type TokenSource } from './token-input.js';
import type { DashboardInvocation } from './dashboard.js';
import { DEFAULT_TOP_INTERVAL_S, topOptions, type TopInvocation } from './top-options.js';
import { chatIdOption, DEFAULT_CHAT_ID, DEFAULT_CHAT_WAIT_S, messageOption, waitOption, type ChatInvocation } from './chat-options.js';
import { DEFAULT_DASHBOARD_PORT } from '../lib/ops/dashboard-port.js';
import { tailOption, type LogsInvocation } from './logs.js';
import { completionScript, shellOption, type CommandInfo, type Shell } from './completion.js';
import { ztmVersion } from './version.js';
import { createInvocation as apiTokenCreate, revokeInvocation as apiTokenRevoke, type ApiTokenInvocation } from './api-token.js';

const GROUPS = new Set(['tenant', 'webhook', 'dead', 'api-token']);
const OUTPUT_FORMATS = ['json', 'table'] as const;
const EXIT_USAGE = 2;
const EXIT_FAILED = 1;

/** The commands that take a bot token, and their arguments before the token is read. */
export type TokenCommand = 'tenant.create' | 'tenant.update';
export interface TokenInvocation {
  kind: 'token';
  command: TokenCommand;
  args: { tenant_id: string; idle_timeout_s?: number };
  token: { source: TokenSource; value?: string };
}

/** An admin job for the janitor, or one of the commands ztm runs itself against Redis. */
type Invocation =
  | { kind: 'admin'; command: AdminCommand; args: AdminArgs[AdminCommand]; timeoutS?: number }
  | TokenInvocation
  | { kind: 'status' }
  | ({ kind: 'top' } & TopInvocation)
  | ({ kind: 'dashboard' } & DashboardInvocation)
  | ({ kind: 'chat' } & ChatInvocation)
  | ({ kind: 'logs' } & LogsInvocation)
  | { kind: 'version' }
  | { kind: 'api-token'; call: ApiTokenInvocation }
  | { kind: 'completion'; shell: Shell };

function portOption(v: unknown): number {
  const n = Number(v);
  if (!/^[0-9]{1,5}$/.test(String(v)) || n > 65_535) throw new ValidationError(`invalid port ${JSON.stringify(String(v))}: a whole number from 0 to 65535`);
  return n;
}

/** The last value of `--name <v>` / `--name=<v>` as typed (cac would turn "007" into 7). */
function rawOption(argv: string[], name: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === `--${name}`) value = argv[++i];
    else if (a.startsWith(`--${name}=`)) value = a.slice(name.length + 3);
  }
  return value;
}

/** `--bot-token -` → `--bot-token=-` (the parser takes a lone `-` for a flag, not a value); `-ojson` → `-o json`. */
function normalizeArgv(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--bot-token' && argv[i + 1] === '-') {
      out.push('--bot-token=-');
      i++;
    } else if (/^-o[a-z]+$/.test(argv[i] as string)) out.push('-o', (argv[i] as string).slice(2)); // kubectl's -ojson
    else out.push(argv[i] as string);
  }
  return out;
}

const TOKEN_FLAG_HELP = "The bot token; '-' reads it from stdin (a hidden prompt on a terminal), a value shows in ps";

/** Builds the cac program; each action records what to run instead of running it. */
function program(onRun: (inv: Invocation) => void, argv: string[] = []) {
  const cli = cac('ztm');
  const run = <C extends AdminCommand>(command: C, args: AdminArgs[C], timeoutS?: number): void => onRun({ kind: 'admin', command, args, timeoutS });
  cli.option('--json', 'Print JSON instead of a table');
  cli.option('-o, --output <format>', 'json or table (the Go CLI\'s --output json)');
  cli.option('--timeout <secs>', 'How long to wait for the command to finish', { default: 60 });

  const tokenOptions = (o: { botTokenEnv?: unknown }, positional?: unknown) => tokenSource({
    positional: positional === undefined ? undefined : String(positional),
    flag: rawOption(argv, 'bot-token'),
    file: rawOption(argv, 'bot-token-file'),
    env: o.botTokenEnv,
  });

  cli.command('tenant create <id> [bot_token]', 'Create a tenant (registers its webhook when ROUTER_PUBLIC_URL is set); the token from --bot-token -, --bot-token-file or --bot-token-env ([bot_token] shows in ps)')
    .option('--bot-token <token>', TOKEN_FLAG_HELP)
    .option('--bot-token-file <path>', 'Read the bot token from this file')
    .option('--bot-token-env', 'Read the bot token from $ZTM_BOT_TOKEN')
    .option('--idle-timeout <secs>', 'Seconds of silence before the agent is stopped (1-604800, default 300)')
    .action((id: string, positional: unknown, o: { idleTimeout?: unknown; botTokenEnv?: unknown }) => {
      const args = { tenant_id: assertTenantId(id), ...(o.idleTimeout !== undefined ? { idle_timeout_s: assertIdleTimeout(o.idleTimeout) } : {}) };
      const token = tokenOptions(o, positional);
      if (!token) throw new ValidationError(`no bot token: give it with ${SAFER_FORMS}`);
      onRun({ kind: 'token', command: 'tenant.create', args, token });
    });
  cli.command('tenant list', 'List tenants (bot tokens redacted)')
    .option('--limit <n>', 'Tenants per page fetched from the registry', { default: 100 })
    .action((o: { limit: unknown }) => run('tenant.list', { limit: Number(o.limit) }));
  cli.command('tenant get <id>', 'Show one tenant').action((id: string) => run('tenant.get', { tenant_id: assertTenantId(id) }));
  cli.command('tenant update <id>', 'Change the bot token and/or idle timeout (a new token re-registers the webhook)')
    .option('--bot-token <token>', TOKEN_FLAG_HELP)
    .option('--bot-token-file <path>', 'Read the bot token from this file')
    .option('--bot-token-env', 'Read the bot token from $ZTM_BOT_TOKEN')
    .option('--idle-timeout <secs>', 'New idle timeout in seconds (1-604800)')
    .action((id: string, o: { idleTimeout?: unknown; botTokenEnv?: unknown }) => {
      const args = { tenant_id: assertTenantId(id), ...(o.idleTimeout !== undefined ? { idle_timeout_s: assertIdleTimeout(o.idleTimeout) } : {}) };
      const token = tokenOptions(o);
      if (token) onRun({ kind: 'token', command: 'tenant.update', args, token });
      else if (args.idle_timeout_s !== undefined) run('tenant.update', args);
      else throw new ValidationError('nothing to update: give --bot-token (or --bot-token-file, --bot-token-env) and/or --idle-timeout');
    });
  cli.command('tenant delete <id>', 'Delete a tenant: record, pod, secret, endpoint cache, wake lock, webhook')
    .option('--purge-state', 'Also delete the saved agent state (brain.db) from S3')
    .action((id: string, o: { purgeState?: boolean }) => run('tenant.delete', { tenant_id: assertTenantId(id), purge_state: o.purgeState === true }));
  cli.command('tenant wake <id>', 'Wake a tenant now, without a Telegram message')
    // Long enough for a cold start on a new node (COLD_START_TIMEOUT_S, default 600 s); the phases print as they change.
    .action((id: string) => run('tenant.wake', { tenant_id: assertTenantId(id) }, 900));
  cli.command('tenant sleep <id>', 'Stop a tenant gracefully, saving its state')
    .action((id: string) => run('tenant.sleep', { tenant_id: assertTenantId(id) }, 300));
  cli.command('webhook register <id>', 'Register (again) the tenant\'s Telegram webhook')
    .action((id: string) => run('webhook.register', { tenant_id: assertTenantId(id) }));
  cli.command('webhook info <id>', 'Show what Telegram knows of the tenant\'s webhook')
    .action((id: string) => run('webhook.info', { tenant_id: assertTenantId(id) }));
  cli.command('dead list', 'List updates whose delivery failed for good')
    .option('--tenant <id>', 'Only this tenant')
    .action((o: { tenant?: string }) => run('dead.list', o.tenant ? { tenant_id: assertTenantId(o.tenant) } : {}));
  cli.command('dead retry [job_id]', 'Deliver a dead-lettered update again (or --all)')
    .option('--all', 'Retry every dead letter')
    .action((jobId: string | undefined, o: { all?: boolean }) => run('dead.retry', { ...(jobId ? { job_id: String(jobId) } : {}), all: o.all === true }));
  cli.command('api-token create', 'Make a bearer token for the admin HTTP API (printed once; only its SHA-256 is kept)')
    .option('--name <name>', 'Who or what uses it (shown by list)')
    .option('--scope <scope>', 'tenants:read, tenants:write, tenants:operate, dead-letters (repeat or comma-separate; default all)')
    .option('--rate-per-min <n>', 'Its own rate limit (default ADMIN_API_RATE_PER_MIN)')
    .option('--burst <n>', 'Its own burst (default ADMIN_API_BURST)')
    .action((o: Record<string, unknown>) => onRun({ kind: 'api-token', call: apiTokenCreate(o) }));
  cli.command('api-token list', 'List admin API tokens (never the tokens themselves)').action(() => onRun({ kind: 'api-token', call: { action: 'list' } }));
  cli.command('api-token revoke <id>', 'Revoke an admin API token: refused from the next request on')
    .action((id: unknown) => onRun({ kind: 'api-token', call: apiTokenRevoke(id) }));
  cli.command('status', 'Jobs per queue and state, tenants awake, warm pool, dead letters')
    .action(() => onRun({ kind: 'status' }));
  cli.command('top', 'ztm status refreshing in place (q or Ctrl-C quits); one frame per interval when not on a terminal')
    .option('--interval <secs>', 'Seconds between frames', { default: DEFAULT_TOP_INTERVAL_S })
    .option('--once', 'Print one frame and exit')
    .option('--count <n>', 'Exit after this many frames')
    .action((o: { interval?: unknown; once?: boolean; count?: unknown }) => onRun({ kind: 'top', ...topOptions({ ...o, interval: rawOption(argv, 'interval') ?? o.interval }) }));
  cli.command('dashboard', 'Serve Bull Board over every queue and the dead letters until Ctrl-C')
    .option('--port <port>', 'Port to listen on', { default: DEFAULT_DASHBOARD_PORT })
    .option('--host <host>', 'Interface to listen on', { default: '127.0.0.1' })
    .action((o: { port: unknown; host: unknown }) => onRun({ kind: 'dashboard', port: portOption(o.port), host: String(o.host) }));
  cli.command('chat <id>', 'Talk to the tenant\'s agent through the platform, without Telegram (needs TELEGRAM_API_BASE=sandbox npm start)')
    .option('--chat-id <id>', 'The sandbox user (and private chat) to speak as', { default: DEFAULT_CHAT_ID })
    .option('--message <text>', 'Send this one message, print the answer and exit')
    .option('--wait <secs>', 'How long to wait for each answer (at least 240 s once the agent is starting up)', { default: DEFAULT_CHAT_WAIT_S })
    .action((id: string, o: { chatId: unknown; message?: unknown; wait: unknown }) => onRun({
      kind: 'chat',
      tenantId: assertTenantId(id),
      chatId: chatIdOption(o.chatId),
      message: o.message === undefined ? undefined : messageOption(rawOption(argv, 'message') ?? String(o.message)),
      waitS: waitOption(o.wait),
    }));
  cli.command('logs <id>', 'Show the tenant agent\'s log (local: its log file; Kubernetes: its pod\'s log)')
    .option('-f, --follow', 'Keep printing as the log grows')
    .option('--tail <lines>', 'Only the last lines')
    .action((id: string, o: { follow?: boolean; tail?: unknown }) => onRun({ kind: 'logs', tenantId: assertTenantId(id), follow: o.follow === true, tail: tailOption(o.tail) }));
  cli.command('version', 'Show the version of ztm and of the Node running it').action(() => onRun({ kind: 'version' }));
  cli.command('completion <shell>', 'Print a completion script: source <(ztm completion bash) (or zsh)')
    .action((shell: unknown) => onRun({ kind: 'completion', shell: shellOption(shell) }));
  cli.help();
  return cli;
}

/** `tenant create …` → `tenant create` as one command name, so cac matches two-word commands. */
function joinGroup(argv: string[]): string[] {
  const [group, action, ...rest] = argv;
  if (group && action && GROUPS.has(group) && !action.startsWith('-')) return [`${group} ${action}`, ...rest];
  return argv;
}

/** A warning on stderr that does not stop the command (JSON with --json, like errors). */
function printWarning(p: Printer, code: string, message: string): void {
  p.err(p.json ? JSON.stringify({ warning: { code, message } }) : `ztm: warning: ${message}`);
}

export interface ZtmIo extends Partial<Printer> {
  /** Where `--bot-token -` reads (default process.stdin). */
  stdin?: Readable;
}

/** `-o json`, `--output json`, `--output=json` (last wins; normalizeArgv split `-ojson`); undefined when not given. */
function outputFormat(argv: string[]): string | undefined {
  let format: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '-o' || a === '--output') format = argv[++i] ?? '';
    else if (a.startsWith('--output=')) format = a.slice('--output='.length);
  }
  return format;
}

/** Every command's name and long options, for the completion script. */
function commandInfo(cli: ReturnType<typeof program>): { commands: CommandInfo[]; globals: string[] } {
  const longs = (raw: string): string[] => raw.split(/[\s,]+/).filter((w) => w.startsWith('--'));
  return {
    commands: cli.commands.filter((c) => c.name !== '').map((c) => ({ name: c.name, options: c.options.flatMap((o) => longs(o.rawName)) })),
    globals: [...cli.globalCommand.options.flatMap((o) => longs(o.rawName)), '--help'],
  };
}

export async function main(rawArgv: string[], env: Env = process.env, io?: ZtmIo): Promise<number> {
  const argv = normalizeArgv(rawArgv);
  const format = outputFormat(argv);
  const p: Printer = {
    json: argv.includes('--json') || format === 'json',
    out: io?.out ?? ((l) => process.stdout.write(`${l}\n`)),
    err: io?.err ?? ((l) => process.stderr.write(`${l}\n`)),
  };
  let invocation: Invocation | undefined;
  const cli = program((inv) => (invocation = inv), argv);
  try {
    if (format !== undefined && !(OUTPUT_FORMATS as readonly string[]).includes(format)) {
      throw new ValidationError(`invalid --output ${JSON.stringify(format.slice(0, 20))}: expected json or table`);
    }
    const parsed = cli.parse(['node', 'ztm', ...joinGroup(argv)], { run: false });
    if (parsed.options.help || parsed.options.h) return 0;
    if (!cli.matchedCommand) {
      if (argv.length === 0) {
        cli.outputHelp();
        return EXIT_USAGE;
      }
      throw new ValidationError(`unknown command "${argv.slice(0, 2).join(' ')}": see ztm --help`);
    }
    await cli.runMatchedCommand();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    printError(p, err instanceof ZtmError ? err.code : 'E_USAGE', message);
    return EXIT_USAGE;
  }
  if (!invocation) return 0;
  if (invocation.kind === 'version') {
    const info = { version: ztmVersion(), node: process.versions.node };
    if (p.json) printJson(p, info);
    else p.out(`ztm ${info.version} (node ${info.node})`);
    return 0;
  }
  if (invocation.kind === 'completion') {
    const { commands, globals } = commandInfo(cli);
    (io?.out ?? ((l: string) => process.stdout.write(`${l}\n`)))(completionScript(invocation.shell, commands, globals).trimEnd());
    return 0;
  }

  /** In kubectl mode, a token command's argv and the token that goes on the exec's stdin. */
  let viaStdin: { argv: string[]; input: string } | undefined;
  if (invocation.kind === 'token') {
    let token: string;
    try {
      token = await readBotToken(invocation.token, {
        env,
        // Lazily: touching process.stdin opens it, which a token from a file or argv never needs.
        stdin: () => io?.stdin ?? process.stdin,
        promptTo: (text) => process.stderr.write(text),
        tenantId: invocation.args.tenant_id,
      });
    } catch (err) {
      printError(p, err instanceof ZtmError ? err.code : 'E_USAGE', (err as Error).message);
      return EXIT_USAGE;
    }
    if (invocation.token.source.kind === 'argv') printWarning(p, 'W_TOKEN_IN_ARGV', ARGV_TOKEN_WARNING);
    viaStdin = { argv: kubectlTokenArgv(invocation, { json: p.json, timeout: rawOption(argv, 'timeout') }), input: `${token}\n` };
    invocation = { kind: 'admin', command: invocation.command, args: { ...invocation.args, bot_token: token } };
  }

  let config;
  try {
    config = loadCliConfig(env);
  } catch (err) {
    printError(p, 'E_CONFIG', (err as Error).message);
    return EXIT_USAGE;
  }
  const target = resolveTarget(config);
  // Each command loads its clients when it runs: `ztm --help` and a typo must not load BullMQ,
  // express and Bull Board first (a CLI answers in ~0.1 s).
  if (invocation.kind === 'dashboard') return (await import('./dashboard.js')).runDashboard(invocation, target, config, p);
  if (invocation.kind === 'chat') return (await import('./chat.js')).runChat(invocation, config, target, p);
  if (invocation.kind === 'logs') {
    const logs = invocation;
    return (await import('./logs.js')).runLogs(logs, config, target, p, {
      write: (s) => (io?.out ? s.split('\n').filter((l, i, all) => i < all.length - 1 || l !== '').forEach((l) => io.out?.(l)) : process.stdout.write(s)),
      podName: async () => {
        if (target.kind !== 'redis') return undefined;
        const { AdminClient: Client } = await import('../lib/admin/admin-client.js');
        const client = new Client({ redisUrl: target.url, cluster: config.redisCluster, pickupTimeoutMs: 2000 });
        try {
          await client.connect();
          const t = (await client.run('tenant.get', { tenant_id: logs.tenantId }, 5000)) as { pod_name?: unknown };
          return typeof t.pod_name === 'string' ? t.pod_name : undefined;
        } finally {
          await client.close();
        }
      },
    });
  }
  if (target.kind === 'kubectl') {
    // A token goes on the exec's stdin: argv becomes part of the exec URL (and the audit log).
    return viaStdin ? runThroughKubectl(target, viaStdin.argv, viaStdin.input) : runThroughKubectl(target, argv);
  }
  if (invocation.kind === 'status') return (await import('./status.js')).runStatus(target.url, p, config.redisCluster);
  if (invocation.kind === 'top') {
    const top = await import('./top.js');
    // In-process callers (io given) get plain frames and no key reading; the real ztm draws on its terminal.
    return top.runTop(invocation, target.url, p, config.redisCluster, io?.out ? {} : { term: top.processTerminal(), keys: process.stdin });
  }
  if (invocation.kind === 'api-token') return (await import('./api-token.js')).runApiToken(invocation.call, target.url, p, config.redisCluster);

  const timeout = Number(cli.options.timeout ?? 60);
  const { AdminClient: Client } = await import('../lib/admin/admin-client.js');
  const client = new Client({ redisUrl: target.url, cluster: config.redisCluster, pickupTimeoutMs: config.pickupTimeoutS * 1000 });
  try {
    await client.connect();
    const timeoutMs = (invocation.timeoutS ?? timeout) * 1000;
    // Long commands (a wake) report their steps on stderr, so stdout stays the result alone.
    const onProgress = p.json ? undefined : (message: string) => p.err(`… ${message}`);
    let result = await client.run(invocation.command, invocation.args, timeoutMs, onProgress);
    if (invocation.command === 'tenant.list') result = await allPages(client, result, invocation.args as AdminArgs['tenant.list'], timeoutMs);
    if (p.json) printJson(p, invocation.command === 'tenant.list' ? (result as { items: unknown[] }).items : result);
    else renderResult(p, invocation.command, result, { printTable, printRecord });
    return exitCodeFor(invocation.command, result);
  } catch (err) {
    printFailure(p, err);
    return EXIT_FAILED;
  } finally {
    await client.close();
  }
}

/** The registry is read a page per admin job; the CLI follows the cursor to the end. */
async function allPages(client: AdminClient, first: unknown, args: AdminArgs['tenant.list'], timeoutMs: number): Promise<unknown> {
  const items: unknown[] = [];
  let page = first as { items: unknown[]; cursor?: string };
  for (let pages = 0; pages < 100_000; pages++) {
    items.push(...page.items);
    if (!page.cursor) break;
    page = (await client.run('tenant.list', { ...args, cursor: page.cursor }, timeoutMs)) as typeof page;
  }
  return { items };
}

/** A create or token update whose webhook registration failed is a failure for scripts. */
function exitCodeFor(command: AdminCommand, result: unknown): number {
  if (command !== 'tenant.create' && command !== 'tenant.update') return 0;
  const webhook = (result as { webhook?: { registered: boolean; reason?: string } }).webhook;
  if (webhook && !webhook.registered && webhook.reason !== 'ROUTER_PUBLIC_URL is not set') return EXIT_FAILED;
  return 0;
}
