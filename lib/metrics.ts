/**
 * Prometheus metrics, one registry per service process. Names are stable: dashboards and alerts
 * depend on them (docs/operations.md lists them). Never label by anything secret.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  ingressRequests: Counter<'status'>;
  ingressAccepted: Counter<'duplicate'>;
  forwarded: Counter<'outcome'>;
  forwardLatency: Histogram<'protocol'>;
  pipelineLatency: Histogram;
  wakeLatency: Histogram<'path'>;
  wakes: Counter<'outcome'>;
  deadLetters: Gauge;
  queueDepth: Gauge<'queue' | 'state'>;
  warmPoolSize: Gauge;
  telegramCalls: Counter<'method' | 'outcome'>;
}

export function createMetrics(options: { service: string; defaultMetrics?: boolean }): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service: options.service });
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const r = [registry];
  return {
    registry,
    ingressRequests: new Counter({ name: 'ztm_ingress_requests_total', help: 'Webhook requests by HTTP status', labelNames: ['status'], registers: r }),
    ingressAccepted: new Counter({ name: 'ztm_ingress_updates_total', help: 'Updates accepted durably (duplicate=true: a Telegram retry)', labelNames: ['duplicate'], registers: r }),
    forwarded: new Counter({ name: 'ztm_forward_total', help: 'Delivery attempts by outcome', labelNames: ['outcome'], registers: r }),
    forwardLatency: new Histogram({
      name: 'ztm_forward_seconds', help: 'Time of one delivery to the agent (agent work included)', labelNames: ['protocol'], registers: r,
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 120],
    }),
    pipelineLatency: new Histogram({
      name: 'ztm_pipeline_seconds', help: 'From acceptance at the ingress to the start of delivery to the agent', registers: r,
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5, 30, 300],
    }),
    wakeLatency: new Histogram({
      name: 'ztm_wake_seconds', help: 'Wake duration until the agent is ready', labelNames: ['path'], registers: r,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
    }),
    wakes: new Counter({ name: 'ztm_wakes_total', help: 'Wakes by outcome', labelNames: ['outcome'], registers: r }),
    deadLetters: new Gauge({ name: 'ztm_dead_letters', help: 'Updates in the dead-letter store', registers: r }),
    queueDepth: new Gauge({ name: 'ztm_queue_jobs', help: 'Jobs per queue and state (waiting includes prioritized)', labelNames: ['queue', 'state'], registers: r }),
    warmPoolSize: new Gauge({ name: 'ztm_warm_pool_size', help: 'Warm pods ready to be claimed', registers: r }),
    telegramCalls: new Counter({ name: 'ztm_telegram_calls_total', help: 'Telegram Bot API calls by method and outcome', labelNames: ['method', 'outcome'], registers: r }),
  };
}
