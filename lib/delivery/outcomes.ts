/**
 * The delivery path's stable codes, named once: the outcome label of `ztm_forward_total`, the reason
 * label of `ztm_agent_errors_total`, the dead-letter reasons an agent's own answer causes, and the
 * idempotency key the agent sees. Dashboards, alerts and tests depend on them: never match on a
 * log message's text, use these.
 */

/** `ztm_forward_total{outcome}`: what became of one delivery attempt. */
export const FORWARD_OUTCOMES = ['delivered', 'kept-answer', 'skipped', 'duplicate', 'retry', 'rejected', 'dead-letter'] as const;
export type ForwardOutcome = (typeof FORWARD_OUTCOMES)[number];

/**
 * `ztm_agent_errors_total{reason}`: an agent's error answer, by what it means.
 * needs_quickstart: ZeroClaw has no model configured (503); unauthorized: kept for dashboards, no
 * longer produced (a 401 means the agent is not this tenant's: STALE_ENDPOINT_REASONS, counted in
 * ztm_stale_endpoints_total); too_large: the update is over its body limit (413); rate_limited: 429; timeout: its own
 * request timeout (408); server_error: any other 5xx (or a 200 that is not JSON); rejected: any
 * other 4xx.
 */
export const AGENT_ERROR_CODES = ['needs_quickstart', 'unauthorized', 'too_large', 'rate_limited', 'timeout', 'server_error', 'rejected'] as const;
export type AgentErrorCode = (typeof AGENT_ERROR_CODES)[number];

/**
 * Dead-letter reasons of the answers that no retry can fix (an operator must act first; then
 * `ztm dead retry` re-sends). Each is also the message of the error log line written when it happens.
 */
export const AGENT_REFUSAL_REASONS = {
  tooLarge: 'agent refused the update as too large (413)',
  needsQuickstart: 'agent not configured: needs_quickstart (set AGENT_LLM_BASE_URL/AGENT_LLM_MODEL)',
} as const;

/**
 * Why an answer is a stale endpoint (the `reason` of that outcome): the agent there refused the
 * tenant's own credential, derived for this tenant's incarnation, so it is not this tenant's agent
 * (a pod IP or port reused by another tenant, an agent of an earlier tenant of the same id). Said
 * per protocol, naming which credential, never its value.
 */
export const STALE_ENDPOINT_REASONS = {
  /** zeroclaw protocol: ZeroClaw's gateway (pairing) or the reference agent refused the bearer. */
  bearer: "the agent refused this tenant's bearer (401): not this tenant's agent",
  /** telegram protocol: OpenClaw's webhook listener refused the tenant's webhook secret. */
  webhookSecret: "the agent refused this tenant's webhook secret (401): not this tenant's agent",
} as const;

/** Longest wait an agent's 429 may impose on an update (its `retry_after`/`Retry-After` is capped). */
export const MAX_AGENT_RETRY_AFTER_S = 300;

/**
 * X-Idempotency-Key of a delivery: `<tenant>:<update_id>`, and `<tenant>:<update_id>:<n>` after the
 * agent ended `n` turns of this update in an error. ZeroClaw records a key before its LLM call and
 * never forgets it on failure, so a retry under the same key would only get `duplicate` with no
 * answer; a crash or a lost connection keeps the key, so the agent does not act twice.
 */
export function idempotencyKey(tenantId: string, updateId: number, failedTurns = 0): string {
  return failedTurns > 0 ? `${tenantId}:${updateId}:${failedTurns}` : `${tenantId}:${updateId}`;
}
