/**
 * `npm start`: the embedded default, every service in one process on this host, with embedded
 * stores under DATA_DIR and agents as local child processes. A faithful miniature of production:
 * same queues, same workers, same keys.
 */
import { chmodSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { runService } from '../../lib/platform/run-service.js';
import { startEmbeddedStores } from '../../lib/platform/embedded-stores.js';
import { startTelegramSandbox } from '../../lib/platform/telegram-sandbox.js';
import { createClients } from '../../lib/platform/clients.js';
import { loadOrCreateSecrets } from '../../lib/local-secrets.js';
import { describeRedisUrl } from '../../lib/redis.js';
import { describeStoreEndpoint } from '../../lib/platform/store-credentials.js';
import { startPlatform } from './platform.js';
import { parentDeathSignalAvailable } from '../../lib/util/parent-death.js';
import { resolveAgentIsolation } from '../../lib/util/agent-isolation.js';
import { reportIsolation } from '../../lib/ops/isolation-report.js';
import { closeInOrder } from '../../lib/platform/close-steps.js';
import { startOrClose } from '../../lib/platform/service-parts.js';
import { buildDashboard, type BuiltDashboard } from '../dashboard/build.js';
import { registryTenantLister } from '../../lib/ops/tenants-view-source.js';

await runService('platform', async ({ config: given, log }) => {
  // Private to the platform's user: it holds secrets, the registry, the state store and workspaces.
  mkdirSync(given.dataDir, { recursive: true, mode: 0o700 });
  chmodSync(given.dataDir, 0o700);
  // Before anything starts: AGENT_SANDBOX=namespaces on a host that cannot is a one-line refusal.
  const isolation = resolveAgentIsolation(given.agentSandbox);
  const stores = await startEmbeddedStores(given, log);
  // TELEGRAM_API_BASE=sandbox: the local Bot API first, so every client below talks to it.
  const { config, sandbox } = await startTelegramSandbox(given, log);
  const secrets = loadOrCreateSecrets(config.dataDir, config);
  const clients = createClients(config, { name: 'platform', redisUrl: stores.redisUrl, dynamodbEndpoint: stores.dynamodbEndpoint, s3Endpoint: stores.s3Endpoint });
  await clients.registry.ensureTable();
  const platform = await startPlatform({ config, log, clients, secrets });
  await reportIsolation(clients.redis, isolation);
  // Bull Board in-process only when DASHBOARD_PORT is set; otherwise `npx ztm dashboard` serves it.
  let dashboard: BuiltDashboard | undefined;
  if (config.dashboardPort !== undefined) {
    dashboard = await startOrClose(await buildDashboard({
      redis: clients.redis, log, port: config.dashboardPort, host: config.ingressHost, withMetrics: false,
      // In one process the view reads the registry it already holds (the Deployment asks the janitor).
      tenants: registryTenantLister(clients.registry),
      ...(config.dashboardAuth ? { auth: config.dashboardAuth } : {}),
    }));
  }

  const infoFile = path.join(config.dataDir, 'platform.json');
  const ingressUrl = `http://${config.ingressHost}:${platform.ingress.port}`;
  // It holds the Redis URL with its password, for ztm: readable by this user only.
  writeFileSync(infoFile, JSON.stringify({
    pid: process.pid, redisUrl: stores.redisUrl, ingressUrl, ...(sandbox ? { sandboxUrl: sandbox.url } : {}), startedAt: new Date().toISOString(),
  }), { mode: 0o600 });
  chmodSync(infoFile, 0o600);
  const lines = [
    'agentic-tenancy platform running (embedded default)',
    `  ingress:    ${ingressUrl}  (POST /tg/<tenant>, GET /healthz /readyz /metrics)`,
    `  webhooks:   ${config.routerPublicUrl ? `${config.routerPublicUrl}/tg/<tenant>` : 'not registered: set ROUTER_PUBLIC_URL to the public URL of the ingress'}`,
    `  telegram:   ${sandbox
      ? `${sandbox.url}  (local Bot API sandbox: npx ztm chat <tenant>)`
      : `${config.telegramApiBase}  (TELEGRAM_API_BASE=sandbox runs a local one, for npx ztm chat)`}`,
    `  redis:      ${describeRedisUrl(stores.redisUrl)}`,
    `  registry:   DynamoDB table ${config.dynamodbTable} at ${stores.dynamodbEndpoint ? describeStoreEndpoint(stores.dynamodbEndpoint) : 'AWS'}`,
    `  state:      s3://${config.s3Bucket} at ${stores.s3Endpoint ? describeStoreEndpoint(stores.s3Endpoint) : 'AWS'}`,
    `  agents:     local child processes, AGENT_PROFILE=${config.agent.profile}${config.agent.profile === 'custom' ? ` (AGENT_COMMAND=${config.agentCommand})` : ''}${config.agent.llm ? `, model ${config.agent.llm.model} at ${config.agent.llm.baseUrl}` : ''}; logs in ${path.join(config.dataDir, 'tenants', '<id>', 'agent.log')}`,
    // Said at every start, loudly: the embedded default is a real deployment for small installations.
    `  isolation:  ${isolation.line}${isolation.sandboxed ? '' : '; they run as this user and see each other\'s processes and DATA_DIR (docs/security.md)'}; ${parentDeathSignalAvailable() ? 'they die with the platform (setpriv --pdeathsig)' : 'no setpriv: an agent may outlive a crashed platform'}`,
    ...stores.started.map((s) => `  started:    ${s}`),
    `  started:    ingress, forwarder, waker, janitor (ztm admin, idle check every ${config.idleCheckIntervalS}s, reconciler every ${config.reconcileIntervalS}s), pool-keeper (warm pool ${config.warmPool.min === config.warmPool.max ? `target ${config.warmPool.min}` : `${config.warmPool.min}-${config.warmPool.max}, following demand`})`,
    `  dashboard:  ${dashboard ? dashboard.served.url : 'npx ztm dashboard (or set DASHBOARD_PORT to serve it here)'}`,
    ...(platform.adminApiUrl ? [`  admin API:  ${platform.adminApiUrl}/v1  (OpenAPI at /v1/openapi.json; a token: npx ztm api-token create --name <who>)`] : []),
    sandbox
      ? '  try:        npx ztm tenant create alice <bot token: any of Telegram\'s shape>; npx ztm chat alice'
      : '  try:        npx ztm tenant list; npx ztm status',
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
  if (!isolation.sandboxed) log.warn({ isolation: isolation.line }, 'agents are not sandboxed on this host');
  log.info({ ingress: ingressUrl, redis: describeRedisUrl(stores.redisUrl), ...(sandbox ? { sandbox: sandbox.url } : {}), isolation: isolation.line }, 'platform started');
  return {
    close: () => closeInOrder([
      ['platform.json', () => Promise.resolve(rmSync(infoFile, { force: true }))],
      ['dashboard', () => dashboard?.close()],
      ['services', () => platform.close()],
      ['clients', () => clients.close()],
      ['telegram sandbox', () => sandbox?.close()],
      ['embedded stores', () => stores.close()],
    ], log, { stepTimeoutMs: 20_000 }),
  };
}, { sandbox: true });
