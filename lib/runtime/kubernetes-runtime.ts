/**
 * The production runtime (RUNTIME=kubernetes): each tenant's agent is a Kata pod in K8S_NAMESPACE
 * running the shim (agent/shim.ts) as its entrypoint. Behaves like the local runtime:
 *
 * - `start` waits for a deletion of the tenant's pod still in progress (so the new agent restores
 *   the state the old one saved), reuses a live ready pod, else claims a warm pool member (a JSON
 *   merge patch carrying the pod's resourceVersion relabels it `app=zeroclaw,tenant=<id>`: of two
 *   wakers exactly one wins, the other gets 409 and tries the next member), hands it the tenant
 *   with `POST /claim`, and falls back to a cold pod `zeroclaw-<id>`: it follows its Ready condition
 *   (the shim listens) with a watch, then claims it the same way.
 * - `stop` deletes with a grace period (the shim checkpoints on SIGTERM) and resolves once the pod
 *   object is gone; `onExit` follows every tenant pod with a watch and reports the ones that end,
 *   or are deleted, without a `stop` of this runtime.
 * - The warm pool is plain pods (`warm-pool-<control id>`, `app=warm-pool`) at a low priority
 *   class; the pool-keeper sizes it with countWarm/addWarm/removeWarm.
 *
 * Secrets: the bot token and the presigned state URLs reach a pod only in the body of its signed
 * claim (never in its spec); they are never logged nor put in an error. Each pod's control calls
 * are signed with that pod's own secret (pod-secrets.ts); the master stays with the platform.
 */
import { randomInt } from 'node:crypto';
import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Pod,
  type V1Secret,
  type V1Toleration,
} from '@kubernetes/client-node';
import { request } from 'undici';
import type { Logger } from '../logger.js';
import { RuntimeError, ValidationError } from '../errors.js';
import { redactSecrets } from '../redact.js';
import type { Tenant } from '../registry/tenant.js';
import type { PresignedState } from '../state/state-store.js';
import { assertTenantId } from '../validate.js';
import {
  apiStatus,
  describeKubeError,
  isConflict,
  isNotFound,
  createdMs,
  PodWatch,
  podDeleting,
  podExitReason,
  podLive,
  podReady,
  podTerminated,
} from './kube-client.js';
import {
  claimPatch,
  coldPodManifest,
  DEFAULT_KATA_NODE_SELECTOR,
  DEFAULT_KATA_TOLERATIONS,
  DEFAULT_RESOURCES,
  DEFAULT_RUN_AS_USER,
  LABEL_APP,
  LABEL_MANAGED_BY,
  LABEL_TENANT,
  MANAGED_BY,
  tenantSelector,
  TENANT_APP,
  TENANT_SELECTOR,
  tokenSecretManifest,
  tokenSecretName,
  validatePodSpecOptions,
  WARM_APP,
  WARM_SELECTOR,
  warmPodManifest,
  warmPoolSecretManifest,
  type PodResources,
  type PodSpecOptions,
} from './pod-spec.js';
import { tenantAgentSecrets } from './tenant-agent-secrets.js';
import type { TenantIdentity } from '../webhook-secret.js';
import { claimBody, postToShim, shimAccepted, stateUrlsBody } from './shim-admin.js';
import { ControlSecretError, controlSecretOf, createPodWithControlSecret } from './pod-secrets.js';
import { podNameOf, type Runtime, type StartResult, type StopOptions, type TenantInstance } from './runtime.js';

export interface KubernetesRuntimeOptions {
  kubeConfig: KubeConfig;
  /** K8S_NAMESPACE. */
  namespace: string;
  /** ZEROCLAW_IMAGE: the image with the shim as entrypoint. */
  image: string;
  /** KATA_RUNTIME_CLASS. */
  runtimeClassName: string;
  /** AGENT_PORT: where the forwarder reaches the agent in the pod. */
  agentPort: number;
  /** The shim's port (probes, claim); default 9000. */
  shimPort?: number;
  /** WARM_POOL_SECRET: the master each pod's own control secret is derived from (pod-secrets.ts); never given to a pod. */
  warmPoolSecret: string;
  /** WEBHOOK_SECRET: pods get only what is derived from it for their tenant (tenant-agent-secrets.ts). */
  webhookSecret?: string | undefined;
  /** AGENT_LLM_API_KEY: kept in `zeroclaw-warm-pool`, reaches pods by Secret reference only. */
  llmApiKey?: string | undefined;
  log: Logger;
  resources?: PodResources;
  /** Tenant pods; default `zeroclaw-tenant`. */
  priorityClassName?: string;
  /** Warm pool members (preempted first); default `zeroclaw-warm`. */
  warmPriorityClassName?: string;
  /** Grace for the shim's final checkpoint; default 60. */
  terminationGracePeriodSeconds?: number;
  /** How long a start may take until the agent is ready (cold pod incl. a new node); default 300. */
  readyTimeoutS?: number;
  /** Default `katacontainers.io/kata-runtime=true` (see pod-spec.ts). */
  nodeSelector?: Record<string, string>;
  /** Default: tolerate `kata-runtime=true:NoSchedule`. */
  tolerations?: V1Toleration[];
  runAsUser?: number;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  serviceAccountName?: string;
  workspaceSizeLimit?: string;
  /** Plain extra variables for every pod's shim (LOG_LEVEL, CHECKPOINT_INTERVAL_S, AGENT_COMMAND...). */
  extraEnv?: Record<string, string>;
  /** How many warm members a start tries (a failed claim deletes the member) before a cold start; default 3. */
  maxClaimAttempts?: number;
  /** Added to a pod's grace period as the bound of waiting for it to disappear; default 30. */
  deleteSlackS?: number;
}

export interface DeleteTenantResult {
  /** A pod of the tenant existed and was stopped. */
  pods: boolean;
  /** The token Secret existed and was deleted. */
  secret: boolean;
  /** PVCs labelled tenant=<id> deleted. */
  pvcs: number;
}

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** Warm members hold no tenant state: a short grace is enough for the shim to exit. */
const WARM_DELETE_GRACE_S = 5;
/** Deletions this runtime made are not crashes; remembered this long per pod uid. */
const OWN_DELETE_TTL_MS = 30 * 60_000;

type ClaimOutcome = { ok: true } | { ok: false; status?: number; reason: string };

function intIn(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ValidationError(`KubernetesRuntime: ${what} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

const nameOf = (pod: V1Pod): string => pod.metadata?.name ?? '?';
const uidOf = (pod: V1Pod): string => pod.metadata?.uid ?? '';

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

export class KubernetesRuntime implements Runtime {
  readonly kind = 'kubernetes' as const;
  readonly namespace: string;
  readonly shimPort: number;
  readonly agentPort: number;
  readonly readyTimeoutS: number;
  private readonly core: CoreV1Api;
  private readonly kubeConfig: KubeConfig;
  private readonly spec: PodSpecOptions;
  private readonly log: Logger;
  private readonly warmPoolSecret: string;
  private readonly webhookSecret: string | undefined;
  private readonly llmApiKey: string | undefined;
  private readonly maxClaimAttempts: number;
  private readonly deleteSlackS: number;
  private readonly exitListeners: Array<(tenantId: string, podName: string) => void> = [];
  private exitWatch: PodWatch | undefined;
  /** Pending waits on a pod, so close() can end them. */
  private readonly waits = new Set<(err: Error) => void>();
  private readonly ownDeletes = new Map<string, number>();
  /** Stops in progress in this process: a start of the same tenant waits for them. */
  private readonly stopping = new Map<string, Promise<boolean>>();
  private warmSecret: Promise<void> | undefined;
  private closed = false;

  constructor(o: KubernetesRuntimeOptions) {
    if (!o || typeof o !== 'object') throw new ValidationError('KubernetesRuntime: options are required');
    const kc = o.kubeConfig as Partial<KubeConfig> | undefined;
    if (!kc || typeof kc.makeApiClient !== 'function' || typeof kc.getCurrentCluster !== 'function') {
      throw new ValidationError('KubernetesRuntime: kubeConfig must be a KubeConfig (e.g. KubeConfig.loadFromDefault())');
    }
    if (!o.kubeConfig.getCurrentCluster()) throw new ValidationError('KubernetesRuntime: kubeConfig has no current cluster');
    if (!o.log || typeof o.log.info !== 'function' || typeof o.log.child !== 'function') throw new ValidationError('KubernetesRuntime: log is required');
    if (typeof o.warmPoolSecret !== 'string' || o.warmPoolSecret.length < 16) {
      throw new ValidationError('KubernetesRuntime: warmPoolSecret must be at least 16 characters');
    }
    this.spec = validatePodSpecOptions({
      namespace: o.namespace,
      image: o.image,
      runtimeClassName: o.runtimeClassName,
      shimPort: o.shimPort ?? 9000,
      agentPort: o.agentPort,
      priorityClassName: o.priorityClassName ?? 'zeroclaw-tenant',
      warmPriorityClassName: o.warmPriorityClassName ?? 'zeroclaw-warm',
      terminationGracePeriodSeconds: o.terminationGracePeriodSeconds ?? 60,
      resources: o.resources ?? {
        requests: { ...DEFAULT_RESOURCES.requests },
        limits: { ...DEFAULT_RESOURCES.limits },
      },
      nodeSelector: o.nodeSelector ?? { ...DEFAULT_KATA_NODE_SELECTOR },
      tolerations: o.tolerations ?? DEFAULT_KATA_TOLERATIONS.map((t) => ({ ...t })),
      runAsUser: o.runAsUser ?? DEFAULT_RUN_AS_USER,
      imagePullPolicy: o.imagePullPolicy,
      serviceAccountName: o.serviceAccountName,
      workspaceSizeLimit: o.workspaceSizeLimit,
      extraEnv: o.extraEnv,
    });
    this.webhookSecret = o.webhookSecret;
    this.llmApiKey = o.llmApiKey;
    this.readyTimeoutS = intIn('readyTimeoutS', o.readyTimeoutS ?? 300, 1, 3600);
    this.maxClaimAttempts = intIn('maxClaimAttempts', o.maxClaimAttempts ?? 3, 1, 20);
    this.deleteSlackS = intIn('deleteSlackS', o.deleteSlackS ?? 30, 1, 3600);
    this.namespace = this.spec.namespace;
    this.shimPort = this.spec.shimPort;
    this.agentPort = this.spec.agentPort;
    this.kubeConfig = o.kubeConfig;
    this.core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.log = o.log;
    this.warmPoolSecret = o.warmPoolSecret;
  }

  // ---------------------------------------------------------------- start

  async start(tenant: Tenant, state: PresignedState): Promise<StartResult> {
    this.assertOpen();
    const id = assertTenantId(tenant?.tenant_id);
    if (typeof tenant.bot_token !== 'string' || tenant.bot_token === '') throw new ValidationError(`tenant ${id} has no bot token`);
    const log = this.log.child({ tenant: id });
    await this.stopping.get(id)?.catch(() => undefined);

    // What is there already: a pod still being deleted (wait: its final checkpoint must land
    // before the new agent restores), a dead one (clear it), a live one (reuse it).
    let coldPending: V1Pod | undefined;
    for (const pod of await this.listPods(tenantSelector(id))) {
      if (podDeleting(pod)) {
        log.info({ pod: nameOf(pod) }, 'waiting for the previous pod to finish stopping');
        await this.waitGone(pod);
      } else if (podTerminated(pod)) {
        log.info({ pod: nameOf(pod), reason: podExitReason(pod) }, 'removing the ended pod before starting again');
        await this.deletePod(pod, 0);
        await this.waitGone(pod);
      } else if (await this.isLive(pod)) {
        return { instance: this.instanceOf(pod, id), path: 'warm' };
      } else if (nameOf(pod) === podNameOf(id)) {
        coldPending = pod; // a cold start already under way (e.g. an earlier wake timed out): wait for it
      } else {
        // A claimed warm pod whose agent is not (or no longer) ready: replace it.
        log.warn({ pod: nameOf(pod) }, 'claimed pod not ready: deleting it before starting again');
        await this.deletePod(pod, this.spec.terminationGracePeriodSeconds);
        await this.waitGone(pod);
      }
    }

    if (!coldPending) {
      const warm = await this.claimWarm(tenant, state, log);
      if (warm) return warm;
      log.info({ pod: podNameOf(id) }, 'warm pool miss: cold start');
    } else {
      log.info({ pod: nameOf(coldPending) }, 'tenant pod already starting: waiting for it');
    }
    const pod = await this.startCold(tenant, state, log);
    return { instance: this.instanceOf(pod, id), path: 'cold' };
  }

  /** Claims a ready warm member for the tenant, or returns undefined (none, or every attempt failed). */
  private async claimWarm(tenant: Tenant, state: PresignedState, log: Logger): Promise<StartResult | undefined> {
    const id = tenant.tenant_id;
    for (let attempt = 0; attempt < this.maxClaimAttempts; attempt++) {
      this.assertOpen();
      const candidates = shuffle((await this.listPods(WARM_SELECTOR)).filter((p) => this.claimable(p)));
      let bound: V1Pod | undefined;
      for (const candidate of candidates) {
        bound = await this.bind(candidate, id, log);
        if (bound) break;
      }
      if (!bound) return undefined;
      const started = Date.now();
      const outcome = await this.postClaim(bound, tenant, state);
      if (outcome.ok) {
        const instance = this.instanceOf(bound, id);
        log.info({ pod: instance.podName, address: instance.address, node: bound.spec?.nodeName, claim_ms: Date.now() - started }, 'warm pool hit: reusing node');
        return { instance, path: 'warm' };
      }
      log.warn({ pod: nameOf(bound), reason: outcome.reason }, 'warm pool claim failed: deleting the member');
      try {
        // Nothing of the tenant's was saved by it yet: no grace needed.
        await this.deletePod(bound, 0);
        await this.waitGone(bound);
      } catch (err) {
        log.warn({ pod: nameOf(bound), err }, 'could not delete the failed warm pool member');
        throw new RuntimeError(`warm pod ${nameOf(bound)} failed its claim (${outcome.reason}) and could not be removed`);
      }
    }
    return undefined;
  }

  private claimable(pod: V1Pod): boolean {
    return pod.metadata?.labels?.[LABEL_APP] === WARM_APP && podLive(pod) && typeof pod.metadata?.resourceVersion === 'string';
  }

  /**
   * Relabels a warm member to the tenant, conditional on its resourceVersion. A 409 means it
   * changed since it was listed: by a status update (re-read, still claimable → try again) or by
   * another waker's claim or a removal (no longer claimable → not ours).
   */
  private async bind(pod: V1Pod, tenantId: string, log: Logger): Promise<V1Pod | undefined> {
    let current = pod;
    const name = nameOf(pod);
    for (let i = 0; i < 4; i++) {
      try {
        const patched = await this.core.patchNamespacedPod(
          { name, namespace: this.namespace, body: claimPatch(tenantId, current.metadata?.resourceVersion ?? '', new Date()) },
          MERGE_PATCH,
        );
        const labels = patched.metadata?.labels ?? {};
        if (labels[LABEL_TENANT] !== tenantId || labels[LABEL_APP] !== TENANT_APP) {
          throw new RuntimeError(`claim of warm pod ${name}: the API server did not apply the labels`);
        }
        return patched;
      } catch (err) {
        if (err instanceof RuntimeError) throw err;
        if (isNotFound(err)) return undefined;
        if (!isConflict(err)) throw this.apiError(`claim of warm pod ${name}`, err);
        log.debug({ pod: name }, 'warm pod changed while claiming it: re-reading');
        const fresh = await this.readPod(name);
        if (!fresh || !this.claimable(fresh)) return undefined;
        current = fresh;
      }
    }
    return undefined;
  }

  /** `POST /claim` to the pod's shim, signed with its own secret: 200 once the agent is ready. The body carries the token and state URLs. */
  private async postClaim(pod: V1Pod, tenant: Tenant, state: PresignedState, timeout = this.readyTimeoutS * 1000): Promise<ClaimOutcome> {
    const ip = pod.status?.podIP;
    if (!ip) return { ok: false, reason: 'pod has no IP' };
    const body = claimBody(tenant, state, this.webhookSecret);
    try {
      const res = await postToShim(`http://${hostOf(ip)}:${this.shimPort}`, '/claim', controlSecretOf(this.warmPoolSecret, pod), body, timeout);
      const text = res.text;
      if (res.status === 200) return { ok: true };
      let detail = '';
      try {
        const parsed = JSON.parse(text) as { error?: unknown };
        if (typeof parsed.error === 'string') detail = `: ${parsed.error.slice(0, 200)}`;
      } catch {
        // not JSON: status only
      }
      return { ok: false, status: res.status, reason: redactSecrets(`HTTP ${res.status}${detail}`) };
    } catch (err) {
      return { ok: false, reason: redactSecrets(`${(err as Error).name}: ${(err as Error).message}`.slice(0, 200)) };
    }
  }

  /** Creates (or adopts) `zeroclaw-<id>`, waits until its shim listens, claims it; resolves once its agent is ready. */
  private async startCold(tenant: Tenant, state: PresignedState, log: Logger): Promise<V1Pod> {
    const id = tenant.tenant_id;
    const name = podNameOf(id);
    const deadline = Date.now() + this.readyTimeoutS * 1000;
    await this.ensureTokenSecret(tenant, tenant.bot_token);
    await this.ensureWarmPoolSecret(); // the model provider's key comes from it
    let pod: V1Pod | undefined;
    for (let attempt = 0; !pod; attempt++) {
      this.assertOpen();
      try {
        pod = await createPodWithControlSecret(this.core, this.namespace, this.warmPoolSecret, (controlId) => coldPodManifest(this.spec, id, controlId));
        log.info({ pod: name }, 'tenant pod created');
      } catch (err) {
        if (err instanceof ControlSecretError) throw this.apiError(`create the control secret of pod ${name}`, err.apiError);
        if (!isConflict(err) || attempt >= 3) throw this.apiError(`create pod ${name}`, err);
        const existing = await this.readPod(name);
        if (!existing) continue; // deleted meanwhile: create again
        if (podDeleting(existing)) {
          await this.waitGone(existing);
        } else if (podTerminated(existing)) {
          await this.deletePod(existing, 0);
          await this.waitGone(existing);
        } else {
          pod = existing; // another start created it: wait for the same pod
        }
      }
    }
    const listening = await this.waitReady(pod, log);
    return this.claimCold(listening, tenant, state, deadline, log);
  }

  /**
   * The cold pod's claim: what a warm member gets, at once. A pod another start already claimed
   * (409) is waited for; a refused claim or one that outlives the start's bound removes the pod,
   * so a failed start leaves nothing behind.
   */
  private async claimCold(pod: V1Pod, tenant: Tenant, state: PresignedState, deadline: number, log: Logger): Promise<V1Pod> {
    const name = nameOf(pod);
    const outcome = await this.postClaim(pod, tenant, state, Math.max(1000, deadline - Date.now()));
    if (outcome.ok || (outcome.status === 409 && (await this.waitAgentReady(pod, deadline)))) {
      log.info({ pod: name }, 'tenant pod claimed: agent ready');
      return pod;
    }
    await this.deletePod(pod, 0).catch((e: unknown) => log.warn({ pod: name, err: e }, 'could not delete the pod whose claim failed'));
    if (Date.now() >= deadline) throw new RuntimeError(`pod ${name} was not ready within ${this.readyTimeoutS}s (claim: ${outcome.reason})`);
    throw new RuntimeError(`pod ${name} refused its claim (${outcome.reason})`);
  }

  /** Asks the shim's /readyz until it answers 200 (true) or the deadline passes (false). */
  private async waitAgentReady(pod: V1Pod, deadline: number): Promise<boolean> {
    while (Date.now() < deadline) {
      this.assertOpen();
      if (await this.isLive(pod)) return true;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return false;
  }

  /** Follows the pod with a watch until it is Ready; fails on Failed/Succeeded, deletion or timeout. */
  private async waitReady(pod: V1Pod, log: Logger): Promise<V1Pod> {
    const name = nameOf(pod);
    const started = Date.now();
    try {
      const ready = await this.observePod(pod, this.readyTimeoutS * 1000, (p) => {
        if (!p) throw new RuntimeError(`pod ${name} was deleted before it was ready`);
        if (podTerminated(p)) throw new RuntimeError(`pod ${name} ended before it was ready: ${podExitReason(p)}`);
        if (podDeleting(p)) throw new RuntimeError(`pod ${name} is being deleted`);
        return podLive(p) ? p : undefined;
      }, (last) => `pod ${name} was not ready within ${this.readyTimeoutS}s (${last ? describePod(last) : 'not found'})`);
      log.info({ pod: name, ip: ready.status?.podIP, ms: Date.now() - started }, 'tenant pod ready');
      return ready;
    } catch (err) {
      if (err instanceof RuntimeError && /was not ready within/.test(err.message)) {
        // Like the local runtime: a start that timed out leaves nothing behind.
        await this.deletePod(pod, 0).catch((e: unknown) => log.warn({ pod: name, err: e }, 'could not delete the pod that was not ready'));
      }
      throw err;
    }
  }

  // ---------------------------------------------------------------- find / list / stop

  async find(tenantId: string): Promise<TenantInstance | undefined> {
    const id = assertTenantId(tenantId);
    const pod = await this.findPod(id);
    return pod && this.instanceOf(pod, id);
  }

  private async findPod(id: string): Promise<V1Pod | undefined> {
    for (const pod of await this.listPods(tenantSelector(id))) {
      if (await this.isLive(pod)) return pod;
    }
    return undefined;
  }

  async list(): Promise<TenantInstance[]> {
    const out: TenantInstance[] = [];
    for (const pod of await this.listPods(TENANT_SELECTOR)) {
      const id = pod.metadata?.labels?.[LABEL_TENANT];
      if (!id || podDeleting(pod)) continue;
      out.push(this.instanceOf(pod, id));
    }
    return out;
  }

  async stop(tenantId: string, options: StopOptions = {}): Promise<boolean> {
    const id = assertTenantId(tenantId);
    const grace = options.graceS === undefined ? this.spec.terminationGracePeriodSeconds : intIn('graceS', options.graceS, 0, 86_400);
    const run = async (): Promise<boolean> => {
      const pods = await this.listPods(tenantSelector(id));
      let existed = false;
      await Promise.all(pods.map(async (pod) => {
        if (!podDeleting(pod)) {
          existed = true;
          await this.deletePod(pod, podTerminated(pod) ? 0 : grace);
        }
        await this.waitGone(pod, grace);
      }));
      if (existed) this.log.info({ tenant: id, pods: pods.map(nameOf), grace_s: grace }, 'tenant pod stopped');
      return existed;
    };
    const previous = this.stopping.get(id);
    const done = (previous ? previous.catch(() => false).then(run) : run()).finally(() => {
      if (this.stopping.get(id) === done) this.stopping.delete(id);
    });
    this.stopping.set(id, done);
    return done;
  }

  onExit(listener: (tenantId: string, podName: string) => void): void {
    if (typeof listener !== 'function') throw new ValidationError('onExit: listener must be a function');
    this.exitListeners.push(listener);
    if (!this.exitWatch && !this.closed) this.startExitWatch();
  }

  /**
   * Every tenant pod, followed by list+watch. A pod that ends (Failed/Succeeded), starts being
   * deleted or disappears, without a deletion of this runtime, is reported once.
   */
  private startExitWatch(): void {
    const known = new Map<string, { tenant: string; name: string; reported: boolean }>();
    let synced = false;
    const report = (uid: string, entry: { tenant: string; name: string; reported: boolean }, why: string): void => {
      if (entry.reported) return;
      entry.reported = true;
      if (this.isOwnDelete(uid)) return;
      this.log.warn({ tenant: entry.tenant, pod: entry.name, why }, 'tenant pod exited');
      for (const l of this.exitListeners) {
        try {
          l(entry.tenant, entry.name);
        } catch (err) {
          this.log.error({ err }, 'onExit listener failed');
        }
      }
    };
    const observe = (pod: V1Pod): void => {
      const uid = uidOf(pod);
      const tenant = pod.metadata?.labels?.[LABEL_TENANT];
      if (!uid || !tenant) return;
      let entry = known.get(uid);
      if (!entry) {
        // Pods already ended when this process first looked are the reconciler's business.
        entry = { tenant, name: nameOf(pod), reported: !synced && (podTerminated(pod) || podDeleting(pod)) };
        known.set(uid, entry);
      }
      if (podTerminated(pod)) report(uid, entry, `phase ${pod.status?.phase}: ${podExitReason(pod)}`);
      else if (podDeleting(pod)) report(uid, entry, 'deleted');
    };
    this.exitWatch = new PodWatch(this.core, this.kubeConfig, { namespace: this.namespace, labelSelector: TENANT_SELECTOR }, {
      onSync: (pods) => {
        const present = new Set<string>();
        for (const pod of pods) {
          present.add(uidOf(pod));
          observe(pod);
        }
        for (const [uid, entry] of known) {
          if (present.has(uid)) continue;
          known.delete(uid);
          report(uid, entry, 'gone');
        }
        synced = true;
      },
      onEvent: (type, pod) => {
        if (type !== 'DELETED') {
          observe(pod);
          return;
        }
        const uid = uidOf(pod);
        const entry = known.get(uid) ?? { tenant: pod.metadata?.labels?.[LABEL_TENANT] ?? '', name: nameOf(pod), reported: false };
        known.delete(uid);
        if (entry.tenant) report(uid, entry, 'deleted');
        this.ownDeletes.delete(uid);
      },
      onError: (err) => this.log.warn({ err: describeKubeError(err) }, 'tenant pod watch failed: retrying'),
    }).start();
  }

  // ---------------------------------------------------------------- warm pool

  async countReadyWarm(): Promise<number> {
    return (await this.listPods(WARM_SELECTOR)).filter((p) => podLive(p)).length;
  }

  async countWarm(): Promise<number> {
    return (await this.listPods(WARM_SELECTOR)).filter((p) => !podDeleting(p) && !podTerminated(p)).length;
  }

  async addWarm(n: number): Promise<void> {
    this.assertOpen();
    intIn('addWarm(n)', n, 0, 1000);
    if (n === 0) return;
    await this.ensureWarmPoolSecret();
    await this.collectEndedWarm();
    const results = await Promise.allSettled(
      Array.from({ length: n }, () => createPodWithControlSecret(this.core, this.namespace, this.warmPoolSecret, (controlId) => warmPodManifest(this.spec, controlId))),
    );
    const created = results.flatMap((r) => (r.status === 'fulfilled' ? [nameOf(r.value)] : []));
    if (created.length > 0) this.log.info({ pods: created, count: created.length }, 'warm pool: members added');
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      const reason: unknown = failed.reason instanceof ControlSecretError ? failed.reason.apiError : failed.reason;
      throw this.apiError(`warm pool: ${n - created.length} of ${n} member(s) not created`, reason);
    }
  }

  async removeWarm(n: number): Promise<void> {
    this.assertOpen();
    intIn('removeWarm(n)', n, 0, 1000);
    if (n === 0) return;
    await this.collectEndedWarm();
    // Not-ready members first (they serve no claim yet), then the newest ready ones.
    const rank = (p: V1Pod): number => (podReady(p) ? 1 : 0);
    const candidates = (await this.listPods(WARM_SELECTOR))
      .filter((p) => !podDeleting(p) && !podTerminated(p))
      .sort((a, b) => rank(a) - rank(b) || createdMs(b) - createdMs(a));
    const removed: string[] = [];
    for (const pod of candidates) {
      if (removed.length >= n) break;
      if (await this.deleteWarmMember(pod)) removed.push(nameOf(pod));
    }
    if (removed.length > 0) this.log.info({ pods: removed, count: removed.length }, 'warm pool: members removed');
  }

  /** Deletes a member only while it is still unclaimed: the delete carries its resourceVersion. */
  private async deleteWarmMember(pod: V1Pod): Promise<boolean> {
    let current: V1Pod | undefined = pod;
    for (let i = 0; i < 3 && current; i++) {
      try {
        this.markOwnDelete(current);
        await this.core.deleteNamespacedPod({
          name: nameOf(current),
          namespace: this.namespace,
          gracePeriodSeconds: WARM_DELETE_GRACE_S,
          body: { preconditions: { uid: uidOf(current), resourceVersion: current.metadata?.resourceVersion } },
        });
        return true;
      } catch (err) {
        if (isNotFound(err)) return false;
        if (!isConflict(err)) throw this.apiError(`delete warm pod ${nameOf(current)}`, err);
        current = await this.readPod(nameOf(current));
        if (!current || current.metadata?.labels?.[LABEL_APP] !== WARM_APP || podDeleting(current)) return false;
      }
    }
    return false;
  }

  /** restartPolicy Never: a member whose shim exited stays Failed until someone deletes it. */
  private async collectEndedWarm(): Promise<void> {
    const ended = (await this.listPods(WARM_SELECTOR)).filter((p) => podTerminated(p) && !podDeleting(p));
    for (const pod of ended) {
      this.log.warn({ pod: nameOf(pod), reason: podExitReason(pod) }, 'warm pool: removing an ended member');
      await this.deletePod(pod, 0).catch((err: unknown) => this.log.warn({ pod: nameOf(pod), err: describeKubeError(err) }, 'warm pool: could not remove an ended member'));
    }
  }

  /**
   * `zeroclaw-warm-pool` with the model provider's key, created if missing, made exactly that if it
   * differs: the master control secret an older version kept there is removed.
   */
  private ensureWarmPoolSecret(): Promise<void> {
    this.warmSecret ??= this.upsertSecret(warmPoolSecretManifest(this.namespace, this.llmApiKey), 'warm pool secret', { exact: true })
      .catch((err: unknown) => {
        this.warmSecret = undefined;
        throw err;
      });
    return this.warmSecret;
  }

  // ---------------------------------------------------------------- secrets and delete path

  /** Creates or rotates `zeroclaw-<id>-token` (data BOT_TOKEN). */
  async ensureTokenSecret(who: TenantIdentity, botToken: string): Promise<void> {
    const id = assertTenantId(who.tenant_id);
    const webhookSecret = this.webhookSecret ? tenantAgentSecrets(this.webhookSecret, who).webhookSecret : undefined;
    await this.upsertSecret(tokenSecretManifest(this.namespace, id, botToken, webhookSecret), `token secret ${tokenSecretName(id)}`);
  }

  /** Deletes `zeroclaw-<id>-token`; false when there was none. */
  async deleteTenantSecret(tenantId: string): Promise<boolean> {
    const name = tokenSecretName(assertTenantId(tenantId));
    try {
      await this.core.deleteNamespacedSecret({ name, namespace: this.namespace });
      this.log.info({ tenant: tenantId, secret: name }, 'tenant token secret deleted');
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw this.apiError(`delete secret ${name}`, err);
    }
  }

  /**
   * Everything of the tenant in the cluster: its pod(s) (gracefully, so the final state is saved;
   * at once with `purge`, whose caller then removes the saved state), its token Secret and the PVCs
   * labelled tenant=<id>. Idempotent: what is already gone is skipped.
   */
  async refreshState(tenantId: string, state: PresignedState): Promise<boolean> {
    const pod = await this.findPod(assertTenantId(tenantId));
    if (!pod) return false;
    return shimAccepted(`http://${hostOf(pod.status?.podIP ?? '')}:${this.shimPort}`, '/state-urls', controlSecretOf(this.warmPoolSecret, pod),
      stateUrlsBody(state), 5000);
  }

  async updateToken(who: TenantIdentity, token: string): Promise<void> {
    await this.ensureTokenSecret(who, token);
  }

  async removeTenant(tenantId: string): Promise<void> {
    await this.deleteTenantResources(tenantId);
  }

  async deleteTenantResources(tenantId: string, options: { purge?: boolean } = {}): Promise<DeleteTenantResult> {
    const id = assertTenantId(tenantId);
    const pods = await this.stop(id, options.purge ? { graceS: 0 } : {});
    const secret = await this.deleteTenantSecret(id);
    let pvcs = 0;
    let claims: string[] = [];
    try {
      const res = await this.core.listNamespacedPersistentVolumeClaim({ namespace: this.namespace, labelSelector: `${LABEL_TENANT}=${id}` });
      claims = res.items.map((c) => c.metadata?.name ?? '').filter((name) => name !== '');
    } catch (err) {
      if (!isNotFound(err)) throw this.apiError(`list PVCs of ${id}`, err);
    }
    for (const name of claims) {
      try {
        await this.core.deleteNamespacedPersistentVolumeClaim({ name, namespace: this.namespace });
        pvcs++;
      } catch (err) {
        if (!isNotFound(err)) throw this.apiError(`delete PVC ${name}`, err);
      }
    }
    this.log.info({ tenant: id, pods, secret, pvcs, purge: options.purge === true }, 'tenant resources deleted');
    return { pods, secret, pvcs };
  }

  /**
   * Creates the Secret, or brings every key of `manifest.data` up to date in the existing one;
   * `exact`: also removes the keys the manifest does not have.
   */
  private async upsertSecret(manifest: V1Secret, what: string, options: { exact?: boolean } = {}): Promise<void> {
    const name = manifest.metadata?.name ?? '';
    const data = manifest.data ?? {};
    try {
      await this.core.createNamespacedSecret({ namespace: this.namespace, body: manifest });
      return;
    } catch (err) {
      if (!isConflict(err)) throw this.apiError(`create ${what}`, err);
    }
    let existing: V1Secret;
    try {
      existing = await this.core.readNamespacedSecret({ name, namespace: this.namespace });
    } catch (err) {
      if (isNotFound(err)) return this.upsertSecret(manifest, what, options); // deleted meanwhile
      throw this.apiError(`read ${what}`, err);
    }
    // A merge patch: null removes a key.
    const extra = options.exact ? Object.keys(existing.data ?? {}).filter((k) => !(k in data)) : [];
    if (extra.length === 0 && Object.entries(data).every(([k, v]) => existing.data?.[k] === v)) return;
    try {
      await this.core.patchNamespacedSecret({
        name,
        namespace: this.namespace,
        body: { metadata: { labels: { ...manifest.metadata?.labels, [LABEL_MANAGED_BY]: MANAGED_BY } }, data: { ...data, ...Object.fromEntries(extra.map((k) => [k, null])) } },
      }, MERGE_PATCH);
      this.log.info({ secret: name }, `${what} updated`);
    } catch (err) {
      throw this.apiError(`update ${what}`, err);
    }
  }

  // ---------------------------------------------------------------- helpers

  private instanceOf(pod: V1Pod, tenantId: string): TenantInstance {
    const ip = pod.status?.podIP ?? '';
    return { tenantId, podName: nameOf(pod), ip, address: ip ? `${hostOf(ip)}:${this.agentPort}` : '' };
  }

  /**
   * Live: Running, Ready, not deleting, and its agent ready. A pod's Ready condition is the shim's
   * /healthz (pod-spec.ts unboundPod), so its agent's readiness is asked from the shim directly.
   */
  private async isLive(pod: V1Pod): Promise<boolean> {
    if (!podLive(pod)) return false;
    try {
      const res = await request(`http://${hostOf(pod.status?.podIP ?? '')}:${this.shimPort}/readyz`, { headersTimeout: 2000, bodyTimeout: 2000 });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  private async listPods(labelSelector: string): Promise<V1Pod[]> {
    try {
      return (await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector })).items;
    } catch (err) {
      throw this.apiError(`list pods ${labelSelector}`, err);
    }
  }

  private async readPod(name: string): Promise<V1Pod | undefined> {
    try {
      return await this.core.readNamespacedPod({ name, namespace: this.namespace });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.apiError(`read pod ${name}`, err);
    }
  }

  /** Deletes exactly this pod (uid precondition: never a newer pod of the same name). */
  private async deletePod(pod: V1Pod, graceS: number): Promise<void> {
    this.markOwnDelete(pod);
    try {
      await this.core.deleteNamespacedPod({
        name: nameOf(pod),
        namespace: this.namespace,
        gracePeriodSeconds: graceS,
        body: { gracePeriodSeconds: graceS, preconditions: { uid: uidOf(pod) } },
      });
    } catch (err) {
      if (isNotFound(err) || isConflict(err)) return; // gone, or already replaced by another pod
      throw this.apiError(`delete pod ${nameOf(pod)}`, err);
    }
  }

  private markOwnDelete(pod: V1Pod): void {
    const now = Date.now();
    for (const [uid, at] of this.ownDeletes) if (now - at > OWN_DELETE_TTL_MS) this.ownDeletes.delete(uid);
    const uid = uidOf(pod);
    if (uid) this.ownDeletes.set(uid, now);
  }

  private isOwnDelete(uid: string): boolean {
    return this.ownDeletes.has(uid);
  }

  /**
   * Resolves once this pod (by uid) no longer exists; bounded by the longest grace period that can
   * apply (the one just asked for, the one of a deletion already under way, the pod's own) plus slack.
   */
  private async waitGone(pod: V1Pod, graceS?: number): Promise<void> {
    const grace = Math.max(
      graceS ?? pod.spec?.terminationGracePeriodSeconds ?? this.spec.terminationGracePeriodSeconds,
      pod.metadata?.deletionGracePeriodSeconds ?? 0,
    );
    const boundS = grace + this.deleteSlackS;
    await this.observePod(pod, boundS * 1000, (p) => (p ? undefined : true),
      (last) => `pod ${nameOf(pod)} still exists ${boundS}s after its deletion (${last ? describePod(last) : 'unknown'})`);
  }

  /**
   * Follows one pod (by name and uid) with list+watch on `metadata.name` until `decide` returns a
   * value (or throws). `decide(undefined)` means the pod is gone (or replaced by a newer one).
   */
  private observePod<T>(pod: V1Pod, timeoutMs: number, decide: (p: V1Pod | undefined) => T | undefined, timeoutMessage: (last: V1Pod | undefined) => string): Promise<T> {
    const name = nameOf(pod);
    const uid = uidOf(pod);
    return new Promise<T>((resolve, reject) => {
      let finished = false;
      let last: V1Pod | undefined = pod;
      let lastError: unknown;
      const finish = (settle: () => void): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        watch.stop();
        this.waits.delete(abort);
        settle();
      };
      const abort = (err: Error): void => finish(() => reject(err));
      const evaluate = (p: V1Pod | undefined): void => {
        if (finished) return;
        last = p;
        try {
          const v = decide(p);
          if (v !== undefined) finish(() => resolve(v));
        } catch (err) {
          finish(() => reject(err));
        }
      };
      const sameUid = (p: V1Pod): boolean => !uid || uidOf(p) === uid;
      const watch = new PodWatch(this.core, this.kubeConfig, { namespace: this.namespace, fieldSelector: `metadata.name=${name}` }, {
        onSync: (pods) => {
          const current = pods.find((p) => nameOf(p) === name);
          evaluate(current && sameUid(current) ? current : undefined);
        },
        onEvent: (type, p) => {
          if (nameOf(p) !== name) return;
          if (sameUid(p)) evaluate(type === 'DELETED' ? undefined : p);
          else if (type !== 'DELETED') evaluate(undefined); // a newer pod of that name: ours is gone
        },
        onError: (err) => {
          lastError = err;
        },
      });
      const timer = setTimeout(() => {
        const why = lastError !== undefined ? `; last API error: ${describeKubeError(lastError)}` : '';
        abort(new RuntimeError(`${timeoutMessage(last)}${why}`));
      }, timeoutMs);
      this.waits.add(abort);
      watch.start();
    });
  }

  private apiError(what: string, err: unknown): RuntimeError {
    if (err instanceof RuntimeError) return err;
    const status = apiStatus(err);
    const hint = status === 403 ? ' (check the RBAC of the service account)' : '';
    return new RuntimeError(`${what} failed: ${describeKubeError(err)}${hint}`);
  }

  private assertOpen(): void {
    if (this.closed) throw new RuntimeError('kubernetes runtime is closed');
  }

  /** Stops the watches; pending waits end with an error. Pods are left running (they outlive us). */
  async close(): Promise<void> {
    this.closed = true;
    this.exitWatch?.stop();
    this.exitWatch = undefined;
    for (const abort of [...this.waits]) abort(new RuntimeError('kubernetes runtime closed'));
  }
}

/** IPv6 pod IPs need brackets in a URL and in `ip:port`. */
function hostOf(ip: string): string {
  return ip.includes(':') ? `[${ip}]` : ip;
}

function describePod(p: V1Pod): string {
  const ready = podReady(p) ? 'Ready' : 'not Ready';
  const parts = [`phase ${p.status?.phase ?? 'unknown'}`, ready];
  const waiting = p.status?.containerStatuses?.map((c) => c.state?.waiting?.reason).filter((r): r is string => !!r);
  if (waiting && waiting.length > 0) parts.push(waiting.join(','));
  const scheduled = p.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason) parts.push(`${scheduled.reason}${scheduled.message ? `: ${scheduled.message.slice(0, 120)}` : ''}`);
  return redactSecrets(parts.join(', '));
}
