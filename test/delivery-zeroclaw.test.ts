/**
 * The delivery scenarios (test/support/delivery-scenarios.ts) with AGENT_PROFILE=zeroclaw on the
 * local runtime: each tenant's ZeroClaw is the emulator (test/support/zeroclaw-emulator.ts) behind
 * the stub LLM, started by the real shim; plus ZeroClaw restarted while its answer waits for
 * Telegram (its idempotency is in memory: the redelivery must resend the kept answer).
 */
import { deliveryScenarios } from './support/delivery-scenarios.js';

deliveryScenarios('local', 'zeroclaw');
