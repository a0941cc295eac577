/**
 * `npm start`: the embedded default, every service in one process on this host, with embedded
 * stores under DATA_DIR. A faithful miniature of production: same queues, same workers.
 */
import { writeFileSync, rmSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { runService } from '../../lib/platform/run-service.js';
import { startEmbeddedStores } from '../../lib/platform/embedded-stores.js';
import { createClients } from '../../lib/platform/clients.js';
import { loadOrCreateSecrets } from '../../lib/local-secrets.js';
import { describeRedisUrl } from '../../lib/redis.js';
import { createJanitor } from '../janitor/janitor.js';

await runService('platform', async ({ config, log }) => {
  mkdirSync(config.dataDir, { recursive: true });
  const stores = await startEmbeddedStores(config, log);
  const secrets = loadOrCreateSecrets(config.dataDir, config);
  const clients = createClients(config, { name: 'platform', redisUrl: stores.redisUrl, dynamodbEndpoint: stores.dynamodbEndpoint });
  await clients.registry.ensureTable();
  const janitor = createJanitor({ config, log: log.child({ component: 'janitor' }), clients, webhookSecret: secrets.webhookSecret });

  const infoFile = path.join(config.dataDir, 'platform.json');
  writeFileSync(infoFile, JSON.stringify({ pid: process.pid, redisUrl: stores.redisUrl, startedAt: new Date().toISOString() }));
  const lines = [
    'agentic-tenancy platform running (embedded default)',
    `  data dir:   ${config.dataDir}`,
    `  redis:      ${describeRedisUrl(stores.redisUrl)}`,
    `  registry:   DynamoDB table ${config.dynamodbTable} at ${stores.dynamodbEndpoint ?? 'AWS'}`,
    `  telegram:   ${config.telegramApiBase}`,
    `  webhooks:   ${config.routerPublicUrl ? `${config.routerPublicUrl}/tg/<tenant>` : 'not registered (set ROUTER_PUBLIC_URL)'}`,
    ...stores.started.map((s) => `  started:    ${s}`),
    '  started:    janitor (admin worker for ztm)',
    '  try:        npx ztm tenant list',
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
  log.info({ redis: describeRedisUrl(stores.redisUrl) }, 'platform started');
  return {
    async close() {
      rmSync(infoFile, { force: true });
      await janitor.close();
      await clients.close();
      await stores.close();
    },
  };
});
