/**
 * The lifecycle scenarios (test/support/lifecycle-scenarios.ts) on the local runtime: reference agents as local child processes (ZeroClaw: lifecycle-zeroclaw.test.ts).
 */
import { lifecycleScenarios } from './support/lifecycle-scenarios.js';

lifecycleScenarios('local', 'reference');
