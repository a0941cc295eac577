/**
 * The embedded default generates the platform's secrets once and keeps them under DATA_DIR, so
 * webhooks registered before a restart keep verifying after it. Production passes them in.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';

export interface PlatformSecrets {
  webhookSecret: string;
  warmPoolSecret: string;
}

export function loadOrCreateSecrets(
  dataDir: string,
  given: { webhookSecret?: string | undefined; warmPoolSecret?: string | undefined },
): PlatformSecrets {
  const file = path.join(dataDir, 'secrets.json');
  let stored: Partial<PlatformSecrets> = {};
  if (existsSync(file)) {
    chmodSync(file, 0o600); // an older platform wrote it with the umask's mode
    stored = JSON.parse(readFileSync(file, 'utf8')) as Partial<PlatformSecrets>;
  }
  const secrets: PlatformSecrets = {
    webhookSecret: given.webhookSecret ?? stored.webhookSecret ?? randomBytes(32).toString('base64url'),
    warmPoolSecret: given.warmPoolSecret ?? stored.warmPoolSecret ?? randomBytes(32).toString('base64url'),
  };
  if (secrets.webhookSecret !== stored.webhookSecret || secrets.warmPoolSecret !== stored.warmPoolSecret) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    writeFileSync(file, JSON.stringify(secrets), { mode: 0o600 });
  }
  return secrets;
}
