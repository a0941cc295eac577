/**
 * The local agent sandbox (AGENT_SANDBOX=namespaces, the embedded default's runtime): the agent in
 * its own pid, mount and ipc namespaces (util-linux `unshare`), seeing the host read-only, private
 * tmpfs on /tmp, /var/tmp and /dev/shm, and in place of each hidden path (DATA_DIR) an empty tmpfs
 * with only its own workspace bound back at the same path. As root the agent runs as an
 * unprivileged uid/gid; otherwise a user namespace maps the platform's user to root, and the
 * capabilities go before the agent starts (both with no_new_privs). The network stays the host's.
 * This module builds the command; agent/agent-sandbox.sh does the mounts.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./agent-sandbox.sh', import.meta.url));
/** The repository (the reference agent, tsx, the shim's own code): agents started from it read it. */
const CODE_ROOT = fileURLToPath(new URL('..', import.meta.url));
/** World-writable places of the host: a private, empty tmpfs each (/dev/shm is the script's own). */
const PRIVATE_TMP = ['/tmp', '/var/tmp'];
/** Never covered nor bound: the kernel's and the devices' file systems. */
const SYSTEM = /^\/(proc|sys|dev)(\/|$)/;

export interface SandboxSettings {
  /** Paths the agent must not see (DATA_DIR): an empty tmpfs in their place. */
  hide: string[];
  /** Who the agent runs as when the shim runs as root. */
  uid: number;
  gid: number;
}

export interface SandboxTarget {
  /** Bound back read-write at its own path; the agent starts there. */
  workspace: string;
  /** What the agent's program reads (interpreter, code): bound back read-only where covered. */
  reads: string[];
  /**
   * The shim's own directories inside the workspace (its scratch). Where the agent runs as the
   * platform's own user (a user namespace) ownership cannot keep it out of them, so it gets an
   * empty tmpfs there, a mount point it cannot rename or replace; as root they are root's
   * (prepareWorkspace) and stay visible.
   */
  shimOwn?: string[];
}

type Op = { kind: 'cover'; path: string; mode: string } | { kind: 'place'; path: string; ro: boolean };

const isUnder = (p: string, dir: string): boolean => p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
const depth = (p: string): number => p.split('/').filter(Boolean).length;

/** The agent's uid/gid when the sandbox switches user (the shim is root); undefined: a user namespace. */
export function sandboxUser(settings: SandboxSettings): { uid: number; gid: number } | undefined {
  return process.getuid?.() === 0 ? { uid: settings.uid, gid: settings.gid } : undefined;
}

/** One line for `npm start` and `ztm status`. */
export function describeSandbox(settings: SandboxSettings): string {
  const user = sandboxUser(settings);
  return user
    ? `pid, mount, ipc namespaces; uid ${user.uid}; network shared with the host`
    : 'user, pid, mount, ipc namespaces; this user without capabilities; network shared with the host';
}

/** May `uid`/`gid` search directory `dir` (its own bits; root would be refused nothing)? */
function canSearch(dir: string, user: { uid: number; gid: number }): boolean {
  try {
    const st = statSync(dir);
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
    return (st.mode & bit) !== 0;
  } catch {
    return false;
  }
}

/** The first directory on the way to `p` the agent's user cannot pass, if any. */
function firstBarrier(p: string, user: { uid: number; gid: number } | undefined): string | undefined {
  if (!user) return undefined; // a user namespace: the platform's own user, who can
  let dir = '/';
  for (const part of p.split('/').filter(Boolean).slice(0, -1)) {
    dir = path.join(dir, part);
    if (!canSearch(dir, user)) return dir;
  }
  return undefined;
}

/** The mounts, in the order the script applies them: outer paths before the paths under them. */
export function sandboxOps(settings: SandboxSettings, target: SandboxTarget): Op[] {
  const user = sandboxUser(settings);
  const hidden = settings.hide.map((p) => path.resolve(p));
  const covers = new Map<string, string>();
  for (const p of PRIVATE_TMP) if (existsSync(p)) covers.set(p, '1777');
  for (const p of hidden) covers.set(p, '0755');
  const workspace = path.resolve(target.workspace);
  for (const p of user ? [] : (target.shimOwn ?? []).map((s) => path.resolve(s))) if (p !== workspace && isUnder(p, workspace)) covers.set(p, '0700');
  const wanted = [...new Set(target.reads.map((p) => path.resolve(p)))]
    .filter((p) => existsSync(p) && !SYSTEM.test(p) && !hidden.some((h) => isUnder(p, h)) && !isUnder(p, workspace));
  // A read directory the agent's user cannot enter itself (a checkout made by `mktemp -d`, 0700)
  // becomes a passable tmpfs with its entries bound back, as a barrier on the way does below.
  const candidates = wanted.flatMap((p) => {
    if (!user || !statSync(p).isDirectory() || canSearch(p, user)) return [p];
    covers.set(p, '0755');
    return readdirSync(p).map((name) => path.join(p, name)).filter((c) => !hidden.some((h) => isUnder(c, h)) && !isUnder(c, workspace));
  });
  // A barrier on the way (e.g. a 0700 home holding OpenClaw's install) becomes an empty, passable tmpfs.
  for (const p of [workspace, ...candidates]) {
    const barrier = firstBarrier(p, user);
    if (barrier && !SYSTEM.test(barrier) && ![...covers.keys()].some((c) => isUnder(barrier, c))) covers.set(barrier, '0755');
  }
  // Only what a cover hides is bound back; a read inside another read comes with it.
  const covered = (p: string): boolean => [...covers.keys()].some((c) => isUnder(p, c) && p !== c);
  const reads = candidates.filter(covered);
  const outer = reads.filter((p) => !reads.some((q) => q !== p && isUnder(p, q)));
  const ops: Op[] = [
    ...[...covers].map(([p, mode]): Op => ({ kind: 'cover', path: p, mode })),
    { kind: 'place', path: workspace, ro: false },
    ...outer.map((p): Op => ({ kind: 'place', path: p, ro: true })),
  ];
  // Outer paths first (stable): a cover, then what is bound back under it, then a cover under that
  // (DATA_DIR inside a bound-back checkout), then the workspace inside that cover.
  return ops.map((op, i) => ({ op, i })).sort((a, b) => depth(a.op.path) - depth(b.op.path) || a.i - b.i).map((x) => x.op);
}

/** `[file, args]` that runs `command` in the sandbox (`unshare` forks; its child is the namespace's pid 1). */
export function sandboxCommand(settings: SandboxSettings, target: SandboxTarget, command: { file: string; args: readonly string[] }): { file: string; args: string[] } {
  const user = sandboxUser(settings);
  const ops = sandboxOps(settings, target);
  const places = ops.filter((op) => op.kind === 'place');
  const args = [
    ...(user ? [] : ['--user', '--map-root-user']),
    '--fork', '--kill-child', '--pid', '--mount-proc', '--mount', '--ipc',
    'sh', SCRIPT, user ? String(user.uid) : '-', user ? String(user.gid) : '-', path.resolve(target.workspace),
  ];
  for (const p of places) args.push('stage', p.path);
  for (const op of ops) {
    if (op.kind === 'cover') args.push('cover', op.path, op.mode);
    else args.push('place', String(places.indexOf(op) + 1), op.path, op.ro ? 'ro' : 'rw');
  }
  args.push('--', command.file, ...command.args);
  return { file: 'unshare', args };
}

/**
 * What a program reads besides its workspace: the command's file and absolute paths among its
 * arguments (in a `sh -c` line too), each taken as its package (the directory above
 * `node_modules`) or its directory; and this repository. Covered ones are bound back read-only.
 */
export function programReads(command: { file: string; args: readonly string[] }): string[] {
  const found = new Set<string>([CODE_ROOT]);
  const words = [command.file, ...command.args.flatMap((a) => a.match(/(?:file:\/\/)?\/[^\s'"`;|&<>()$]+/g) ?? [])];
  for (const word of words) {
    let p = word.startsWith('file://') ? safeFileUrl(word) : word;
    if (!p || !path.isAbsolute(p)) continue;
    p = path.resolve(p);
    const nm = p.indexOf('/node_modules/');
    if (nm > 0) {
      found.add(p.slice(0, nm));
      continue;
    }
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      // a path still to be created: its directory
    }
    found.add(isDir ? p : path.dirname(p));
  }
  return [...found].filter((p) => p !== '/');
}

function safeFileUrl(u: string): string | undefined {
  try {
    return fileURLToPath(u);
  } catch {
    return undefined;
  }
}

/**
 * Before the start (after the restore, which the shim does as root): everything in the workspace
 * the agent's user does not own becomes its, but the shim's own `scratch` entries (kept root's,
 * 0700). The workspace and the profile's state root (`stateDir`) stay root's, group-writable with
 * the sticky bit: the agent creates files there but cannot swap the shim's scratch dir or the state
 * root for a link the shim (root) would follow at the next restore or checkpoint. Symbolic links
 * are never followed; a hard-linked file not the agent's (a link it made to a file outside) is left.
 */
export function prepareWorkspace(workspace: string, user: { uid: number; gid: number }, o: { scratch: readonly string[]; stateDir: string }): void {
  const shared = new Set([path.resolve(workspace), path.resolve(workspace, o.stateDir)]);
  const share = (dir: string): void => {
    chownSync(dir, 0, user.gid);
    chmodSync(dir, 0o1770);
  };
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      const st = lstatSync(p);
      if (dir === workspace && o.scratch.includes(entry.name)) {
        if (st.isDirectory() && st.uid === 0) chmodSync(p, 0o700);
        continue;
      }
      if (shared.has(p) && st.isDirectory()) {
        share(p);
        walk(p);
        continue;
      }
      if (!st.isDirectory() && !st.isSymbolicLink() && st.nlink > 1 && st.uid !== user.uid) continue;
      if (st.uid !== user.uid || st.gid !== user.gid) chownSync(p, user.uid, user.gid);
      if (st.isDirectory()) walk(p);
    }
  };
  share(workspace);
  walk(workspace);
}

export type SandboxProbe = { ok: true } | { ok: false; reason: string };

/**
 * Runs the real sandbox once on a scratch directory: the agent's stand-in must not see a file of
 * the hidden directory and must write its workspace. The first line the tools printed is the reason.
 */
export function probeSandbox(settings: Omit<SandboxSettings, 'hide'>): SandboxProbe {
  if (process.platform !== 'linux') return { ok: false, reason: `namespaces are Linux only (this is ${process.platform})` };
  for (const tool of ['unshare', 'setpriv']) {
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) return { ok: false, reason: `util-linux ${tool} not found` };
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-sandbox-probe-'));
  try {
    const workspace = path.join(dir, 'workspace');
    mkdirSync(workspace);
    writeFileSync(path.join(dir, 'hidden'), 'x');
    const full = { ...settings, hide: [dir] };
    const user = sandboxUser(full);
    if (user) prepareWorkspace(workspace, user, { scratch: [], stateDir: '' });
    const run = sandboxCommand(full, { workspace, reads: [] }, {
      file: '/bin/sh', args: ['-c', 'test ! -e "$1" && echo ok > "$2/probe"', 'sh', path.join(dir, 'hidden'), workspace],
    });
    const out = spawnSync(run.file, run.args, { cwd: '/', encoding: 'utf8', timeout: 10_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    const wrote = existsSync(path.join(workspace, 'probe')) && readFileSync(path.join(workspace, 'probe'), 'utf8') === 'ok\n';
    if (out.status === 0 && wrote) return { ok: true };
    const said = `${out.stderr ?? ''}`.split('\n').map((l) => l.trim()).find(Boolean);
    return { ok: false, reason: said ? said.slice(0, 200) : out.error ? out.error.message : `the probe exited with ${out.status ?? out.signal}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
