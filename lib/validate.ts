import { ValidationError } from './errors.js';
import { redactSecrets } from './redact.js';

/** Lowercase letters, digits and '-', starting with a letter, at most 40 chars (part of k8s names). */
export const TENANT_ID_PATTERN = /^[a-z][a-z0-9-]{0,39}$/;
/** Telegram's `<bot id>:<secret>`; the secret part is ~35 chars of the URL-safe alphabet. */
export const BOT_TOKEN_PATTERN = /^[0-9]{1,20}:[A-Za-z0-9_-]{30,60}$/;
export const IDLE_TIMEOUT_MIN_S = 1;
export const IDLE_TIMEOUT_MAX_S = 604_800;
export const IDLE_TIMEOUT_DEFAULT_S = 300;

export function assertTenantId(value: unknown): string {
  if (typeof value !== 'string' || !TENANT_ID_PATTERN.test(value)) {
    const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 60)) : typeof value;
    throw new ValidationError(
      `invalid tenant id ${shown}: use lowercase letters, digits and '-', starting with a letter, at most 40 characters`,
    );
  }
  return value;
}

export function assertBotToken(value: unknown): string {
  if (typeof value !== 'string' || !BOT_TOKEN_PATTERN.test(value)) {
    // Never echo the value: a near-miss token is still a secret.
    throw new ValidationError('invalid bot token: expected Telegram\'s <digits>:<30-60 chars of A-Z a-z 0-9 _ -> as given by @BotFather');
  }
  return value;
}

export function assertIdleTimeout(value: unknown): number {
  const n = typeof value === 'string' && /^[0-9]+$/.test(value.trim()) ? Number(value.trim()) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < IDLE_TIMEOUT_MIN_S || n > IDLE_TIMEOUT_MAX_S) {
    const shown = typeof value === 'string' || typeof value === 'number' ? redactSecrets(String(value)).slice(0, 40) : typeof value;
    throw new ValidationError(
      `invalid idle timeout ${JSON.stringify(shown)}: a whole number of seconds from ${IDLE_TIMEOUT_MIN_S} to ${IDLE_TIMEOUT_MAX_S}`,
    );
  }
  return n;
}
