/**
 * The lifecycle scenarios (test/support/lifecycle-scenarios.ts) with AGENT_PROFILE=zeroclaw on the
 * local runtime: each tenant's ZeroClaw is the emulator (test/support/zeroclaw-emulator.ts) behind
 * the stub LLM, started by the real shim in a cold or a claimed warm pod. The stop/wake race runs
 * 20 cycles (each wakes a ZeroClaw; 50 for the reference agent).
 */
import { lifecycleScenarios } from './support/lifecycle-scenarios.js';

lifecycleScenarios('local', 'zeroclaw', { raceCycles: 20 });
