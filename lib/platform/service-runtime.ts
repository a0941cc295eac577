/**
 * The runtime of a service that starts agents (waker, janitor, pool-keeper): shared when the
 * one-process platform passes one, else built from RUNTIME and closed with the service. Its own file:
 * building a runtime loads the Kubernetes client, which the ingress and the forwarder never need
 * (the ingress runs with a capped heap).
 */
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { createRuntime, type RuntimeSecrets } from '../runtime/create-runtime.js';
import type { Runtime } from '../runtime/runtime.js';
import type { CloseChain } from './service-parts.js';

export interface RuntimeChoice {
  /** A runtime shared with other services in this process: used, never closed here. */
  runtime?: Runtime;
  /** Without `runtime`: build one from RUNTIME with these secrets, closed with the service. */
  runtimeSecrets?: RuntimeSecrets;
}

export function serviceRuntime(config: Config, log: Logger, choice: RuntimeChoice, chain: CloseChain): Runtime | undefined {
  if (choice.runtime) return choice.runtime;
  if (!choice.runtimeSecrets) return undefined;
  const runtime = createRuntime(config, log, choice.runtimeSecrets);
  chain.add('runtime', () => runtime.close());
  return runtime;
}
