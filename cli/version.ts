/** `ztm version`: the platform's version (package.json) and the Node running it. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** package.json from cli/ (a checkout) or dist/cli/ (the image, where /app/package.json sits above dist/). */
export function ztmVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(fileURLToPath(new URL(rel, import.meta.url)), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'agentic-tenancy' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      /* not there: the other layout */
    }
  }
  return 'unknown';
}
