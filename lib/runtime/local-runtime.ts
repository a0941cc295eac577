/**
 * The embedded default's runtime: each tenant's "pod" is the shim (agent/shim.ts) as a child process
 * on 127.0.0.1 with its own ports and workspace under DATA_DIR, and the warm pool is a set of spare
 * shims waiting for an authenticated claim. Logs: `DATA_DIR/tenants/<id>/agent.log` and
 * `DATA_DIR/warm/<name>/agent.log`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logger.js';
import { RuntimeError } from '../errors.js';
import { freePort } from '../util/free-port.js';
import type { Tenant } from '../registry/tenant.js';
import type { PresignedState } from '../state/state-store.js';
import { podNameOf, type Runtime, type StartOptions, type StartProgress, type StartResult, type StopOptions, type TenantInstance } from './runtime.js';
import { ShimProcess, waitForOrphanShim } from './local-process.js';
import { agentSettingsEnv, type AgentSettings } from '../agent-profiles.js';
import { tenantAgentSecrets } from './tenant-agent-secrets.js';
import type { TenantIdentity } from '../webhook-secret.js';
import { shimControlSecret } from './shim-auth.js';
import { claimBody } from './shim-admin.js';
import { STOPPED_CLEAN } from './shim-files.js';
import type { AgentSandboxConfig } from '../config.js';
import { resolveAgentIsolation, type AgentIsolation } from '../util/agent-isolation.js';

/** A shim whose start failed gets this long to stop its agent (which it gives 20 s by default). */
const FAILED_START_GRACE_MS = 30_000;

export interface LocalRuntimeOptions {
  dataDir: string;
  log: Logger;
  warmPoolSecret: string;
  /** WEBHOOK_SECRET: each agent gets its tenant's derived webhook secret and agent-token hash. */
  webhookSecret?: string | undefined;
  /** AGENT_PROFILE and its settings; the reference agent when unset. */
  agent?: AgentSettings | undefined;
  /** The Bot API base the platform uses (telegram-protocol agents answer through it). */
  botApiBase?: string | undefined;
  /** ROUTER_PUBLIC_URL: agents that register their own webhook may register only `<it>/tg/<id>`. */
  routerPublicUrl?: string | undefined;
  /** STATE_MAX_BYTES for the shims' checkpoints. */
  stateMaxBytes?: number | undefined;
  readyTimeoutS?: number;
  checkpointIntervalS?: number;
  logLevel?: string;
  /**
   * AGENT_SANDBOX: each agent in its own namespaces with DATA_DIR hidden (agent/agent-sandbox.ts),
   * when this host can (probed once per process: lib/util/agent-isolation.ts). Default off.
   */
  agentSandbox?: AgentSandboxConfig | undefined;
}

interface TenantChild {
  shim: ShimProcess;
  instance: TenantInstance;
}

export class LocalRuntime implements Runtime {
  readonly kind = 'local' as const;
  private readonly tenants = new Map<string, TenantChild>();
  private readonly warm = new Map<string, ShimProcess>();
  private readonly exitListeners: Array<(tenantId: string, podName: string) => void> = [];
  /** Stops in progress: a new start of the same tenant waits for the old one's final checkpoint. */
  private readonly stopping = new Map<string, Promise<void>>();
  /**
   * Ports handed to live shims (theirs and their agents'). A warm member's agent port stays unbound
   * until its claim, so the OS may offer it again to a later freePort(): two members with one agent
   * port would route one tenant's messages to the other's agent (the loser's shim sees the winner
   * answer its health probe). Never hand out a port a live shim holds.
   */
  private readonly portsInUse = new Set<number>();

  /** Removal of the warm workspaces a previous runtime process left (started at construction). */
  private readonly sweeping: Promise<void>;

  /** Whether agents are sandboxed here, and the line that says so. */
  readonly isolation: AgentIsolation;

  constructor(private readonly o: LocalRuntimeOptions) {
    if (!o.dataDir || !o.log || !o.warmPoolSecret) throw new TypeError('LocalRuntime: dataDir, log and warmPoolSecret are required');
    this.isolation = resolveAgentIsolation(o.agentSandbox ?? { mode: 'off', uid: 65_534, gid: 65_534 });
    this.sweeping = this.sweepWarmLeftovers();
  }

  /**
   * Warm workspaces of a runtime process that died: once their shim is gone (a shim still saving a
   * claimed tenant's state is waited for), they are removed, so no later agent finds a tenant's
   * files there. Taken as a snapshot now: members this runtime starts have new names.
   */
  private async sweepWarmLeftovers(): Promise<void> {
    const root = path.join(this.o.dataDir, 'warm');
    const names = existsSync(root) ? readdirSync(root).filter((n) => n.startsWith('warm-pool-')) : [];
    await Promise.all(names.map(async (name) => {
      const dir = path.join(root, name);
      try {
        await waitForOrphanShim(dir, FAILED_START_GRACE_MS);
        // Claimed (the shim made its scratch dir) and not stopped with its state in S3: the only copy.
        const scratch = path.join(dir, 'workspace', '.shim');
        if (existsSync(scratch) && !existsSync(path.join(scratch, STOPPED_CLEAN))) {
          this.o.log.warn({ dir }, 'kept a warm workspace a previous run left: its last state may not be in S3');
          return;
        }
        rmSync(dir, { recursive: true, force: true });
      } catch (err) {
        this.o.log.warn({ err, dir }, 'could not remove a warm workspace a previous run left');
      }
    }));
    if (names.length > 0) this.o.log.info({ removed: names.length }, 'removed the warm workspaces a previous run left');
  }

  private get readyTimeoutMs(): number {
    return (this.o.readyTimeoutS ?? 60) * 1000;
  }

  private baseEnv(): Record<string, string> {
    const env: Record<string, string> = {
      CHECKPOINT_INTERVAL_S: String(this.o.checkpointIntervalS ?? 60),
      AGENT_READY_TIMEOUT_S: String(this.o.readyTimeoutS ?? 60),
      LOG_LEVEL: this.o.logLevel ?? 'info',
    };
    if (this.o.agent) {
      const { plain, secret } = agentSettingsEnv(this.o.agent);
      // The local runtime has no Secret objects: the key goes into the shim's own environment.
      Object.assign(env, plain, secret);
    }
    if (this.o.botApiBase) env.TELEGRAM_API_BASE = this.o.botApiBase;
    if (this.o.routerPublicUrl) env.ROUTER_PUBLIC_URL = this.o.routerPublicUrl;
    if (this.o.stateMaxBytes) env.STATE_MAX_BYTES = String(this.o.stateMaxBytes);
    // The shim hides DATA_DIR (secrets, the stores' files, every workspace) from its agent but its own workspace.
    env.AGENT_SANDBOX = this.isolation.sandboxed ? 'namespaces' : 'off';
    if (this.isolation.sandboxed) {
      env.AGENT_SANDBOX_HIDE = JSON.stringify([path.resolve(this.o.dataDir)]);
      env.AGENT_SANDBOX_UID = String(this.isolation.uid);
      env.AGENT_SANDBOX_GID = String(this.isolation.gid);
    }
    return env;
  }

  /** What a shim needs of its tenant beyond the token: derived secrets and the state URLs. */
  private tenantEnv(who: TenantIdentity, state: PresignedState): Record<string, string> {
    const env: Record<string, string> = { STATE_GET_URL: state.getUrl, STATE_PUT_URL: state.putUrl };
    if (state.legacyGetUrl) env.STATE_LEGACY_GET_URL = state.legacyGetUrl;
    if (this.o.webhookSecret) {
      const derived = tenantAgentSecrets(this.o.webhookSecret, who);
      env.TENANT_WEBHOOK_SECRET = derived.webhookSecret;
      env.AGENT_TOKEN_SHA256 = derived.agentTokenSha256;
    }
    return env;
  }

  /**
   * The control secret of one shim, derived from the pool's master secret and its name
   * (lib/runtime/shim-auth.ts): what an agent reads of its own shim opens no other shim.
   */
  private controlSecret(shimName: string): string {
    return shimControlSecret(this.o.warmPoolSecret, shimName);
  }

  /** A free port no live shim of this runtime holds (see portsInUse). */
  private async allocatePort(): Promise<number> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = await freePort();
      if (!this.portsInUse.has(port)) {
        this.portsInUse.add(port);
        return port;
      }
    }
    throw new RuntimeError('no free port for an agent process');
  }

  /** Gives the shim's ports back once it exited. */
  private track(shim: ShimProcess, internalPort: number): ShimProcess {
    void shim.exited.then(() => {
      this.portsInUse.delete(shim.shimPort);
      this.portsInUse.delete(shim.agentPort);
      this.portsInUse.delete(internalPort);
    });
    return shim;
  }

  /** The shim's port, its agent's, and one for the agent's internal listener (OpenClaw's gateway). */
  private async allocatePorts(): Promise<[number, number, number]> {
    return [await this.allocatePort(), await this.allocatePort(), await this.allocatePort()];
  }

  onExit(listener: (tenantId: string, podName: string) => void): void {
    this.exitListeners.push(listener);
  }

  async start(tenant: Tenant, state: PresignedState, options: StartOptions = {}): Promise<StartResult> {
    const id = tenant.tenant_id;
    const progress = (p: StartProgress): void => {
      try {
        options.onProgress?.(p);
      } catch (err) {
        this.o.log.warn({ tenant: id, err }, 'start progress listener failed');
      }
    };
    await this.stopping.get(id);
    const live = await this.find(id);
    if (live) {
      progress({ phase: 'ready' });
      return { instance: live, path: 'warm' };
    }
    const dying = this.tenants.get(id);
    if (dying?.shim.alive) {
      // Its agent died and its shim is still saving the state (or stopping): the new agent must
      // restore what that save writes, never the checkpoint before it. Bounded: a stuck shim is stopped.
      this.o.log.warn({ tenant: id, pod: dying.shim.name }, 'waiting for the previous agent process of this tenant to save its state and exit');
      const gone = await Promise.race([dying.shim.exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), FAILED_START_GRACE_MS).unref())]);
      if (!gone) await dying.shim.terminate(5_000);
    }
    if (!this.tenants.has(id)) {
      // An agent of this tenant started by a previous runtime process (which died) may still be
      // saving its state: the new one must restore that, not an older checkpoint.
      const orphan = await waitForOrphanShim(path.join(this.o.dataDir, 'tenants', id), FAILED_START_GRACE_MS);
      if (orphan) this.o.log.warn({ tenant: id, pid: orphan }, 'waited for the agent process a previous runtime left to stop');
    }
    progress({ phase: 'starting' });
    const warm = await this.claimWarm(tenant, state);
    if (warm) {
      progress({ phase: 'ready' });
      return { instance: warm, path: 'warm' };
    }
    this.o.log.info({ tenant: id }, 'warm pool miss: cold start');
    const dir = path.join(this.o.dataDir, 'tenants', id);
    const [shimPort, agentPort, internalPort] = await this.allocatePorts();
    const shim = this.track(new ShimProcess(podNameOf(id), shimPort, agentPort, {
      ...this.baseEnv(), WORKSPACE: path.join(dir, 'workspace'), TENANT_ID: id, BOT_TOKEN: tenant.bot_token,
      ...this.tenantEnv(tenant, state), WARM_POOL_SECRET: this.controlSecret(podNameOf(id)), AGENT_INTERNAL_PORT: String(internalPort),
    }, path.join(dir, 'agent.log')), internalPort);
    shim.serves(dir);
    this.o.log.info({ tenant: id, pod: shim.name, address: shim.address }, 'starting agent process (cold)');
    // The shim listens first, then restores the state and starts the agent: two phases.
    const until = Math.min(Date.now() + this.readyTimeoutMs, options.deadlineMs ?? Number.POSITIVE_INFINITY);
    let outcome = await shim.waitFor(() => shim.healthy(), Math.max(1, until - Date.now()));
    if (outcome === 'ok') {
      progress({ phase: 'restoring-state' });
      outcome = await shim.waitFor(() => shim.ready(), Math.max(1, until - Date.now()));
    }
    if (outcome !== 'ok') {
      // SIGTERM, not SIGKILL: the agent runs in its own process group, which only the shim stops;
      // a killed shim would leave it running (holding the workspace) after the failed start.
      await shim.terminate(FAILED_START_GRACE_MS);
      throw new RuntimeError(outcome === 'exited'
        ? `agent process for ${id} exited before it was ready (exit code ${shim.child.exitCode ?? 'signal'}); see ${path.join(dir, 'agent.log')}`
        : `agent for ${id} was not ready within ${Math.round(this.readyTimeoutMs / 1000)}s`,
      { reason: outcome === 'exited' ? 'crash_loop' : 'start_timeout' });
    }
    progress({ phase: 'ready' });
    return { instance: this.adopt(id, shim), path: 'cold' };
  }

  /** Takes a claimable warm member (synchronously: two wakers in this process never share one). */
  private async claimWarm(tenant: Tenant, state: PresignedState): Promise<TenantInstance | undefined> {
    for (const [name, shim] of this.warm) {
      this.warm.delete(name);
      if (!shim.alive) continue; // exited (its exit handler drops it from the pool)
      // A member seen healthy (countReadyWarm, the pool-keeper's count) is claimed at once: one HTTP
      // round trip less on every warm wake; one that died since fails its claim (the connection is
      // refused) and the next member is tried. One still starting is nearly ready: waiting for it
      // beats a cold start.
      if (!shim.seenHealthy && (await shim.waitFor(() => shim.healthy(), 5000)) !== 'ok') {
        void shim.terminate(0);
        continue;
      }
      const ok = await shim.claim(this.controlSecret(shim.name), claimBody(tenant, state, this.o.webhookSecret), this.readyTimeoutMs);
      if (!ok) {
        this.o.log.warn({ pod: name, tenant: tenant.tenant_id }, 'warm claim refused: discarding that member');
        void shim.terminate(FAILED_START_GRACE_MS); // its agent may be running: let the shim stop it
        continue;
      }
      this.o.log.info({ tenant: tenant.tenant_id, pod: name, address: shim.address }, 'warm pool hit: reusing node');
      return this.adopt(tenant.tenant_id, shim);
    }
    return undefined;
  }

  /**
   * A warm member's directory goes once its shim is gone: unclaimed, it holds nothing; claimed, the
   * tenant's state was saved by the shim's clean exit (code 0), and nothing of it must be left for
   * a later agent to find. After an unclean exit it is kept (the only copy of unsaved state).
   */
  private removeWarmDir(shim: ShimProcess): void {
    if (!shim.name.startsWith('warm-pool-')) return;
    const dir = path.join(this.o.dataDir, 'warm', shim.name);
    if (shim.child.exitCode === 0 || !shim.claimed) rmSync(dir, { recursive: true, force: true });
    else this.o.log.warn({ pod: shim.name, code: shim.child.exitCode, signal: shim.child.signalCode, dir }, 'warm member exited uncleanly: its workspace is kept');
  }

  private adopt(tenantId: string, shim: ShimProcess): TenantInstance {
    shim.serves(path.join(this.o.dataDir, 'tenants', tenantId));
    const instance: TenantInstance = { tenantId, podName: shim.name, address: shim.address, ip: '127.0.0.1' };
    const entry = { shim, instance };
    this.tenants.set(tenantId, entry);
    void shim.exited.then(() => {
      if (this.tenants.get(tenantId) !== entry) return; // a requested stop
      this.tenants.delete(tenantId);
      this.o.log.warn({ tenant: tenantId, pod: shim.name, code: shim.child.exitCode, signal: shim.child.signalCode }, 'agent process exited');
      for (const l of this.exitListeners) l(tenantId, shim.name);
    });
    return instance;
  }

  async find(tenantId: string): Promise<TenantInstance | undefined> {
    const entry = this.tenants.get(tenantId);
    if (!entry || !entry.shim.alive) return undefined;
    return (await entry.shim.ready()) ? entry.instance : undefined;
  }

  async stop(tenantId: string, options: StopOptions = {}): Promise<boolean> {
    const entry = this.tenants.get(tenantId);
    if (!entry) {
      await this.stopping.get(tenantId);
      return false;
    }
    this.tenants.delete(tenantId); // a requested stop is not a crash: no exit listeners
    const done = entry.shim.terminate((options.graceS ?? 30) * 1000).finally(() => this.stopping.delete(tenantId));
    this.stopping.set(tenantId, done);
    await done;
    this.o.log.info({ tenant: tenantId, pod: entry.shim.name }, 'agent process stopped');
    return true;
  }

  async refreshState(tenantId: string, state: PresignedState): Promise<boolean> {
    const entry = this.tenants.get(tenantId);
    if (!entry?.shim.alive) return false;
    return entry.shim.refreshState(this.controlSecret(entry.shim.name), { state_get_url: state.getUrl, state_put_url: state.putUrl });
  }

  /** Local agents get the token in their environment at start: nothing to rotate until the next wake. */
  async updateToken(): Promise<void> {}

  async removeTenant(tenantId: string): Promise<void> {
    const entry = this.tenants.get(tenantId);
    await this.stop(tenantId);
    rmSync(path.join(this.o.dataDir, 'tenants', tenantId), { recursive: true, force: true });
    if (entry?.shim.name.startsWith('warm-pool-')) rmSync(path.join(this.o.dataDir, 'warm', entry.shim.name), { recursive: true, force: true });
  }

  async list(): Promise<TenantInstance[]> {
    return [...this.tenants.values()].map((c) => c.instance);
  }

  async countWarm(): Promise<number> {
    for (const [name, shim] of this.warm) if (!shim.alive) this.warm.delete(name);
    return this.warm.size;
  }

  async countReadyWarm(): Promise<number> {
    const health = await Promise.all([...this.warm.values()].map((m) => m.healthy()));
    return health.filter(Boolean).length;
  }

  async addWarm(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      // Unguessable and collision-free: a member's name is part of its control secret's derivation.
      const name = `warm-pool-${randomBytes(8).toString('hex')}`;
      const dir = path.join(this.o.dataDir, 'warm', name);
      const [shimPort, agentPort, internalPort] = await this.allocatePorts();
      const shim = this.track(new ShimProcess(name, shimPort, agentPort, {
        ...this.baseEnv(), WARM: '1', WARM_POOL_SECRET: this.controlSecret(name), WORKSPACE: path.join(dir, 'workspace'),
        AGENT_INTERNAL_PORT: String(internalPort),
      }, path.join(dir, 'agent.log')), internalPort);
      this.warm.set(name, shim);
      shim.serves(dir); // its shim.pid: a later runtime waits for it before removing the workspace
      void shim.exited.then(() => {
        this.warm.delete(name);
        this.removeWarmDir(shim);
      });
    }
  }

  async removeWarm(n: number): Promise<void> {
    const victims: ShimProcess[] = [];
    // Not-yet-healthy members first: they are the furthest from being useful.
    const members = [...this.warm.values()];
    const health = await Promise.all(members.map((m) => m.healthy()));
    const ordered = members.map((m, i) => ({ m, ok: health[i] })).sort((a, b) => Number(a.ok) - Number(b.ok));
    for (const { m } of ordered.slice(0, n)) {
      this.warm.delete(m.name);
      victims.push(m);
    }
    await Promise.all(victims.map((v) => v.terminate(5000)));
  }

  /** Test and operator aid: the OS pid of a tenant's shim. */
  pidOf(tenantId: string): number | undefined {
    return this.tenants.get(tenantId)?.shim.child.pid;
  }

  async close(): Promise<void> {
    await Promise.all([...this.tenants.keys()].map((id) => this.stop(id)));
    await Promise.all([...this.warm.values()].map((w) => w.terminate(5000)));
    this.warm.clear();
    await this.sweeping;
  }
}
