/**
 * What a tenant's agent is given of the platform's secrets: only values derived for that tenant's
 * incarnation (its webhook secret; the SHA-256 of the bearer the forwarder presents to it), never
 * the master. A pod that reads them opens nothing of another tenant, nor of a later tenant of the
 * same id.
 */
import { agentTokenSha256, deriveAgentToken, deriveWebhookSecret, type TenantIdentity } from '../webhook-secret.js';

export interface TenantAgentSecrets {
  webhookSecret: string;
  agentTokenSha256: string;
}

export function tenantAgentSecrets(masterSecret: string, who: TenantIdentity): TenantAgentSecrets {
  return {
    webhookSecret: deriveWebhookSecret(masterSecret, who),
    agentTokenSha256: agentTokenSha256(deriveAgentToken(masterSecret, who)),
  };
}
