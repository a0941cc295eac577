/**
 * The embedded default generates the platform's secrets once and keeps them in one file,
 * DATA_DIR/secrets.json (0600), so webhooks registered before a restart keep verifying after it and
 * the embedded stores keep their key. Production passes its secrets in.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from './errors.js';
import { generateStoreCredentials, isGeneratedStoreCredentials, type StoreCredentials } from './platform/store-credentials.js';

export interface PlatformSecrets {
  webhookSecret: string;
  warmPoolSecret: string;
}

/** Everything secrets.json holds; each reader takes its part and leaves the others as they are. */
interface SecretsFile extends Partial<PlatformSecrets> {
  /** The key the embedded DynamoDB and S3 take requests signed with (lib/platform/sigv4-gate.ts). */
  storeAccessKeyId?: string;
  storeSecretAccessKey?: string;
}

function secretsPath(dataDir: string): string {
  return path.join(dataDir, 'secrets.json');
}

function readSecrets(dataDir: string): SecretsFile {
  const file = secretsPath(dataDir);
  if (!existsSync(file)) return {};
  chmodSync(file, 0o600); // an older platform wrote it with the umask's mode
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new ConfigError('DATA_DIR', `${file} is not valid JSON: restore it, or remove it to generate new secrets (webhooks registered with the old ones stop verifying)`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError('DATA_DIR', `${file} must hold a JSON object`);
  }
  return parsed as SecretsFile;
}

/** Written whole to a temporary file (0600 from its creation) and renamed over the old one. */
function writeSecrets(dataDir: string, secrets: SecretsFile): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = secretsPath(dataDir);
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(secrets), { mode: 0o600 });
  renameSync(temporary, file);
}

export function loadOrCreateSecrets(
  dataDir: string,
  given: { webhookSecret?: string | undefined; warmPoolSecret?: string | undefined },
): PlatformSecrets {
  const stored = readSecrets(dataDir);
  const secrets: PlatformSecrets = {
    webhookSecret: given.webhookSecret ?? stored.webhookSecret ?? randomBytes(32).toString('base64url'),
    warmPoolSecret: given.warmPoolSecret ?? stored.warmPoolSecret ?? randomBytes(32).toString('base64url'),
  };
  if (secrets.webhookSecret !== stored.webhookSecret || secrets.warmPoolSecret !== stored.warmPoolSecret) {
    writeSecrets(dataDir, { ...stored, ...secrets });
  }
  return secrets;
}

/** The embedded stores' key for this DATA_DIR: made once, so presigned URLs outlive a restart. */
export function loadOrCreateStoreCredentials(dataDir: string): StoreCredentials {
  const stored = readSecrets(dataDir);
  const pair = { accessKeyId: stored.storeAccessKeyId, secretAccessKey: stored.storeSecretAccessKey };
  if (isGeneratedStoreCredentials(pair)) return pair;
  const fresh = generateStoreCredentials();
  writeSecrets(dataDir, { ...stored, storeAccessKeyId: fresh.accessKeyId, storeSecretAccessKey: fresh.secretAccessKey });
  return fresh;
}
