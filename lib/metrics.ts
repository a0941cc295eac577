/**
 * Prometheus metrics, one registry per service process. Names are stable: dashboards and alerts
 * depend on them (docs/operations.md lists them). Never label by anything secret.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { AGENT_ERROR_CODES } from './delivery/outcomes.js';

export interface Metrics {
  registry: Registry;
  ingressRequests: Counter<'status'>;
  ingressAccepted: Counter<'duplicate'>;
  /** Label values: FORWARD_OUTCOMES (lib/delivery/outcomes.ts). */
  forwarded: Counter<'outcome'>;
  /** Agents' error answers; label values: AGENT_ERROR_CODES (lib/delivery/outcomes.ts). */
  agentErrors: Counter<'reason'>;
  forwardLatency: Histogram<'protocol'>;
  pipelineLatency: Histogram;
  wakeLatency: Histogram<'path'>;
  wakes: Counter<'outcome'>;
  /** Deliveries refused by the agent at the endpoint as not this tenant's; outcome: rewake | dead-letter. */
  staleEndpoints: Counter<'outcome'>;
  deadLetters: Gauge;
  queueDepth: Gauge<'queue' | 'state'>;
  warmPoolSize: Gauge;
  /** The pool-keeper's own view (exported by the pool-keeper): the size it keeps and why (lib/warm-pool/demand-model.ts). */
  warmPoolTarget: Gauge;
  warmPoolWakeRate: Gauge;
  warmPoolStartSeconds: Gauge;
  warmPoolHitProbability: Gauge;
  /** Changes of the pool's size by the pool-keeper; direction: grow | shrink. */
  warmPoolResizes: Counter<'direction'>;
  telegramCalls: Counter<'method' | 'outcome'>;
  /** Admin API requests; operation: an OpenAPI operationId, `plain` (healthz, readyz, openapi.json) or `none` (no route). */
  adminApiRequests: Counter<'operation' | 'status'>;
  tenantsAwake: Gauge;
  /**
   * Sets the function that refreshes the cluster-wide gauges (queue jobs, dead letters, warm pool,
   * tenants awake) from Redis. It runs on each scrape, once for all of them
   * (lib/ops/queue-metrics.ts).
   */
  setCollector(collect: (() => Promise<void>) | undefined): void;
}

export function createMetrics(options: { service: string; defaultMetrics?: boolean }): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service: options.service });
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const r = [registry];
  // One refresh per scrape shared by the gauges that read Redis (prom-client collects them in parallel).
  let collector: (() => Promise<void>) | undefined;
  let inflight: Promise<void> | undefined;
  const collect = (): Promise<void> | undefined => {
    if (!collector) return undefined;
    inflight ??= collector().catch(() => undefined).finally(() => (inflight = undefined));
    return inflight;
  };
  const agentErrors = new Counter({ name: 'ztm_agent_errors_total', help: 'Error answers of agents by stable reason code', labelNames: ['reason'], registers: r });
  // Every reason exported from the start, so an alert on increase() sees the first one.
  for (const reason of AGENT_ERROR_CODES) agentErrors.inc({ reason }, 0);
  return {
    registry,
    agentErrors,
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
    staleEndpoints: new Counter({ name: 'ztm_stale_endpoints_total', help: "Deliveries the agent at the tenant's endpoint refused as not its own (outcome: rewake, dead-letter)", labelNames: ['outcome'], registers: r }),
    deadLetters: new Gauge({ name: 'ztm_dead_letters', help: 'Updates in the dead-letter store (read from Redis on scrape)', registers: r, collect }),
    queueDepth: new Gauge({
      name: 'ztm_queue_jobs', labelNames: ['queue', 'state'], registers: r, collect,
      help: 'Jobs per queue and state, read from Redis on scrape (BullMQ keeps prioritized and delayed jobs in sorted sets: backlog = waiting + prioritized + delayed)',
    }),
    warmPoolSize: new Gauge({ name: 'ztm_warm_pool_size', help: 'Warm pods ready to be claimed, as the pool-keeper last counted them (NaN when it has not reported for a minute)', registers: r, collect }),
    warmPoolTarget: new Gauge({ name: 'ztm_warm_pool_target', help: 'Warm pool size the pool-keeper keeps (sized from the wake rate and start time between WARM_POOL_MIN and WARM_POOL_MAX); pool-keeper only', registers: r }),
    warmPoolWakeRate: new Gauge({ name: 'ztm_warm_pool_wake_rate', help: 'Wakes per second that needed a warm member (smoothed), as the pool-keeper sized the pool from; pool-keeper only', registers: r }),
    warmPoolStartSeconds: new Gauge({ name: 'ztm_warm_pool_start_seconds', help: 'Replenish time the pool-keeper sized the pool with (mean recent cold start + its tick); pool-keeper only', registers: r }),
    warmPoolHitProbability: new Gauge({ name: 'ztm_warm_pool_hit_probability', help: 'Modelled probability that a wake finds a ready warm member at the kept size; pool-keeper only', registers: r }),
    warmPoolResizes: new Counter({ name: 'ztm_warm_pool_resizes_total', help: 'Changes of the warm pool size by the pool-keeper (direction: grow, shrink)', labelNames: ['direction'], registers: r }),
    tenantsAwake: new Gauge({ name: 'ztm_tenants_awake', help: 'Tenants with an awake agent (the activity index)', registers: r, collect }),
    telegramCalls: new Counter({ name: 'ztm_telegram_calls_total', help: 'Telegram Bot API calls by method and outcome', labelNames: ['method', 'outcome'], registers: r }),
    adminApiRequests: new Counter({ name: 'ztm_admin_api_requests_total', help: 'Admin API requests by operation (OpenAPI operationId, plain, none) and HTTP status', labelNames: ['operation', 'status'], registers: r }),
    setCollector(fn) {
      collector = fn;
    },
  };
}
