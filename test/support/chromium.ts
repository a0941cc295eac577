/**
 * Headless Chromium for the browser tests, from npm (@sparticuz/chromium, a devDependency): never a
 * system browser, never a download. The package's brotli archives are unpacked once into a
 * directory of this version's own under the temp dir (the package's own executablePath() would use
 * whatever /tmp/chromium is there, of any version), then launched by playwright-core with the
 * package's flags plus those this closed network needs.
 */
import { createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createBrotliDecompress } from 'node:zlib';
import sparticuz from '@sparticuz/chromium';
import { chromium, type Browser } from 'playwright-core';
import { x as untar } from 'tar';

const require = createRequire(import.meta.url);
/** Its package.json is not exported: from build/index.js up. */
const PACKAGE_DIR = path.resolve(path.dirname(require.resolve('@sparticuz/chromium')), '..');
const VERSION = (JSON.parse(readFileSync(path.join(PACKAGE_DIR, 'package.json'), 'utf8')) as { version: string }).version;

/**
 * Without these, Chromium keeps trying Google's hosts (refused here, many at a time); QUIC and
 * sync likewise. The package's --disable-web-security and --allow-running-insecure-content are
 * dropped: the pages under test get the browser's real same-origin rules.
 */
const CLOSED_NETWORK_FLAGS = ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run', '--disable-gpu'];
const DROPPED_FLAGS = new Set(['--disable-web-security', '--allow-running-insecure-content']);

let unpacked: Promise<{ executable: string; fonts: string }> | undefined;

/** Unpacks chromium.br, swiftshader.tar.br and fonts.tar.br once (staged, then renamed into place: concurrent callers are safe). */
function unpack(): Promise<{ executable: string; fonts: string }> {
  unpacked ??= (async () => {
    const dir = path.join(os.tmpdir(), `ztm-chromium-${VERSION}`);
    const result = { executable: path.join(dir, 'chromium'), fonts: path.join(dir, 'fonts') };
    if (existsSync(result.executable)) return result;
    const bin = path.join(PACKAGE_DIR, 'bin');
    const staging = mkdtempSync(`${dir}.partial-`);
    try {
      await pipeline(createReadStream(path.join(bin, 'chromium.br')), createBrotliDecompress(), createWriteStream(path.join(staging, 'chromium'), { mode: 0o755 }));
      // SwiftShader's GL libraries beside the executable (Chromium loads them from its own directory; without them it crashes on the first page).
      await pipeline(createReadStream(path.join(bin, 'swiftshader.tar.br')), createBrotliDecompress(), untar({ cwd: staging, strict: true }));
      mkdirSync(path.join(staging, 'fonts'));
      await pipeline(createReadStream(path.join(bin, 'fonts.tar.br')), createBrotliDecompress(), untar({ cwd: path.join(staging, 'fonts'), strict: true }));
      // The package's fonts.conf names /tmp/fonts (where its own unpacking puts them): point it here.
      writeFileSync(path.join(staging, 'fonts', 'fonts.conf'), `<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n  <dir>${result.fonts}</dir>\n  <cachedir>${path.join(dir, 'fonts-cache')}</cachedir>\n</fontconfig>\n`);
      try {
        renameSync(staging, dir);
      } catch (err) {
        if (!existsSync(result.executable)) throw err;
      }
      return result;
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  })();
  return unpacked;
}

/** Launches headless Chromium; a failure to unpack or start is one clear line (the first useful line of the browser's own output). */
export async function launchChromium(): Promise<Browser> {
  let where = 'unpack';
  try {
    const { executable, fonts } = await unpack();
    where = `start ${executable}`;
    const args = [...sparticuz.args.filter((a) => !DROPPED_FLAGS.has(a)), ...CLOSED_NETWORK_FLAGS];
    return await chromium.launch({
      executablePath: executable,
      headless: true,
      args,
      env: { HOME: path.dirname(executable), FONTCONFIG_PATH: fonts, PATH: process.env.PATH ?? '' },
      timeout: 60_000,
    });
  } catch (err) {
    const text = String((err as Error).message ?? err);
    const detail = text.split('\n').find((l) => /error while loading shared libraries|No such file|cannot|failed/i.test(l)) ?? text.split('\n', 1)[0];
    throw new Error(`Chromium (@sparticuz/chromium ${VERSION}) could not ${where}: ${detail?.trim()}`);
  }
}
