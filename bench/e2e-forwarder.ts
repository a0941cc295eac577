/**
 * The forwarder as its own process for bench/e2e.ts, built as services/forwarder/main.ts builds it
 * (config from the environment, the standard client set, buildForwarder). Answers `usage`.
 */
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { createClients } from '../lib/platform/clients.js';
import { createMetrics } from '../lib/metrics.js';
import { buildForwarder } from '../services/forwarder/build.js';
import { serveParent } from './lib/common.js';

const config = loadConfig(process.env);
const log = createLogger({ service: 'forwarder', level: process.env.LOG_LEVEL ?? 'warn' });
const clients = createClients(config, { name: 'forwarder' });
// Its own registry without the queue gauges: the bench reads two counters, not Redis.
const metrics = createMetrics({ service: 'forwarder' });
const built = await buildForwarder({ config, log, clients, webhookSecret: config.webhookSecret as string, metrics });
await built.start();
const { forwarder } = built;
await Promise.all(forwarder.workers.map((w) => w.waitUntilReady()));
serveParent({ ok: true }, {
  usage: () => ({ cpu: process.cpuUsage(), mem: process.memoryUsage() }),
  pause: async () => {
    await Promise.all(forwarder.workers.map((w) => w.pause(true)));
    return {};
  },
  resume: () => {
    forwarder.workers.forEach((w) => w.resume());
    return {};
  },
  metrics: async () => {
    const out: Record<string, number> = {};
    for (const m of await metrics.registry.getMetricsAsJSON()) {
      if (m.name !== 'ztm_forward_total' && m.name !== 'ztm_telegram_calls_total') continue;
      for (const v of (m as unknown as { values: Array<{ value: number; labels: Record<string, string> }> }).values) {
        out[`${m.name}{${Object.values(v.labels).join(',')}}`] = v.value;
      }
    }
    return { counters: out };
  },
}, async () => {
  await built.close();
  await clients.close();
});
