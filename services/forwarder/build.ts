/** The forwarder, built once for its own Deployment (main.ts) and the one-process platform. */
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { PlatformClients } from '../../lib/platform/clients.js';
import { CloseChain, serviceMetrics, startedPart, type BuiltService } from '../../lib/platform/service-parts.js';
import { createForwarder, type Forwarder } from './forwarder.js';

export interface ForwarderDeps {
  config: Config;
  log: Logger;
  clients: Pick<PlatformClients, 'redis' | 'bull' | 'registry' | 'telegram'>;
  webhookSecret: string;
  metrics?: Metrics;
  stepTimeoutMs?: number;
}

export interface BuiltForwarder extends BuiltService {
  readonly metrics: Metrics;
  /** The drain worker with its mailbox and dead letters; after start(). */
  readonly forwarder: Forwarder;
}

export function buildForwarder(d: ForwarderDeps): Promise<BuiltForwarder> {
  const chain = new CloseChain(d.log, d.stepTimeoutMs);
  const metrics = serviceMetrics('forwarder', d.metrics, d.clients.redis, chain);
  let forwarder: Forwarder | undefined;
  return Promise.resolve({
    metrics,
    get forwarder() {
      return startedPart('forwarder', 'the drain worker', forwarder);
    },
    async start() {
      const { config, log, clients } = d;
      forwarder = createForwarder({
        config, log, redis: clients.redis, bull: clients.bull, registry: clients.registry, telegram: clients.telegram, webhookSecret: d.webhookSecret, metrics,
      });
      chain.add('drain worker', () => forwarder?.close());
    },
    close: () => chain.close(),
  });
}
