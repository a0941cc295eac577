/**
 * Docker HEALTHCHECK of the platform image: exits 0 when the service in this container answers
 * `GET /healthz` on one of its ports (INGRESS_PORT for the ingress, ADMIN_PORT for the workers,
 * DASHBOARD_PORT for the dashboard), 1 otherwise. Kubernetes ignores HEALTHCHECK and uses the
 * chart's probes; this serves `docker run` and compose.
 */
import { request } from 'undici';
import { loadConfig } from '../lib/config.js';
import { DEFAULT_DASHBOARD_PORT } from '../lib/ops/dashboard.js';

async function healthy(port: number): Promise<boolean> {
  try {
    const res = await request(`http://127.0.0.1:${port}/healthz`, { headersTimeout: 2000, bodyTimeout: 2000 });
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

let ports: number[];
try {
  const config = loadConfig(process.env);
  ports = [config.ingressPort, config.adminPort, config.dashboardPort ?? DEFAULT_DASHBOARD_PORT];
} catch {
  ports = [8080, 9090, DEFAULT_DASHBOARD_PORT];
}
const results = await Promise.all([...new Set(ports)].filter((p) => p > 0).map(healthy));
process.exit(results.some(Boolean) ? 0 : 1);
