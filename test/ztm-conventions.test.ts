/**
 * The operator conventions of kubectl-style CLIs, on the real `ztm` (cli/ztm.js as a child process):
 * `-o json|table` beside `--json` (the Go CLI's `--output json`), `ztm version`, a completion script
 * that bash really completes with, and `ztm logs` from a local DATA_DIR and through kubectl.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './support/platform.js';

const ZTM = path.join(ROOT, 'cli/ztm.js');
const baseEnv = (extra: Record<string, string> = {}): Record<string, string> => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...extra });
const ztm = (args: string[], env: Record<string, string> = {}) => spawnSync(process.execPath, [ZTM, ...args], { encoding: 'utf8', timeout: 60_000, env: baseEnv(env) });

t.test('-o json, -ojson, --output=json and --json give the same JSON; -o table the text; a bad format is a usage error', async (t) => {
  const json = JSON.parse(ztm(['--json', 'version']).stdout) as { version: string; node: string };
  t.equal(json.node, process.versions.node);
  t.equal(json.version, (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  for (const form of [['-o', 'json'], ['-ojson'], ['--output=json'], ['--output', 'json']]) {
    const r = ztm([...form, 'version']);
    t.equal(r.status, 0, form.join(' '));
    t.same(JSON.parse(r.stdout), json, `${form.join(' ')} prints what --json prints`);
  }
  t.match(ztm(['-o', 'table', 'version']).stdout, /^ztm \d+\.\d+\.\d+ \(node /);
  const bad = ztm(['-o', 'yaml', 'version']);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /invalid --output "yaml": expected json or table/);
});

t.test('the bash completion script completes commands, subcommands and options', async (t) => {
  const script = ztm(['completion', 'bash']);
  t.equal(script.status, 0, script.stderr);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-completion-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'ztm.bash');
  writeFileSync(file, script.stdout);
  const complete = (words: string[]): string[] => {
    const r = spawnSync('bash', ['-c', `source '${file}'; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _ztm; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
    t.equal(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean).sort();
  };
  t.same(complete(['ztm', 'ten']), ['tenant']);
  t.same(complete(['ztm', 'tenant', 'cr']), ['create']);
  t.same(complete(['ztm', 'tenant', 'create', 'alice', '--bot-token']), ['--bot-token', '--bot-token-env', '--bot-token-file']);
  t.ok(complete(['ztm', 'logs', 'alice', '--']).includes('--follow'), 'options of a one-word command');
  t.ok(complete(['ztm', '']).includes('completion'), 'every first word is offered');
  const zsh = ztm(['completion', 'zsh']);
  t.match(zsh.stdout, /^#compdef ztm/);
  const fish = ztm(['completion', 'fish']);
  t.equal(fish.status, 2);
  t.match(fish.stderr, /invalid shell "fish": expected bash or zsh/);
});

t.test('ztm logs reads a local tenant log, --tail bounds it, -f follows it until Ctrl-C', async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-logs-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const log = path.join(dataDir, 'tenants', 'alice', 'agent.log');
  mkdirSync(path.dirname(log), { recursive: true });
  writeFileSync(log, 'one\ntwo\nthree\n');
  const env = { DATA_DIR: dataDir, ZTM_REDIS_URL: 'redis://127.0.0.1:1' };
  t.equal(ztm(['logs', 'alice'], env).stdout, 'one\ntwo\nthree\n');
  t.equal(ztm(['logs', 'alice', '--tail', '2'], env).stdout, 'two\nthree\n');
  const missing = ztm(['logs', 'bob'], env);
  t.equal(missing.status, 1);
  t.match(missing.stderr, /no log for tenant bob/);

  const child = spawn(process.execPath, [ZTM, 'logs', 'alice', '-f', '--tail', '1'], { env: baseEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const until = async (re: RegExp): Promise<void> => {
    for (let i = 0; i < 200 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 50));
  };
  await until(/three\n/);
  appendFileSync(log, 'four\n');
  await until(/four\n/);
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  t.equal(out, 'three\nfour\n', 'the last line, then what was appended');
  t.equal(code, 0, 'Ctrl-C ends a follow cleanly');
});

t.test('ztm logs on Kubernetes asks kubectl for the tenant pod log in the tenants namespace', async (t) => {
  const bin = mkdtempSync(path.join(os.tmpdir(), 'ztm-kubectl-logs-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  writeFileSync(path.join(bin, 'kubectl'), '#!/bin/sh\nif [ "$1" = version ]; then exit 0; fi\nprintf "%s\\n" "$@"\n');
  chmodSync(path.join(bin, 'kubectl'), 0o755);
  const r = ztm(['logs', 'alice', '-f', '--tail', '50'], { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, ZTM_KUBE_CONTEXT: 'prod', DATA_DIR: bin });
  t.equal(r.status, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), ['--context', 'prod', '-n', 'tenants-agents', 'logs', '-l', 'tenant=alice', '--all-containers', '--prefix=false', '--tail=50', '-f']);
});
