/**
 * What a tenant's agent is given of the platform's secrets: only values derived for that tenant
 * (its webhook secret; the SHA-256 of the bearer the forwarder presents to it), never the master.
 * A pod that reads them opens nothing of another tenant.
 */
import { agentTokenSha256, deriveAgentToken, deriveWebhookSecret } from '../webhook-secret.js';

export interface TenantAgentSecrets {
  webhookSecret: string;
  agentTokenSha256: string;
}

export function tenantAgentSecrets(masterSecret: string, tenantId: string): TenantAgentSecrets {
  return {
    webhookSecret: deriveWebhookSecret(masterSecret, tenantId),
    agentTokenSha256: agentTokenSha256(deriveAgentToken(masterSecret, tenantId)),
  };
}
