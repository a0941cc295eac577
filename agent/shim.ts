/**
 * The tenant pod's entrypoint (locally: the child process the local runtime starts per tenant).
 * Cold (TENANT_ID set): restore state, start the agent. Warm (WARM=1): wait for POST /claim.
 * Environment: see agent/shim-config.ts; HTTP: see agent/shim-server.ts; lifecycle:
 * agent/shim-lifecycle.ts.
 */
import pino from 'pino';
import { createLogger, type Logger } from '../lib/logger.js';
import { ConfigError } from '../lib/errors.js';
import { loadShimConfig, type ShimConfig } from './shim-config.js';
import { Shim } from './shim-lifecycle.js';
import { createShimServer } from './shim-server.js';
import { prewarm } from './shim-prewarm.js';
import { probeHostOf } from './agent-process.js';

/** Synchronous writes: lifecycle lines must not be lost when the process exits right after. */
function logger(level: string): Logger {
  return createLogger({ service: 'shim', level, destination: pino.destination({ dest: 1, sync: true }) });
}

function main(): void {
  let config: ShimConfig;
  try {
    config = loadShimConfig(process.env);
  } catch (err) {
    const variable = err instanceof ConfigError ? err.variable : undefined;
    logger('info').fatal({ variable }, `invalid configuration: ${(err as Error).message}`);
    process.exit(2);
  }
  const log = logger(config.logLevel);

  let server: ReturnType<typeof createShimServer> | undefined;
  const shim = new Shim({
    config,
    log,
    baseEnv: process.env,
    onStopped: (code) => {
      // In-flight answers (e.g. a failed claim's 500) get a moment to go out.
      const force = setTimeout(() => process.exit(code), 2000);
      force.unref();
      if (!server) process.exit(code);
      server.close(() => process.exit(code));
      server.closeIdleConnections();
    },
  });
  process.on('exit', () => shim.killAgentNow());
  if (config.supervisorPid !== undefined) watchSupervisor(config.supervisorPid, log, shim);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      // The kernel's parent-death signal (lib/util/parent-death.ts) when the local runtime died: say
      // so as the supervisor watch does, so one log line tells what happened however it was noticed.
      if (config.supervisorPid !== undefined && process.ppid !== config.supervisorPid) {
        log.warn({ supervisor_pid: config.supervisorPid, signal }, 'supervisor process gone: stopping');
        void shim.shutdown('supervisor process gone', 0);
        return;
      }
      log.info({ signal }, 'signal received');
      void shim.shutdown(signal, 0);
    });
  }

  server = createShimServer(shim, log);
  server.once('error', (err) => {
    log.fatal({ err, port: config.shimPort }, 'shim cannot listen');
    process.exit(1);
  });
  server.listen(config.shimPort, config.shimHost, () => {
    log.info({
      host: config.shimHost,
      port: config.shimPort,
      agent_port: config.agentPort,
      workspace: config.workspace,
      mode: config.warm ? 'warm' : 'cold',
      checkpoint_interval_s: config.checkpointIntervalS,
    }, config.warm ? 'shim listening: warm pool member, waiting for a claim' : 'shim listening: cold start');
    if (config.tenant) shim.startCold(config.tenant);
    // A warm member has time before its claim: spend it on the claim's first-time costs.
    else if (config.prewarm) {
      const host = probeHostOf(config.shimHost);
      void prewarm({ shimHost: host, shimPort: config.shimPort, agentHost: host, agentPort: config.agentPort }, log);
    }
  });
}

/**
 * Locally the shim is a child of the runtime's process. If that process dies (kill -9, crash), the
 * restarted runtime knows nothing of this shim: stop gracefully (agent, final checkpoint) rather
 * than live on as a ghost holding the tenant's port and workspace while a new agent is started.
 */
function watchSupervisor(supervisorPid: number, log: Logger, shim: Shim): void {
  const timer = setInterval(() => {
    if (process.ppid === supervisorPid) return;
    clearInterval(timer);
    log.warn({ supervisor_pid: supervisorPid }, 'supervisor process gone: stopping');
    void shim.shutdown('supervisor process gone', 0);
  }, 250);
  timer.unref();
}

main();
