/**
 * The production runtime (RUNTIME=kubernetes): each tenant's agent is a Kata pod in K8S_NAMESPACE
 * running the shim (agent/shim.ts) as its entrypoint. This class is the facade; each concern is a
 * component of its own under lib/runtime/kubernetes/:
 *
 * - kube-api.ts: the call policy of every API request (timeout, retries with backoff, 429's
 *   Retry-After, refusals named with the API's own message);
 * - pod-informer.ts: the one list+watch of the runtime's pods that every wait and the exit
 *   handling read (one watch however many wakes are in flight);
 * - pod-starter.ts: `start` (reuse, warm claim, patient cold start, phases, failure reasons);
 * - warm-pool.ts: the pool's members and their claim;
 * - pod-deletion.ts: deletes, waits for pods to go, force-deletes pods stuck on lost nodes;
 * - pod-exits.ts: `onExit`;
 * - tenant-secrets.ts: token and warm pool Secrets, PVCs;
 * - pod-status.ts: what a pod's status says (phase, can it still start);
 * - shim-client.ts: `/readyz` and the signed claim on the pod IP.
 *
 * Secrets: the bot token and the presigned state URLs reach a pod only in the body of its signed
 * claim (never in its spec); they are never logged nor put in an error. Each pod's control calls
 * are signed with that pod's own secret (pod-secrets.ts); the master stays with the platform.
 */
import type { KubeConfig, V1Pod, V1Toleration } from '@kubernetes/client-node';
import type { Logger } from '../logger.js';
import { RuntimeError, ValidationError } from '../errors.js';
import type { Tenant } from '../registry/tenant.js';
import type { PresignedState } from '../state/state-store.js';
import { assertTenantId } from '../validate.js';
import type { TenantIdentity } from '../webhook-secret.js';
import { podDeleting, podTerminated } from './kube-client.js';
import {
  DEFAULT_KATA_NODE_SELECTOR,
  DEFAULT_KATA_TOLERATIONS,
  DEFAULT_RESOURCES,
  DEFAULT_RUN_AS_USER,
  LABEL_TENANT,
  TENANT_APP,
  TENANT_SELECTOR,
  tenantSelector,
  validatePodSpecOptions,
  WARM_APP,
  type PodResources,
  type PodSpecOptions,
} from './pod-spec.js';
import type { Runtime, StartOptions, StartResult, StopOptions, TenantInstance } from './runtime.js';
import { podOwnership } from './pod-owner.js';
import { KubeApi } from './kubernetes/kube-api.js';
import { PodDeletion } from './kubernetes/pod-deletion.js';
import { PodExits } from './kubernetes/pod-exits.js';
import { PodInformer } from './kubernetes/pod-informer.js';
import { PodStarter } from './kubernetes/pod-starter.js';
import { ShimClient } from './kubernetes/shim-client.js';
import { TenantSecrets } from './kubernetes/tenant-secrets.js';
import { KubernetesWarmPool } from './kubernetes/warm-pool.js';

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
  /** From a pod being on a node (or a warm claim) to its agent ready: pull, start, restore; default 300. */
  readyTimeoutS?: number;
  /** COLD_START_TIMEOUT_S: the bound of a whole start, a wait for a node being provisioned included; default 600. */
  coldStartTimeoutS?: number;
  /** K8S_API_TIMEOUT_S: the bound of one API request; default 15. */
  apiTimeoutS?: number;
  /** Attempts per API call (429/5xx/connection errors retried with backoff); default 6. */
  apiMaxAttempts?: number;
  /** First retry backoff of an API call (ms), doubling up to 5 s; default 200. */
  apiMinBackoffMs?: number;
  /** Failed image pulls a start tolerates (the kubelet retries) before it fails with image_pull_failed; default 3. */
  maxPullFailures?: number;
  /** Seconds past its deletion deadline before a Terminating pod's node is checked and, if lost, the pod force-deleted; default 15. */
  lostNodeAfterS?: number;
  /** Server-side timeout of each watch request of the pod informer; default 240. */
  watchTimeoutS?: number;
  /** K8S_POD_OWNER: the release's anchor Secret every pod and tenant Secret is owned by (pod-owner.ts); unset: none. */
  podOwner?: string | undefined;
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

function intIn(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ValidationError(`KubernetesRuntime: ${what} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

const nameOf = (pod: V1Pod): string => pod.metadata?.name ?? '?';

export class KubernetesRuntime implements Runtime {
  readonly kind = 'kubernetes' as const;
  readonly namespace: string;
  readonly shimPort: number;
  readonly agentPort: number;
  readonly readyTimeoutS: number;
  readonly coldStartTimeoutS: number;
  /** The one watch of the runtime's pods (exposed for tests and metrics: `informer.stats`). */
  readonly informer: PodInformer;
  /** The API call policy (`api.stats`). */
  readonly api: KubeApi;
  readonly deletion: PodDeletion;
  private readonly spec: PodSpecOptions;
  private readonly log: Logger;
  private readonly secrets: TenantSecrets;
  private readonly warm: KubernetesWarmPool;
  private readonly starter: PodStarter;
  private readonly exits: PodExits;
  private readonly shim: ShimClient;
  /** Stops in progress in this process: a start of the same tenant waits for them. */
  private readonly stopping = new Map<string, Promise<boolean>>();
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
    this.readyTimeoutS = intIn('readyTimeoutS', o.readyTimeoutS ?? 300, 1, 3600);
    this.coldStartTimeoutS = intIn('coldStartTimeoutS', o.coldStartTimeoutS ?? 600, 1, 7200);
    const apiTimeoutS = intIn('apiTimeoutS', o.apiTimeoutS ?? 15, 1, 600);
    const maxClaimAttempts = intIn('maxClaimAttempts', o.maxClaimAttempts ?? 3, 1, 20);
    const deleteSlackS = intIn('deleteSlackS', o.deleteSlackS ?? 30, 1, 3600);
    this.namespace = this.spec.namespace;
    this.shimPort = this.spec.shimPort;
    this.agentPort = this.spec.agentPort;
    this.log = o.log;
    this.api = new KubeApi({
      kubeConfig: o.kubeConfig, namespace: this.namespace, log: o.log, timeoutMs: apiTimeoutS * 1000,
      maxAttempts: intIn('apiMaxAttempts', o.apiMaxAttempts ?? 6, 1, 50), minBackoffMs: intIn('apiMinBackoffMs', o.apiMinBackoffMs ?? 200, 1, 60_000),
    });
    this.informer = new PodInformer({
      api: this.api, kubeConfig: o.kubeConfig, namespace: this.namespace, log: o.log,
      labelSelector: `app in (${TENANT_APP},${WARM_APP})`, watchTimeoutS: intIn('watchTimeoutS', o.watchTimeoutS ?? 240, 1, 3600),
    });
    this.deletion = new PodDeletion({
      api: this.api, informer: this.informer, namespace: this.namespace, log: o.log, defaultGraceS: this.spec.terminationGracePeriodSeconds,
      deleteSlackS, lostNodeAfterS: intIn('lostNodeAfterS', o.lostNodeAfterS ?? 15, 0, 3600),
    });
    const ownership = podOwnership(this.api, this.namespace, o.podOwner);
    this.shim = new ShimClient({ shimPort: this.shimPort, agentPort: this.agentPort, warmPoolSecret: o.warmPoolSecret, webhookSecret: o.webhookSecret });
    this.secrets = new TenantSecrets({ api: this.api, namespace: this.namespace, log: o.log, webhookSecret: o.webhookSecret, llmApiKey: o.llmApiKey, ownership });
    this.warm = new KubernetesWarmPool({
      api: this.api, spec: this.spec, warmPoolSecret: o.warmPoolSecret, secrets: this.secrets, deletion: this.deletion, shim: this.shim, log: o.log, maxClaimAttempts, ownership,
    });
    this.starter = new PodStarter({
      api: this.api, informer: this.informer, deletion: this.deletion, secrets: this.secrets, warm: this.warm, shim: this.shim, spec: this.spec, ownership,
      warmPoolSecret: o.warmPoolSecret, readyTimeoutS: this.readyTimeoutS, coldStartTimeoutS: this.coldStartTimeoutS,
      maxPullFailures: intIn('maxPullFailures', o.maxPullFailures ?? 3, 1, 100),
    });
    this.exits = new PodExits(this.informer, this.deletion, o.log);
  }

  // ---------------------------------------------------------------- start / find / list / stop

  async start(tenant: Tenant, state: PresignedState, options: StartOptions = {}): Promise<StartResult> {
    this.assertOpen();
    const id = assertTenantId(tenant?.tenant_id);
    if (typeof tenant.bot_token !== 'string' || tenant.bot_token === '') throw new ValidationError(`tenant ${id} has no bot token`);
    await this.stopping.get(id)?.catch(() => undefined);
    return this.starter.start(tenant, state, options, this.log.child({ tenant: id }));
  }

  async find(tenantId: string): Promise<TenantInstance | undefined> {
    const id = assertTenantId(tenantId);
    const pod = await this.findPod(id);
    return pod && this.shim.instanceOf(pod, id);
  }

  private async findPod(id: string): Promise<V1Pod | undefined> {
    for (const pod of await this.api.listPods(tenantSelector(id))) {
      if (await this.shim.isLive(pod)) return pod;
    }
    return undefined;
  }

  async list(): Promise<TenantInstance[]> {
    const out: TenantInstance[] = [];
    for (const pod of await this.api.listPods(TENANT_SELECTOR)) {
      const id = pod.metadata?.labels?.[LABEL_TENANT];
      if (!id || podDeleting(pod)) continue;
      out.push(this.shim.instanceOf(pod, id));
    }
    return out;
  }

  async stop(tenantId: string, options: StopOptions = {}): Promise<boolean> {
    const id = assertTenantId(tenantId);
    const grace = options.graceS === undefined ? this.spec.terminationGracePeriodSeconds : intIn('graceS', options.graceS, 0, 86_400);
    const run = async (): Promise<boolean> => {
      const pods = await this.api.listPods(tenantSelector(id));
      let existed = false;
      await Promise.all(pods.map(async (pod) => {
        if (!podDeleting(pod)) {
          existed = true;
          await this.deletion.delete(pod, podTerminated(pod) ? 0 : grace);
        }
        await this.deletion.waitGone(pod, grace);
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
    if (this.closed) return;
    this.exits.onExit(listener);
  }

  // ---------------------------------------------------------------- warm pool

  countReadyWarm(): Promise<number> {
    return this.warm.countReady();
  }

  countWarm(): Promise<number> {
    return this.warm.count();
  }

  async addWarm(n: number): Promise<void> {
    this.assertOpen();
    await this.warm.add(intIn('addWarm(n)', n, 0, 1000));
  }

  async removeWarm(n: number): Promise<void> {
    this.assertOpen();
    await this.warm.remove(intIn('removeWarm(n)', n, 0, 1000));
  }

  // ---------------------------------------------------------------- secrets and delete path

  /** Creates or rotates `zeroclaw-<id>-token` (data BOT_TOKEN). */
  ensureTokenSecret(who: TenantIdentity, botToken: string): Promise<void> {
    return this.secrets.ensureToken(who, botToken);
  }

  /** Deletes `zeroclaw-<id>-token`; false when there was none. */
  deleteTenantSecret(tenantId: string): Promise<boolean> {
    return this.secrets.deleteToken(tenantId);
  }

  async refreshState(tenantId: string, state: PresignedState): Promise<boolean> {
    const pod = await this.findPod(assertTenantId(tenantId));
    if (!pod) return false;
    return this.shim.refreshState(pod, state);
  }

  async updateToken(who: TenantIdentity, token: string): Promise<void> {
    await this.secrets.ensureToken(who, token);
  }

  async removeTenant(tenantId: string): Promise<void> {
    await this.deleteTenantResources(tenantId);
  }

  /**
   * Everything of the tenant in the cluster: its pod(s) (gracefully, so the final state is saved;
   * at once with `purge`, whose caller then removes the saved state), its token Secret and the PVCs
   * labelled tenant=<id>. Idempotent: what is already gone is skipped.
   */
  async deleteTenantResources(tenantId: string, options: { purge?: boolean } = {}): Promise<DeleteTenantResult> {
    const id = assertTenantId(tenantId);
    const pods = await this.stop(id, options.purge ? { graceS: 0 } : {});
    const secret = await this.secrets.deleteToken(id);
    const pvcs = await this.secrets.deleteVolumes(id);
    this.log.info({ tenant: id, pods, secret, pvcs, purge: options.purge === true }, 'tenant resources deleted');
    return { pods, secret, pvcs };
  }

  private assertOpen(): void {
    if (this.closed) throw new RuntimeError('kubernetes runtime is closed');
  }

  /** Stops the watch; pending waits and API calls end with an error. Pods are left running (they outlive us). */
  async close(): Promise<void> {
    this.closed = true;
    this.exits.close();
    this.informer.close();
    this.api.close();
  }
}
