#!/usr/bin/env node
// Entry point of `ztm` from a checkout: runs the compiled JavaScript in dist/ (a CLI must start in
// ~0.1 s; through tsx it took ~0.6 s), rebuilt here first when a source is newer than the last build
// (esbuild, well under a second; scripts/build.mjs). Should the build fail, the sources run through tsx.
import { ensureBuilt } from '../scripts/build.mjs';

let main;
try {
  await ensureBuilt();
  ({ main } = await import('../dist/cli/main.js'));
} catch (err) {
  process.stderr.write(`ztm: running from the TypeScript sources (the build in dist/ failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)})\n`);
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('./main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
