/**
 * `ztm dashboard [--port 3001] [--host 127.0.0.1]`: Bull Board on this machine over the queues of the
 * Redis ztm talks to (ZTM_REDIS_URL / REDIS_URL, or the platform `npm start` runs here). In cluster
 * mode (no Redis URL, ZTM_KUBE_CONTEXT set) it port-forwards the chart's `dashboard` Deployment
 * instead. Basic auth when DASHBOARD_USER and DASHBOARD_PASSWORD are set. Runs until Ctrl-C.
 */
import { spawn } from 'node:child_process';
import type { CliConfig } from '../lib/config.js';
import { ZtmError } from '../lib/errors.js';
import { closeRedis, describeRedisUrl, type RedisClient } from '../lib/redis.js';
import { DEFAULT_DASHBOARD_PORT, serveDashboard, type ServedDashboard } from '../lib/ops/dashboard.js';
import type { CliTarget } from './target.js';
import { connectRedis } from './status.js';
import { printError, printJson, type Printer } from './output.js';

export interface DashboardInvocation {
  port: number;
  host: string;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string) => () => resolve(signal);
    process.once('SIGINT', on('SIGINT'));
    process.once('SIGTERM', on('SIGTERM'));
  });
}

/** Cluster mode: `kubectl port-forward deployment/dashboard <port>:3001`, output passed through. */
function portForward(inv: DashboardInvocation, config: CliConfig, p: Printer): Promise<number> {
  const args = [
    ...(config.kubeContext ? ['--context', config.kubeContext] : []), '-n', config.namespace,
    'port-forward', '--address', inv.host, 'deployment/dashboard', `${inv.port}:${DEFAULT_DASHBOARD_PORT}`,
  ];
  p.err(`ztm: kubectl ${args.join(' ')}`);
  p.out(`Bull Board: http://${inv.host}:${inv.port}/  (the cluster's dashboard Deployment; Ctrl-C to stop)`);
  return new Promise((resolve) => {
    const child = spawn('kubectl', args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('error', () => resolve(127));
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

export async function runDashboard(inv: DashboardInvocation, target: CliTarget, config: CliConfig, p: Printer): Promise<number> {
  if (target.kind === 'kubectl') return portForward(inv, config, p);
  let redis: RedisClient | undefined;
  let served: ServedDashboard | undefined;
  try {
    redis = await connectRedis(target.url, 'ztm-dashboard', config.redisCluster);
    served = await serveDashboard({
      redis, port: inv.port, host: inv.host, ...(config.dashboardAuth ? { auth: config.dashboardAuth } : {}),
      // The tenants view reads the registry through the janitor, as `ztm tenant list` does.
      tenants: { redisUrl: target.url, cluster: config.redisCluster },
    });
    if (p.json) printJson(p, { url: served.url, redis: describeRedisUrl(target.url), auth: Boolean(config.dashboardAuth) });
    else p.out(`Bull Board: ${served.url}  (queues of ${describeRedisUrl(target.url)}; Ctrl-C to stop)`);
    if (!config.dashboardAuth && !LOOPBACK.has(inv.host)) {
      p.err('ztm: warning: the dashboard listens beyond this machine without auth: set DASHBOARD_USER and DASHBOARD_PASSWORD');
    }
    await untilSignal();
    return 0;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    printError(p, err instanceof ZtmError ? err.code : 'E_INTERNAL', /EADDRINUSE/.test(message) ? `port ${inv.port} is in use: try --port <another>` : message);
    return 1;
  } finally {
    await served?.close();
    await closeRedis(redis);
  }
}
