/**
 * The delivery scenarios (test/support/delivery-scenarios.ts) on the local runtime: agents as local child processes.
 */
import { deliveryScenarios } from './support/delivery-scenarios.js';

deliveryScenarios('local');
