/**
 * The shim's lifecycle for one tenant: bind (cold env or warm claim) → restore the whole state
 * from S3 → the profile writes the agent's config → start the agent → ready (the profile's probes)
 * → periodic checkpoints → stop (agent first, final checkpoint after it exited, so nothing is
 * written after the copy). Failures after the restore still checkpoint what is on disk and end with
 * a non-zero exit, so the platform notices.
 */
import { writeFileSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { RuntimeError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { AgentProcess, assertPortFree, probeHostOf, shimBaseEnv } from './agent-process.js';
import { prepareWorkspace, sandboxUser } from './agent-sandbox.js';
import { Checkpointer, type CheckpointResult } from './checkpoint.js';
import { profileFor, type AgentProfile } from './profiles/index.js';
import type { ShimConfig, TenantBinding } from './shim-config.js';
import type { Phase, ShimHandlers } from './shim-server.js';
import { clearStatePaths, detectStateFormat, unpackState } from './state-archive.js';
import { removeForeignRoot } from './state-root.js';
import { describeUrl, downloadState } from './state-transfer.js';
import { StateUrlPins, assertOwnObject } from './state-url-guard.js';
import { STOPPED_CLEAN } from '../lib/runtime/shim-files.js';

export interface ShimOptions {
  config: ShimConfig;
  log: Logger;
  /** The environment the agent's own is derived from (minus the shim's secrets). */
  baseEnv: NodeJS.ProcessEnv;
  /** Called once when a stop has completed, with the exit code the process should use. */
  onStopped: (code: number) => void;
}

export class Shim implements ShimHandlers {
  readonly warm: boolean;
  readonly secret: string | undefined;
  private readonly config: ShimConfig;
  private readonly baseEnv: NodeJS.ProcessEnv;
  private readonly onStopped: (code: number) => void;
  private readonly profile: AgentProfile;
  private log: Logger;
  private current: Phase;
  private binding: TenantBinding | undefined;
  private agent: AgentProcess | undefined;
  private checkpointer: Checkpointer | undefined;
  /** brain.db in the workspace is the tenant's real state (restore done): safe to upload. */
  private restored = false;
  private activation: Promise<void> | undefined;
  private stopping: Promise<number> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly pins = new StateUrlPins();

  constructor(options: ShimOptions) {
    this.config = options.config;
    this.log = options.log;
    this.baseEnv = options.baseEnv;
    this.onStopped = options.onStopped;
    this.warm = options.config.warm;
    this.secret = options.config.warmPoolSecret;
    this.profile = profileFor(options.config.agent);
    this.current = 'warm';
  }

  /** The profile's state root: `<workspace>/<stateDir>`. */
  private get stateRoot(): string {
    return path.join(this.config.workspace, this.profile.stateDir);
  }

  private get scratchDir(): string {
    return path.join(this.config.workspace, '.shim');
  }

  phase(): Phase {
    return this.current;
  }

  hasTenant(): boolean {
    return this.binding !== undefined;
  }

  /** Cold start: the tenant came with the environment. */
  startCold(binding: TenantBinding): void {
    this.bind(binding).catch(() => undefined); // failure is logged and ends the process
  }

  claim(binding: TenantBinding): Promise<void> {
    this.log.info({ tenant_id: binding.tenantId }, 'claimed: binding warm pod to tenant');
    return this.bind(binding);
  }

  async checkpoint(): Promise<CheckpointResult | undefined> {
    if (!this.restored || !this.checkpointer) return undefined;
    return this.checkpointer.run('requested');
  }

  setStateUrls(urls: { getUrl: string | undefined; putUrl: string | undefined }): boolean {
    if (!this.binding) return false;
    // Throws a ValidationError (400) for a URL of another object: nothing is replaced then.
    const { tenantId, incarnation } = this.binding;
    assertOwnObject('state_get_url', urls.getUrl, tenantId, 'state', incarnation);
    assertOwnObject('state_put_url', urls.putUrl, tenantId, 'state', incarnation);
    this.pins.check('get', urls.getUrl);
    this.pins.check('put', urls.putUrl);
    if (urls.getUrl !== undefined) this.binding.stateGetUrl = urls.getUrl;
    if (urls.putUrl !== undefined) this.binding.statePutUrl = urls.putUrl;
    this.log.info({
      get: urls.getUrl && describeUrl(urls.getUrl),
      put: urls.putUrl && describeUrl(urls.putUrl),
    }, 'state urls replaced');
    return true;
  }

  /** Last resort on process exit: no agent may outlive the shim (it would hold the port). */
  killAgentNow(): void {
    if (this.agent && !this.agent.hasExited && this.agent.pid > 0) {
      try {
        process.kill(-this.agent.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /** Checks the state URLs a binding brings: this tenant's (incarnation's) own objects; pins them for later replacements. */
  private guardState(binding: TenantBinding): void {
    const { tenantId, incarnation } = binding;
    assertOwnObject('state_get_url', binding.stateGetUrl, tenantId, 'state', incarnation);
    assertOwnObject('state_put_url', binding.statePutUrl, tenantId, 'state', incarnation);
    assertOwnObject('state_legacy_get_url', binding.stateLegacyGetUrl, tenantId, 'legacy', incarnation);
    this.pins.check('get', binding.stateGetUrl);
    this.pins.check('put', binding.statePutUrl);
  }

  private bind(binding: TenantBinding): Promise<void> {
    try {
      this.guardState(binding);
    } catch (err) {
      // A claim answers 400; a cold start fails like any bad configuration.
      if (!this.warm) {
        this.log.error({ err }, `agent start refused: ${(err as Error).message}`);
        void this.shutdown('bad state urls', 2);
      }
      return Promise.reject(err);
    }
    this.binding = binding;
    this.log = this.log.child({ tenant_id: binding.tenantId });
    this.current = 'restoring';
    this.activation = this.activate(binding).catch((err: unknown) => {
      if (this.current !== 'stopping') {
        this.log.error({ err }, `agent start failed: ${err instanceof Error ? err.message : String(err)}`);
        void this.shutdown('start failed', 1);
      }
      throw err;
    });
    return this.activation;
  }

  private abortIfStopping(): void {
    if (this.current === 'stopping') throw new RuntimeError('start aborted: shim is stopping');
  }

  private async activate(binding: TenantBinding): Promise<void> {
    const started = Date.now();
    const { workspace } = this.config;
    // An earlier run's agent may have left a link where its state root or the shim's scratch goes
    // (a kept workspace): removed, never followed, before anything is written there.
    await Promise.all([removeForeignRoot(this.stateRoot), removeForeignRoot(this.scratchDir)]);
    await Promise.all([mkdir(this.stateRoot, { recursive: true }), mkdir(this.scratchDir, { recursive: true })]);
    this.checkpointer = new Checkpointer({
      root: this.stateRoot,
      paths: this.profile.statePaths,
      excludes: this.profile.stateExcludes,
      scratchDir: this.scratchDir,
      maxBytes: this.config.stateMaxBytes,
      log: this.log,
      putUrl: () => this.binding?.statePutUrl,
    });
    await this.restore(binding);
    this.abortIfStopping();
    this.restored = true;

    this.current = 'starting';
    const host = this.config.shimHost;
    const launch = await this.profile.prepare({
      workspace,
      stateRoot: this.stateRoot,
      host,
      port: this.config.agentPort,
      internalPort: this.config.internalPort,
      tenantId: binding.tenantId,
      settings: this.config.agent,
      botToken: binding.botToken,
      webhookSecret: binding.webhookSecret,
      agentTokenSha256: binding.agentTokenSha256,
      botApiBase: this.config.botApiBase,
      webhookUrl: this.config.routerPublicUrl && `${this.config.routerPublicUrl}/tg/${binding.tenantId}`,
      baseEnv: shimBaseEnv(this.baseEnv, binding),
      log: this.log,
    });
    await assertPortFree(probeHostOf(launch.env.HOST), this.config.agentPort);
    this.abortIfStopping();
    const sandbox = this.config.sandbox;
    const user = sandbox && sandboxUser(sandbox);
    // Restored and prepared as root: the agent's user gets the workspace, the shim keeps its scratch.
    if (user) prepareWorkspace(workspace, user, { scratch: [path.basename(this.scratchDir)], stateDir: this.profile.stateDir });
    this.agent = new AgentProcess({ launch, log: this.log, sandbox: sandbox && { settings: sandbox, workspace, shimOwn: [this.scratchDir] } });
    const agent = this.agent;
    if (this.config.agentPidFile) writeFileSync(this.config.agentPidFile, String(agent.pid));
    this.log.info({
      profile: this.profile.name, command: launch.command.display, pid: agent.pid, port: this.config.agentPort,
      sandbox: sandbox ? (user ? `namespaces, uid ${user.uid}` : 'namespaces, user namespace') : 'off',
    }, 'agent started');
    await agent.waitReady(this.config.agentReadyTimeoutS * 1000);
    this.abortIfStopping();
    this.current = 'ready';
    this.log.info({ port: this.config.agentPort, ms: Date.now() - started }, 'agent ready');
    void agent.exited.then((exit) => {
      if (this.current === 'stopping') return;
      this.log.error({ code: exit.code, signal: exit.signal }, 'agent exited unexpectedly');
      void this.shutdown('agent exited unexpectedly', 1);
    });
    this.scheduleCheckpoint();
  }

  /**
   * S3 is authoritative when a GET URL is given: its object (the whole-state archive, or the older
   * single brain.db), or (404) a fresh start, with nothing of an earlier run left in the state paths.
   */
  private async restore(binding: TenantBinding): Promise<void> {
    if (binding.statePutUrl === undefined) {
      this.log.warn('no STATE_PUT_URL: state is kept only in the local workspace, not saved to S3');
    }
    if (binding.stateGetUrl === undefined) {
      this.log.warn('no STATE_GET_URL: nothing restored, using whatever the workspace holds');
      return;
    }
    const t0 = Date.now();
    const root = this.stateRoot;
    const paths = this.profile.statePaths;
    this.log.info({ from: describeUrl(binding.stateGetUrl) }, 'restoring state');
    const staged = path.join(this.scratchDir, 'state.download');
    let got = await downloadState(binding.stateGetUrl, staged);
    let from = 'state';
    if (!got.found && binding.stateLegacyGetUrl !== undefined) {
      got = await downloadState(binding.stateLegacyGetUrl, staged);
      from = 'legacy brain.db';
    }
    if (!got.found) {
      await clearStatePaths(root, paths, this.profile.stateExcludes);
      this.log.info('no saved state: starting fresh');
      return;
    }
    try {
      const format = await detectStateFormat(staged);
      if (format === 'archive') {
        this.checkpointer?.markRestored();
        const out = await unpackState(staged, { root, paths, excludes: this.profile.stateExcludes, scratchDir: this.scratchDir, maxBytes: this.config.stateMaxBytes });
        this.log.info({ from, bytes: got.bytes, entries: out.entries, raw_bytes: out.rawBytes, ms: Date.now() - t0 }, 'state restored');
        return;
      }
      if (format !== 'sqlite') throw new RuntimeError(`saved state is not a state archive nor a SQLite database (${format}): not restored`);
      // The older form: one brain.db, kept where this profile's agent keeps its memory.
      await clearStatePaths(root, paths, this.profile.stateExcludes);
      const target = this.profile.legacyBrainDb;
      if (target === undefined) {
        this.log.warn({ from, profile: this.profile.name }, 'saved state is an older single brain.db, which this profile cannot use: starting fresh (the object is left in S3)');
        return;
      }
      const dbPath = path.join(root, target);
      await mkdir(path.dirname(dbPath), { recursive: true });
      await Promise.all(['-wal', '-shm'].map((suffix) => rm(`${dbPath}${suffix}`, { force: true })));
      await rename(staged, dbPath);
      this.checkpointer?.markRestored();
      this.log.info({ from, bytes: got.bytes, path: target, ms: Date.now() - t0 }, 'state restored (older single brain.db form)');
    } finally {
      await rm(staged, { force: true });
    }
  }

  private scheduleCheckpoint(): void {
    const every = this.config.checkpointIntervalS;
    if (every === 0 || this.current !== 'ready') return;
    this.timer = setTimeout(() => {
      void this.checkpointer?.run('periodic')
        .catch((err: unknown) => this.log.warn({ err }, 'checkpoint failed'))
        .finally(() => this.scheduleCheckpoint());
    }, every * 1000);
  }

  /** Stops once (later calls get the same promise); resolves with the process's exit code. */
  shutdown(reason: string, code = 0): Promise<number> {
    this.stopping ??= this.stop(reason, code).then((exitCode) => {
      this.onStopped(exitCode);
      return exitCode;
    });
    return this.stopping;
  }

  private async stop(reason: string, code: number): Promise<number> {
    this.current = 'stopping';
    clearTimeout(this.timer);
    this.log.info({ reason }, 'shutdown: stopping agent');
    let exitCode = code;
    const stopAgent = async (): Promise<void> => {
      if (!this.agent || this.agent.hasExited) return;
      const exit = await this.agent.stop(this.config.agentStopTimeoutS * 1000);
      this.log.info({ code: exit.code, signal: exit.signal, killed: exit.killed }, 'agent stopped');
    };
    await stopAgent();
    // A start in progress sees 'stopping' at its next step and gives up; it may have spawned
    // the agent meanwhile, so stop again after it settled.
    await this.activation?.catch(() => undefined);
    await stopAgent();
    if (this.restored && this.checkpointer) {
      try {
        const result = await this.checkpointer.run('shutdown');
        if (!result.uploaded) this.log.info({ bytes: result.bytes, sha256: result.sha256 }, 'final checkpoint: nothing new to upload');
        // For the local runtime: this workspace holds nothing S3 lacks, it may be removed.
        if (this.binding?.statePutUrl !== undefined) writeFileSync(path.join(this.scratchDir, STOPPED_CLEAN), new Date().toISOString());
      } catch (err) {
        this.log.error({ err }, 'final checkpoint failed: state since the last checkpoint is not in S3');
        exitCode = exitCode || 1;
      }
    }
    this.log.info({ code: exitCode }, 'shim stopped');
    return exitCode;
  }
}
