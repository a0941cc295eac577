/**
 * An executable `zeroclaw` that runs the emulator (zeroclaw-emulator.ts), for ZEROCLAW_BIN in tests.
 * The shim starts its agent with the workspace as cwd, so every path in the wrapper is absolute;
 * `exec` keeps one process, so the shim's SIGTERM reaches the emulator itself (a wrapper that
 * stays the parent would be SIGKILLed with the process group before the emulator could finish).
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const EMULATOR = fileURLToPath(new URL('./zeroclaw-emulator.ts', import.meta.url));
const written = new Map<string, string>();

const shQuote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;

/** The wrapper's path (`<dir>/zeroclaw`), written once per dir; default dir: one under os.tmpdir() per checkout. */
export function zeroclawEmulatorBin(dir?: string): string {
  const script = `#!/bin/sh\nexec ${[process.execPath, '--import', import.meta.resolve('tsx'), EMULATOR].map(shQuote).join(' ')} "$@"\n`;
  const target = dir ?? path.join(tmpdir(), `ztm-zeroclaw-emulator-${createHash('sha256').update(script).digest('hex').slice(0, 12)}`);
  const cached = written.get(target);
  if (cached) return cached;
  const bin = path.join(target, 'zeroclaw');
  mkdirSync(target, { recursive: true });
  if (!existsSync(bin) || readFileSync(bin, 'utf8') !== script) {
    // Written beside and renamed: concurrent test processes never run a half-written script.
    const tmp = `${bin}.${process.pid}.tmp`;
    writeFileSync(tmp, script, { mode: 0o755 });
    chmodSync(tmp, 0o755);
    renameSync(tmp, bin);
  }
  written.set(target, bin);
  return bin;
}
