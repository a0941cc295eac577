/**
 * The lifecycle scenarios (test/support/lifecycle-scenarios.ts) on the kubernetes runtime: pods on the Kubernetes API stand-in, started by the simulated kubelet, with the reference agent.
 */
import { lifecycleScenarios } from './support/lifecycle-scenarios.js';

lifecycleScenarios('kubernetes', 'reference');
