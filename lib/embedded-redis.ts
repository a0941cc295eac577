/**
 * Runs a real `redis-server` as a child process: used by the embedded default when nothing answers
 * at REDIS_URL, and by the test harness (always on a free port, never the machine's 6379).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { RuntimeError } from './errors.js';
import { freePort } from './util/free-port.js';

export interface EmbeddedRedisOptions {
  /** Working directory for its AOF; required when `persist` is true. */
  dir: string;
  port?: number;
  host?: string;
  /** appendonly yes with appendfsync `always` or `everysec`; off means memory only. */
  persist?: false | 'always' | 'everysec';
  /** requirepass: given to redis-server in a 0600 config file under `dir`, never on its command line. */
  password?: string;
}

/** One PING on a fresh connection (with the password when given); false on any error. Leaves no connection. */
export async function pingRedis(o: { host: string; port: number; password?: string | undefined; connectTimeoutMs?: number }): Promise<boolean> {
  const probe = new Redis({
    host: o.host, port: o.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false,
    connectTimeout: o.connectTimeoutMs ?? 2000, ...(o.password ? { password: o.password } : {}),
  });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

export class EmbeddedRedis {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  private child: ChildProcess | undefined;
  private readonly options: EmbeddedRedisOptions;

  private constructor(options: EmbeddedRedisOptions, port: number) {
    this.options = options;
    this.host = options.host ?? '127.0.0.1';
    this.port = port;
    this.url = options.password ? `redis://:${encodeURIComponent(options.password)}@${this.host}:${port}` : `redis://${this.host}:${port}`;
  }

  static isInstalled(): boolean {
    return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  }

  static async start(options: EmbeddedRedisOptions): Promise<EmbeddedRedis> {
    if (!EmbeddedRedis.isInstalled()) {
      throw new RuntimeError('redis-server is not installed: install it (Debian/Ubuntu: `apt-get install redis-server`, macOS: `brew install redis`) or set REDIS_URL');
    }
    const port = options.port ?? (await freePort(options.host));
    const redis = new EmbeddedRedis(options, port);
    await redis.spawn();
    return redis;
  }

  /** Starts (or restarts after stop()) the server on the same port and directory. */
  async spawn(): Promise<void> {
    if (this.child) return;
    mkdirSync(this.options.dir, { recursive: true, mode: 0o700 });
    const persist = this.options.persist ?? false;
    const args: string[] = [];
    if (this.options.password) {
      // A config file, not --requirepass: process arguments are readable by every user of the host.
      const conf = path.join(this.options.dir, 'redis-auth.conf');
      writeFileSync(conf, `requirepass "${this.options.password.replace(/["\\]/g, '')}"\n`, { mode: 0o600 });
      chmodSync(conf, 0o600);
      args.push(conf);
    }
    args.push(
      '--port', String(this.port), '--bind', this.host, '--dir', this.options.dir,
      '--save', '', '--protected-mode', 'no', '--daemonize', 'no', '--loglevel', 'warning',
      '--appendonly', persist ? 'yes' : 'no',
    );
    if (persist) args.push('--appendfsync', persist);
    const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    await this.waitReady(() => stderr);
  }

  private async waitReady(stderr: () => string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (!this.child) throw new RuntimeError(`redis-server exited at start: ${stderr().trim().split('\n').pop() ?? ''}`);
      if (await pingRedis({ host: this.host, port: this.port, password: this.options.password })) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new RuntimeError(`redis-server did not answer on port ${this.port} within 10s`);
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** Stops the server: SIGTERM (clean, fsyncs the AOF) or SIGKILL (a crash). */
  async stop(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill(signal);
    });
    this.child = undefined;
  }
}
