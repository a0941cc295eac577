/**
 * What test/hostile-agent.test.ts needs around test/support/hostile-agent.mjs: the AGENT_COMMAND that
 * runs it for the attacker and the reference agent for the victim, the loopback listeners of the
 * platform's process tree (the targets the test names to it), its report, and the verdict: every
 * finding that no runtime-specific, reasoned rule accepts is an open door, reported by name.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { ROOT } from './platform.js';

export const HOSTILE_AGENT = path.join(ROOT, 'test/support/hostile-agent.mjs');
export const REPORT_PREFIX = 'HOSTILE-REPORT ';

/** Probe families the report must list: "found nothing" must mean "probed, found nothing". */
export const REQUIRED_PROBES = ['own-env', 'proc', 'fs', 'targets', 'redis', 'dynamodb', 's3', 'shim-control', 'agent-webhook'] as const;

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * One AGENT_COMMAND (AGENT_PROFILE=custom) for every tenant: the victim runs the reference agent
 * (the platform's own agent, whose memory is its brain.db), every other tenant the hostile script.
 * The victim is the reference agent, not the hostile script idling, because what it must refuse
 * (a direct call from another tenant's agent) is the platform's agent's behaviour to prove.
 */
export function hostileAgentCommand(victim: string): string {
  const node = q(process.execPath);
  const reference = `exec ${node} --import ${q(import.meta.resolve('tsx'))} ${q(path.join(ROOT, 'agent/reference-agent.ts'))}`;
  return `if [ "$TENANT_ID" = ${q(victim)} ]; then ${reference}; else exec ${node} ${q(HOSTILE_AGENT)}; fi`;
}

/** `pid → ppid` of every process now. */
function parents(): Map<number, number> {
  const map = new Map<number, number>();
  for (const n of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(n)) continue;
    try {
      const stat = readFileSync(`/proc/${n}/stat`, 'utf8');
      map.set(Number(n), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  return map;
}

/** The roots and every descendant of theirs. */
export function processTree(roots: number[]): Set<number> {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parents()) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  const tree = new Set<number>();
  const stack = [...roots];
  while (stack.length > 0 && tree.size < 2000) {
    const pid = stack.pop() as number;
    if (tree.has(pid)) continue;
    tree.add(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** `host:port` of every IPv4 loopback (or any-address) TCP listener of these processes (from `ss`). */
export function listenersOf(pids: Set<number>): string[] {
  const out = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' });
  const found = new Set<string>();
  for (const line of out.split('\n')) {
    const cols = line.trim().split(/\s+/);
    const local = cols[3];
    if (!local) continue;
    const owners = [...line.matchAll(/pid=([0-9]+)/g)].map((m) => Number(m[1]));
    if (!owners.some((p) => pids.has(p))) continue;
    const m = /^(127\.[0-9.]+|0\.0\.0\.0|\*):([0-9]+)$/.exec(local);
    if (m) found.add(`${m[1] === '127.0.0.1' || m[1]?.startsWith('127.') ? m[1] : '127.0.0.1'}:${m[2]}`);
  }
  return [...found].sort();
}

export interface HostileFinding {
  n: string;
  /** The target (host:port, or a path label) it concerns. */
  t?: string;
  /** Where the secret that opened it came from (own-env, own-shim, proc:<role>, file:<name>, derived:<origin>...). */
  v?: string;
}

export interface HostileReport {
  v: 1;
  tenant: string;
  probes: string[];
  findings: HostileFinding[];
  /** `<probe>: what it tried` (while the answer has room). */
  details?: string[];
  truncated?: boolean;
}

/** The report in an answer; throws with the answer's start when there is none. */
export function parseReport(answer: string): HostileReport {
  const i = answer.indexOf(REPORT_PREFIX);
  if (i < 0) throw new Error(`the attacker's answer holds no report: ${answer.slice(0, 200)}`);
  return JSON.parse(answer.slice(i + REPORT_PREFIX.length)) as HostileReport;
}

/** A known, accepted finding: what it matches and why it is not a door. */
export interface AcceptRule {
  why: string;
  match: (f: HostileFinding) => boolean;
}

export const describeFinding = (f: HostileFinding): string => `${f.n}${f.t ? ` @${f.t}` : ''}${f.v ? ` (via ${f.v})` : ''}`;

/** One assertion per open door, by name; one pass when there is none. Returns the open doors. */
export function assertNoOpenDoor(t: Test, report: HostileReport, accepted: readonly AcceptRule[]): HostileFinding[] {
  const open: HostileFinding[] = [];
  for (const f of report.findings) {
    const rule = accepted.find((r) => r.match(f));
    if (rule) t.comment(`accepted: ${describeFinding(f)}: ${rule.why}`);
    else open.push(f);
  }
  for (const f of open) t.fail(`door open: ${describeFinding(f)}`);
  if (open.length === 0) t.pass(`no door open (${report.findings.length} finding(s), all accepted with a reason)`);
  t.notOk(report.truncated, 'the report was not truncated');
  return open;
}

/** Secrets learnt only because the stand-in shares one host: another process's environment or files. */
export const viaSharedHost = (via: string | undefined): boolean =>
  via !== undefined && /^(derived:)*(proc:(?!own-shim)|file:|dynamodb)/.test(via);

/** Accepted in both runtimes: what the platform gives an agent of its own tenant, on purpose. */
export const OWN_ENV_ACCEPTED: readonly AcceptRule[] = [
  { why: 'the model provider\'s key: the agent calls its model with it (docs/security.md: platform-wide, known)', match: (f) => f.n === 'env:AGENT_LLM_API_KEY' },
  { why: 'the SHA-256 of its own tenant\'s delivery bearer: it checks deliveries with it, it opens nothing', match: (f) => f.n === 'env:AGENT_TOKEN_SHA256' },
];
