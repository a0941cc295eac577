/**
 * A platform assembled in the test process around real servers on free ports: redis-server,
 * dynalite and the Telegram emulator. Services are built from clients, exactly as main.ts does.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../../lib/config.js';
import { createClients, type PlatformClients } from '../../lib/platform/clients.js';
import { createJanitor, type Janitor } from '../../services/janitor/janitor.js';
import { main as ztmMain } from '../../cli/main.js';
import { startRedis, type TestRedis } from './redis.js';
import { startDynamo } from './dynamo.js';
import { TelegramEmulator } from './telegram-emulator.js';
import { LogCapture } from './log-capture.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ZtmResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestPlatform {
  config: Config;
  redis: TestRedis;
  emulator: TelegramEmulator;
  clients: PlatformClients;
  janitor: Janitor;
  logs: LogCapture;
  webhookSecret: string;
  /** Runs ztm in this process (fast) against the test Redis. */
  ztm(...argv: string[]): Promise<ZtmResult>;
  /** Runs the real `ztm` binary as a child process. */
  ztmProcess(argv: string[], env?: Record<string, string>): Promise<ZtmResult>;
  close(): Promise<void>;
}

export interface TestPlatformOptions {
  env?: Record<string, string>;
  /** Start without the janitor (to test "no admin worker"). */
  withoutJanitor?: boolean;
}

export async function startTestPlatform(options: TestPlatformOptions = {}): Promise<TestPlatform> {
  const redis = await startRedis();
  const dynamo = await startDynamo();
  const emulator = await TelegramEmulator.start();
  const webhookSecret = randomBytes(24).toString('base64url');
  const config = loadConfig({
    REDIS_URL: redis.url,
    DYNAMODB_ENDPOINT: dynamo.endpoint,
    DYNAMODB_TABLE: `t-${randomBytes(4).toString('hex')}`,
    TELEGRAM_API_BASE: emulator.url,
    WEBHOOK_SECRET: webhookSecret,
    DATA_DIR: path.join(ROOT, '.ztm', 'test'),
    ...options.env,
  });
  const logs = new LogCapture();
  const clients = createClients(config, { name: 'test' });
  await clients.registry.ensureTable();
  const janitor = options.withoutJanitor ? (undefined as unknown as Janitor) : createJanitor({ config, log: logs.logger('janitor'), clients, webhookSecret });
  const cliEnv = { ZTM_REDIS_URL: redis.url };

  return {
    config, redis, emulator, clients, janitor, logs, webhookSecret,
    async ztm(...argv) {
      const out: string[] = [];
      const err: string[] = [];
      const code = await ztmMain(argv, cliEnv, { out: (l) => out.push(l), err: (l) => err.push(l) });
      return { code, stdout: out.join('\n'), stderr: err.join('\n') };
    },
    async ztmProcess(argv, env = {}) {
      return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [path.join(ROOT, 'cli/ztm.js'), ...argv], {
          cwd: ROOT,
          env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...cliEnv, ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.once('error', reject);
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve({ code: code ?? 1, stdout, stderr });
        });
      });
    },
    async close() {
      await janitor?.close();
      await clients.close();
      await emulator.close();
      await dynamo.close();
      await redis.close();
    },
  };
}
