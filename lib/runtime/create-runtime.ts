/** Picks the runtime named by RUNTIME. */
import { KubeConfig } from '@kubernetes/client-node';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { ConfigError } from '../errors.js';
import { KubernetesRuntime } from './kubernetes-runtime.js';
import { LocalRuntime } from './local-runtime.js';
import type { Runtime } from './runtime.js';

export function createRuntime(config: Config, log: Logger, warmPoolSecret: string): Runtime {
  if (config.runtime === 'local') return createLocalRuntime(config, log, warmPoolSecret);
  return createKubernetesRuntime(config, log, warmPoolSecret, loadKubeConfig());
}

export function createLocalRuntime(config: Config, log: Logger, warmPoolSecret: string): LocalRuntime {
  return new LocalRuntime({
    dataDir: config.dataDir, log: log.child({ component: 'runtime' }), warmPoolSecret,
    agentCommand: config.agentCommand, logLevel: config.logLevel, readyTimeoutS: config.agentReadyTimeoutS,
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
export function createKubernetesRuntime(config: Config, log: Logger, warmPoolSecret: string, kubeConfig: KubeConfig): KubernetesRuntime {
  return new KubernetesRuntime({
    kubeConfig,
    namespace: config.k8sNamespace,
    image: config.zeroclawImage,
    runtimeClassName: config.kataRuntimeClass,
    agentPort: config.agentPort,
    warmPoolSecret,
    // A wake never outlives its lock (WAKE_LOCK_TTL_S, 240 s): a second waker could start a second pod.
    readyTimeoutS: config.wakeLockTtlS,
    extraEnv: { LOG_LEVEL: config.logLevel },
    log: log.child({ component: 'runtime' }),
  });
}
