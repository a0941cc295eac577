/**
 * The state root's identity: `<workspace>/<stateDir>` is the agent's to change while it runs, so the
 * archive's steps (agent/state-archive.ts) resolve it here without following a link at its name.
 */
import { realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../lib/errors.js';
import { lstatOf } from './state-archive-walk.js';

/**
 * Before the agent starts: a link or file the agent left where its state root (or the shim's scratch) goes is removed
 * (never followed), so nothing the shim writes there (the restore, the agent's configuration)
 * lands in the link's target. See ownRoot.
 */
export async function removeForeignRoot(root: string): Promise<void> {
  await ownRoot(root, 'remove');
}

/**
 * The state root's real path, its own name never followed. The root is `<workspace>/<stateDir>`,
 * which the agent may replace with a symlink while it runs: its target (another tenant's state on
 * the same disk, where a local shim runs as the agent's own user) must never be restored into,
 * cleared or packed. The workspace above it is the shim's and trusted. `remove` (a restore or a
 * clear, before the agent starts): a link or file standing at the root is unlinked, never its
 * target, and the root reads as missing; `refuse` (a pack, the agent running): a ValidationError.
 * Undefined when there is no root.
 */
export async function ownRoot(root: string, onOther: 'remove' | 'refuse'): Promise<string | undefined> {
  const abs = path.resolve(root);
  const st = await lstatOf(abs);
  if (st === undefined) return undefined;
  if (!st.isDirectory()) {
    if (onOther === 'refuse') throw new ValidationError(`state root ${abs} is a ${st.isSymbolicLink() ? 'symbolic link' : 'file'}, not a directory: not followed`);
    await rm(abs, { force: true });
    return undefined;
  }
  const [real, parent] = await Promise.all([realpath(abs), realpath(path.dirname(abs))]);
  // Only a swap between the lstat and here can get this far: refused either way.
  if (real !== path.join(parent, path.basename(abs))) throw new ValidationError(`state root ${abs} changed into a link while it was checked: not followed`);
  return real;
}
