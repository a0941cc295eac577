/**
 * The delivery scenarios (test/support/delivery-scenarios.ts) on the kubernetes runtime: pods on the Kubernetes API stand-in, started by the simulated kubelet, with the reference agent.
 */
import { deliveryScenarios } from './support/delivery-scenarios.js';

deliveryScenarios('kubernetes', 'reference');
