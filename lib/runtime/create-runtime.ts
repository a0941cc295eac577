/** Picks the runtime named by RUNTIME. */
import { KubeConfig } from '@kubernetes/client-node';
import { usesTelegramSandbox, type Config } from '../config.js';
import { agentSettingsEnv } from '../agent-profiles.js';
import type { Logger } from '../logger.js';
import { ConfigError } from '../errors.js';
import { KubernetesRuntime } from './kubernetes-runtime.js';
import { LocalRuntime } from './local-runtime.js';
import type { Runtime } from './runtime.js';

/** The platform secrets a runtime hands on, derived per tenant (lib/runtime/tenant-agent-secrets.ts). */
export interface RuntimeSecrets {
  warmPoolSecret: string;
  /** The webhook master secret (WEBHOOK_SECRET); without it agents get no per-tenant secrets. */
  webhookSecret: string | undefined;
}

export function createRuntime(config: Config, log: Logger, secrets: RuntimeSecrets): Runtime {
  if (config.runtime === 'local') return createLocalRuntime(config, log, secrets);
  return createKubernetesRuntime(config, log, secrets, loadKubeConfig());
}

export function createLocalRuntime(config: Config, log: Logger, secrets: RuntimeSecrets): LocalRuntime {
  return new LocalRuntime({
    dataDir: config.dataDir, log: log.child({ component: 'runtime' }), warmPoolSecret: secrets.warmPoolSecret,
    webhookSecret: secrets.webhookSecret, agent: config.agent, botApiBase: config.telegramApiBase,
    routerPublicUrl: config.routerPublicUrl, stateMaxBytes: config.stateMaxBytes,
    logLevel: config.logLevel, readyTimeoutS: config.agentReadyTimeoutS, agentSandbox: config.agentSandbox,
  });
}

function loadKubeConfig(): KubeConfig {
  // KUBECONFIG or ~/.kube/config when present, else the pod's service account (in-cluster).
  const kubeConfig = new KubeConfig();
  try {
    kubeConfig.loadFromDefault();
  } catch (err) {
    throw new ConfigError('RUNTIME', `kubernetes: cannot load a kubeconfig or the in-cluster service account (${(err as Error).message.split('\n', 1)[0]})`);
  }
  const cluster = kubeConfig.getCurrentCluster();
  // With nothing to load, the client falls back to an unauthenticated http://localhost:8080.
  const fallback = cluster?.name === 'cluster' && cluster.server === 'http://localhost:8080' && kubeConfig.getCurrentUser()?.name === 'user';
  if (!cluster || fallback) {
    throw new ConfigError('RUNTIME', 'kubernetes: no cluster found (set KUBECONFIG, or run in a pod with a service account)');
  }
  return kubeConfig;
}

/** The Kubernetes runtime from config, against a given cluster (tests pass their API server's). */
export function createKubernetesRuntime(config: Config, log: Logger, secrets: RuntimeSecrets, kubeConfig: KubeConfig): KubernetesRuntime {
  const { warmPoolSecret, webhookSecret } = secrets;
  const extraEnv: Record<string, string> = { LOG_LEVEL: config.logLevel, ...agentSettingsEnv(config.agent).plain, STATE_MAX_BYTES: String(config.stateMaxBytes) };
  if (!usesTelegramSandbox(config)) extraEnv.TELEGRAM_API_BASE = config.telegramApiBase;
  if (config.routerPublicUrl) extraEnv.ROUTER_PUBLIC_URL = config.routerPublicUrl;
  return new KubernetesRuntime({
    kubeConfig,
    namespace: config.k8sNamespace,
    image: config.zeroclawImage,
    runtimeClassName: config.kataRuntimeClass,
    agentPort: config.agentPort,
    warmPoolSecret,
    webhookSecret,
    llmApiKey: config.agent.llm?.apiKey,
    resources: config.agentPodResources,
    // Once on a node, a pod has the lock's TTL to be ready; a wait for a node being provisioned is
    // bounded by COLD_START_TIMEOUT_S (the waker renews its lock while the start makes progress).
    readyTimeoutS: config.wakeLockTtlS,
    coldStartTimeoutS: config.coldStartTimeoutS,
    apiTimeoutS: config.k8sApiTimeoutS,
    terminationGracePeriodSeconds: config.podTerminationGraceS,
    podOwner: config.k8sPodOwner,
    extraEnv,
    log: log.child({ component: 'runtime' }),
  });
}
