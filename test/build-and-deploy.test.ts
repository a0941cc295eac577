/**
 * scripts/build-and-deploy.sh under DRY_RUN with a `kubectl` on PATH that knows which Deployments the
 * release has: the runbook's targets (`orchestrator`, `router`) map to the services that replaced
 * them, and `all` rolls out what is installed without stopping at a disabled dashboard or admin API.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './support/platform.js';

const SCRIPT = path.join(ROOT, 'scripts', 'build-and-deploy.sh');

/** Runs the script with a kubectl that answers `get deployment/<name>` for `installed` only. */
function deploy(args: string[], installed: string[]): { code: number | null; out: string; err: string } {
  const bin = mkdtempSync(path.join(os.tmpdir(), 'ztm-deploy-'));
  try {
    writeFileSync(path.join(bin, 'kubectl'), [
      '#!/bin/sh',
      'for a in "$@"; do case "$a" in deployment/*) name="${a#deployment/}" ;; esac; done',
      `case " ${installed.join(' ')} " in *" $name "*) echo "deployment.apps/$name"; exit 0 ;; esac`,
      'echo "Error from server (NotFound): deployments.apps \\"$name\\" not found" >&2',
      'exit 1',
    ].join('\n'));
    chmodSync(path.join(bin, 'kubectl'), 0o755);
    const res = spawnSync('bash', [SCRIPT, ...args], {
      encoding: 'utf8', timeout: 20_000,
      env: { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, DRY_RUN: '1', ECR_REGISTRY: 'registry.example', AGENT_PROFILE: 'reference' },
    });
    return { code: res.status, out: res.stdout, err: res.stderr };
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
}

const restarted = (out: string): string[] => [...out.matchAll(/rollout restart deployment\/([a-z-]+)/g)].map((m) => m[1] as string);

t.test('all rolls out every installed Deployment and skips a disabled dashboard', async (t) => {
  const run = deploy(['all'], ['ingress', 'forwarder', 'waker', 'janitor', 'pool-keeper']);
  t.equal(run.code, 0, run.err);
  t.same(restarted(run.out), ['ingress', 'forwarder', 'waker', 'janitor', 'pool-keeper']);
  t.match(run.out, /deployment\/dashboard is not installed in tenants: skipped/);
  t.match(run.out, /agent\/Dockerfile/, 'the tenant image is still built after the skipped dashboard');
});

t.test('the Go runbook targets map to the services that replaced them', async (t) => {
  const orchestrator = deploy(['orchestrator'], []);
  t.equal(orchestrator.code, 0, orchestrator.err);
  t.match(orchestrator.out, /orchestrator is the Go system's name: it maps to janitor waker pool-keeper/);
  t.same(restarted(orchestrator.out), ['janitor', 'waker', 'pool-keeper']);
  const router = deploy(['router'], []);
  t.equal(router.code, 0, router.err);
  t.same(restarted(router.out), ['ingress', 'forwarder']);
  t.equal((router.out.match(/docker buildx build/g) ?? []).length, 1, 'one services image build for two rollouts');
});

t.test('the admin API: rolled out by all, by name and by orchestrator when installed, skipped when not', async (t) => {
  const core = ['ingress', 'forwarder', 'waker', 'janitor', 'pool-keeper'];
  const all = deploy(['all'], [...core, 'admin-api']);
  t.equal(all.code, 0, all.err);
  t.same(restarted(all.out), [...core, 'admin-api']);
  const named = deploy(['admin-api'], ['admin-api']);
  t.equal(named.code, 0, named.err);
  t.same(restarted(named.out), ['admin-api']);
  const orchestrator = deploy(['orchestrator'], ['janitor', 'waker', 'pool-keeper', 'admin-api']);
  t.match(orchestrator.out, /maps to janitor waker pool-keeper admin-api/, 'the Go orchestrator\'s tenant API is the admin API');
  t.same(restarted(orchestrator.out), ['janitor', 'waker', 'pool-keeper', 'admin-api']);
  const without = deploy(['orchestrator'], ['janitor', 'waker', 'pool-keeper']);
  t.equal(without.code, 0, without.err);
  t.same(restarted(without.out), ['janitor', 'waker', 'pool-keeper']);
  t.match(without.out, /deployment\/admin-api is not installed in tenants: skipped/);
});

t.test('an unknown target is refused before anything runs', async (t) => {
  const run = deploy(['orchestrater'], []);
  t.equal(run.code, 2);
  t.match(run.err, /unknown target: orchestrater/);
  t.notMatch(run.out, /docker/);
});
