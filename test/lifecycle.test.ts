/**
 * The lifecycle scenarios (test/support/lifecycle-scenarios.ts) on the local runtime: agents as local child processes.
 */
import { lifecycleScenarios } from './support/lifecycle-scenarios.js';

lifecycleScenarios('local');
