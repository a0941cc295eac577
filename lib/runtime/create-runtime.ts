/** Picks the runtime named by RUNTIME. */
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { ConfigError } from '../errors.js';
import { LocalRuntime } from './local-runtime.js';
import type { Runtime } from './runtime.js';

export function createRuntime(config: Config, log: Logger, warmPoolSecret: string): Runtime {
  if (config.runtime === 'local') {
    return new LocalRuntime({ dataDir: config.dataDir, log: log.child({ component: 'runtime' }), warmPoolSecret, agentCommand: config.agentCommand, logLevel: config.logLevel });
  }
  throw new ConfigError('RUNTIME', 'kubernetes is not available in this build yet (use RUNTIME=local)');
}
