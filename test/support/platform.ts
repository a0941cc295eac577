/**
 * A platform assembled in the test process around real servers on free ports: redis-server,
 * dynalite and the Telegram emulator. Services are built from clients, exactly as main.ts does.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../../lib/config.js';
import { createClients, type PlatformClients } from '../../lib/platform/clients.js';
import type { Janitor } from '../../services/janitor/janitor.js';
import { buildJanitor } from '../../services/janitor/build.js';
import { startOrClose } from '../../lib/platform/service-parts.js';
import { createMetrics } from '../../lib/metrics.js';
import { main as ztmMain } from '../../cli/main.js';
import { startRedis, type TestRedis } from './redis.js';
import { startDynamo } from './dynamo.js';
import { startEmbeddedS3 } from '../../lib/state/embedded-s3.js';
import { deriveWebhookSecret } from '../../lib/webhook-secret.js';
import { startPlatform, type Platform } from '../../services/platform/platform.js';
import { execFileSync } from 'node:child_process';
import { createKubernetesRuntime } from '../../lib/runtime/create-runtime.js';
import type { LocalRuntime } from '../../lib/runtime/local-runtime.js';
import { KubeApiServer } from './kube/api-server.js';
import { Kubelet } from './kube/kubelet.js';
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
  /** The whole platform (ingress, forwarder, waker, local runtime) when started with `full`. */
  platform?: Platform;
  ingressUrl?: string;
  /** POSTs an update to the ingress as Telegram would (with the tenant's secret unless given). */
  forwarderDeadLetters(): Promise<number>;
  /** The OS pid of the agent process (the shim's child) serving a tenant, on either runtime. */
  agentPidOf(tenantId: string): Promise<number | undefined>;
  /** Kills a tenant's whole pod at once (local: SIGKILL to its shim), as a crash or a forced delete. */
  killPod(tenantId: string): Promise<boolean>;
  kube?: { api: KubeApiServer; kubelet: Kubelet };
  postUpdate(tenantId: string, update: unknown, options?: { secret?: string | null }): Promise<{ status: number; body: string; headers: Record<string, unknown> }>;
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
  /** Start every service (ingress, forwarder, waker, janitor) with the local runtime and s3rver. */
  full?: boolean;
  /** With `full`: agents as local processes, or as pods on the Kubernetes API stand-in + simulated kubelet. */
  runtime?: 'local' | 'kubernetes';
}

/**
 * Runs the real `ztm` binary as a child process with only `env` (plus PATH and HOME); `input` is
 * written to its stdin, which is then closed (no input: stdin is /dev/null). Killed after 60 s.
 */
export function spawnZtm(argv: string[], env: Record<string, string>, input?: string, timeoutMs = 60_000): Promise<ZtmResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'cli/ztm.js'), ...argv], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin?.end(input);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

export async function startTestPlatform(options: TestPlatformOptions = {}): Promise<TestPlatform> {
  const redis = await startRedis();
  const dynamo = await startDynamo();
  const emulator = await TelegramEmulator.start();
  const webhookSecret = randomBytes(24).toString('base64url');
  const warmPoolSecret = randomBytes(24).toString('base64url');
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-platform-'));
  const s3 = options.full ? await startEmbeddedS3({}) : undefined;
  const config = loadConfig({
    REDIS_URL: redis.url,
    DYNAMODB_ENDPOINT: dynamo.endpoint,
    DYNAMODB_TABLE: `t-${randomBytes(4).toString('hex')}`,
    TELEGRAM_API_BASE: emulator.url,
    WEBHOOK_SECRET: webhookSecret,
    WARM_POOL_SECRET: warmPoolSecret,
    DATA_DIR: dataDir,
    INGRESS_PORT: '0',
    S3_BUCKET: `b-${randomBytes(4).toString('hex')}`,
    ...(s3 ? { S3_ENDPOINT: s3.endpoint } : {}),
    ...options.env,
  });
  const logs = new LogCapture();
  const clients = createClients(config, { name: 'test' });
  await clients.registry.ensureTable();
  let platform: Platform | undefined;
  let janitor: Janitor;
  let kube: { api: KubeApiServer; kubelet: Kubelet } | undefined;
  if (options.full) {
    let runtime;
    if (options.runtime === 'kubernetes') {
      const api = await KubeApiServer.start({ namespaces: [config.k8sNamespace] });
      kube = { api, kubelet: new Kubelet(api) };
      runtime = createKubernetesRuntime(config, logs.logger('platform'), { warmPoolSecret, webhookSecret }, api.kubeConfig(config.k8sNamespace));
    }
    platform = await startPlatform({ config, log: logs.logger('platform'), clients, secrets: { webhookSecret, warmPoolSecret }, ...(runtime ? { runtime } : {}) });
    janitor = platform.janitor;
  } else {
    // Admin commands only (no runtime); a registry of its own without queue gauges, so closing the
    // janitor closes all the builder made.
    janitor = options.withoutJanitor ? (undefined as unknown as Janitor) : (await startOrClose(await buildJanitor({
      config, log: logs.logger('janitor'), clients, webhookSecret, metrics: createMetrics({ service: 'janitor', defaultMetrics: false }),
    }))).janitor;
  }
  const ingressUrl = platform ? `http://127.0.0.1:${platform.ingress.port}` : undefined;
  const cliEnv = { ZTM_REDIS_URL: redis.url };

  return {
    config, redis, emulator, clients, janitor, logs, webhookSecret, platform, ingressUrl, ...(kube ? { kube } : {}),
    async killPod(tenantId) {
      if (kube) {
        const pod = (await clients.registry.get(tenantId))?.pod_name;
        return pod ? kube.kubelet.killContainer(pod, 'SIGKILL') : false;
      }
      const pid = (platform?.runtime as unknown as LocalRuntime | undefined)?.pidOf(tenantId);
      if (!pid) return false;
      process.kill(pid, 'SIGKILL');
      return true;
    },
    async agentPidOf(tenantId) {
      // The process listening on the tenant's endpoint right now: exactly the agent that serves it.
      const address = await clients.redis.get(`router:endpoint:${tenantId}`);
      if (!address) return undefined;
      try {
        const out = execFileSync('ss', ['-ltnpH', `src ${address}`]).toString();
        const pid = /pid=(\d+)/.exec(out)?.[1];
        return pid ? Number(pid) : undefined;
      } catch {
        return undefined;
      }
    },
    async forwarderDeadLetters() {
      return platform ? platform.forwarder.deadLetters.count() : 0;
    },
    async postUpdate(tenantId, update, o = {}) {
      if (!ingressUrl) throw new Error('postUpdate needs a platform started with full: true');
      const secret = o.secret === undefined ? deriveWebhookSecret(webhookSecret, (await clients.registry.get(tenantId)) ?? { tenant_id: tenantId }) : o.secret;
      const res = await request(`${ingressUrl}/tg/${tenantId}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(secret ? { 'x-telegram-bot-api-secret-token': secret } : {}) },
        body: typeof update === 'string' ? update : JSON.stringify(update),
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      });
      return { status: res.statusCode, body: await res.body.text(), headers: res.headers };
    },
    async ztm(...argv) {
      const out: string[] = [];
      const err: string[] = [];
      const code = await ztmMain(argv, cliEnv, { out: (l) => out.push(l), err: (l) => err.push(l) });
      return { code, stdout: out.join('\n'), stderr: err.join('\n') };
    },
    async ztmProcess(argv, env = {}) {
      return spawnZtm(argv, { ...cliEnv, ...env });
    },
    async close() {
      if (platform) await platform.close();
      else await janitor?.close();
      if (kube) {
        await kube.kubelet.close();
        await kube.api.close();
      }
      await clients.close();
      await s3?.close();
      rmSync(dataDir, { recursive: true, force: true });
      await emulator.close();
      await dynamo.close();
      await redis.close();
    },
  };
}

/** One Bot API call to a sandbox (or emulator) at `base`, as a bot with `token` makes it; the parsed answer. */
export async function callBotApi(base: string, token: string, method: string, params: unknown = {}): Promise<{ ok: boolean; result?: any }> {
  const res = await request(`${base}/bot${token}/${method}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(params) });
  return (await res.body.json()) as { ok: boolean; result?: any };
}
