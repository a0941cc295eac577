/**
 * The delivery scenarios (test/support/delivery-scenarios.ts) on the local runtime: reference agents as local child processes (ZeroClaw: delivery-zeroclaw.test.ts).
 */
import { deliveryScenarios } from './support/delivery-scenarios.js';

deliveryScenarios('local', 'reference');
