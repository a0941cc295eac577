import { runService } from '../../lib/platform/run-service.js';
import { createClients } from '../../lib/platform/clients.js';
import { ConfigError } from '../../lib/errors.js';
import { createJanitor } from './janitor.js';

await runService('janitor', async ({ config, log }) => {
  if (!config.webhookSecret) throw new ConfigError('WEBHOOK_SECRET', 'is required to run the janitor on its own');
  const clients = createClients(config, { name: 'janitor' });
  await clients.registry.ensureTable();
  const janitor = createJanitor({ config, log, clients, webhookSecret: config.webhookSecret });
  log.info('janitor started: admin worker');
  return {
    async close() {
      await janitor.close();
      await clients.close();
    },
  };
});
