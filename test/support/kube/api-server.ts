/**
 * A stand-in kube-apiserver on node:http for tests: the REST paths, JSON shapes, status codes and
 * Status errors of the real one for what the platform uses (core/v1 pods, secrets,
 * persistentvolumeclaims, namespaces, nodes; watches with bookmarks and history expiry), with
 * bearer-token auth. Clients use it exactly as a cluster, through `kubeConfig()`. Every request is
 * recorded (`requests`), watches are counted per resource (`watchStats`).
 *
 * Production behaviours are knobs (behaviour.ts has the full list of what is and is not modelled):
 * `KubeApiServer.start({ behaviour })` and `api.behaviour.set({...})` at any time: scheduling
 * delays and node provisioning (control-plane.ts), image and crash faults (pod-worker.ts),
 * admission refusals and RBAC (admission.ts), latency per verb, on the scaled clock `timeScale`.
 * Request faults (429 + Retry-After, 5xx, hung requests, connection resets): `api.faults.add()`
 * (faults.ts). Storage semantics: store.ts; watches: watch-stream.ts; nodes that run the pods:
 * kubelet.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { ApiError, apiVersionOf, badRequest, failure, resourceType, type KubeObject, type ResourceType, type StatusReason } from './objects.js';
import { ObjectStore, type DeleteOptions } from './store.js';
import { startWatch } from './watch-stream.js';
import { ClusterBehaviour, type BehaviourOptions, type Verb } from './behaviour.js';
import { FaultInjector, DEFAULT_REASONS } from './faults.js';
import { admitPod, authorize } from './admission.js';
import { ControlPlane } from './control-plane.js';

export interface KubeApiServerOptions {
  host?: string;
  port?: number;
  /** The bearer token clients must send; random by default. */
  token?: string;
  /** Namespaces that exist from the start besides default, kube-system, kube-public, kube-node-lease. */
  namespaces?: string[];
  /** How the cluster behaves (behaviour.ts); default instant and permissive. */
  behaviour?: BehaviourOptions;
}

export interface RecordedRequest {
  method: string;
  /** The API verb, once the path is understood. */
  verb?: Verb;
  /** The URL path, without the query. */
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
  /** The decoded JSON body, the raw text when not JSON, undefined when empty. */
  body: unknown;
  /** The status code answered (for a watch: 200 when the stream started; 0: hung or reset). */
  status?: number;
}

/** Watch streams of one resource: open now, started since the server started, answered 410 Expired. */
export interface WatchStats { open: number; started: number; expired: number }

interface Target { rt: ResourceType; scope: string | undefined; name: string | undefined; sub: string | undefined; watch: boolean; verb: Verb }

const JSON_TYPES = /^application\/(json|merge-patch\+json|strategic-merge-patch\+json|json-patch\+json)$/;
const MAX_BODY = 3 * 1024 * 1024;
const NOT_FOUND = 'the server could not find the requested resource';

export class KubeApiServer {
  readonly requests: RecordedRequest[] = [];
  /** Request faults: 429/5xx/hang/reset rules (faults.ts). */
  readonly faults = new FaultInjector();
  /** The scheduler and node lifecycle controller (control-plane.ts). */
  readonly controlPlane: ControlPlane;
  private readonly watches = new Map<{ stop(): void }, string>();
  private readonly watchesStarted = new Map<string, number>();
  private readonly watchesExpired = new Map<string, number>();

  private constructor(private readonly server: Server, readonly url: string, readonly token: string, readonly store: ObjectStore, readonly behaviour: ClusterBehaviour) {
    store.retention = () => ({ events: behaviour.current.watch.historyEvents, ms: behaviour.ms(behaviour.current.watch.historyS) });
    this.controlPlane = new ControlPlane(store, behaviour);
  }

  static async start(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const behaviour = new ClusterBehaviour(options.behaviour);
    const store = new ObjectStore(['default', 'kube-system', 'kube-public', 'kube-node-lease', ...(options.namespaces ?? ['tenants'])]);
    const server = createServer();
    const host = options.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const api = new KubeApiServer(server, `http://${host}:${port}`, options.token ?? randomBytes(16).toString('hex'), store, behaviour);
    server.on('request', (req, res) => void api.handle(req, res));
    return api;
  }

  /** A client configuration for this server, as a kubeconfig with a token user would give. */
  kubeConfig(namespace?: string): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'stand-in', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'stand-in-user', token: this.token }],
      contexts: [{ name: 'stand-in', cluster: 'stand-in', user: 'stand-in-user', ...(namespace ? { namespace } : {}) }],
      currentContext: 'stand-in',
    });
    return kc;
  }

  /** Writes a kubeconfig file (JSON is valid YAML) for code that loads KUBECONFIG; returns the path. */
  writeKubeconfig(file: string, namespace?: string): string {
    writeFileSync(file, this.kubeConfig(namespace).exportConfig(), { mode: 0o600 });
    return file;
  }

  /** The next request matching method (or '*') and path fails with this status (faults.add, once). */
  failNext(method: string, path: RegExp, status: number, reason?: StatusReason, message?: string): void {
    this.faults.add({ method, path, status, reason: reason ?? DEFAULT_REASONS[status], ...(message !== undefined ? { message } : {}) });
  }

  /** Adds labels to a namespace (e.g. pod-security.kubernetes.io/enforce=restricted, see admission.ts). */
  labelNamespace(namespace: string, labels: Record<string, string>): void {
    const namespaces = resourceType('', 'v1', 'namespaces') as ResourceType;
    if (!this.store.mutate(namespaces, '', namespace, (n) => void (n.metadata.labels = { ...n.metadata.labels, ...labels }))) {
      throw new Error(`stand-in: no namespace ${namespace}`);
    }
  }

  /** Watch streams currently open. */
  get openWatches(): number {
    return this.watches.size;
  }

  /** Per resource (`pods`, `nodes`...): watch streams open now and started so far. */
  watchStats(resource: string): WatchStats {
    return {
      open: [...this.watches.values()].filter((r) => r === resource).length,
      started: this.watchesStarted.get(resource) ?? 0,
      expired: this.watchesExpired.get(resource) ?? 0,
    };
  }

  /** Ends every open watch stream (as an apiserver restart or its watch timeout would); clients reconnect. */
  closeWatches(): void {
    for (const w of [...this.watches.keys()]) w.stop();
  }

  async close(): Promise<void> {
    this.controlPlane.close();
    for (const w of [...this.watches.keys()]) w.stop();
    this.faults.releaseHung();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private send(res: ServerResponse, rec: RecordedRequest, status: number, body: unknown, headers: Record<string, string> = {}): void {
    rec.status = status;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Content-Length': String(Buffer.byteLength(text)), ...headers });
    res.end(text);
  }

  private async readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY) throw failure(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728');
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const method = (req.method ?? 'GET').toUpperCase();
    const contentType = req.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
    const rec: RecordedRequest = { method, path: url.pathname, query: Object.fromEntries(url.searchParams), contentType, body: undefined };
    this.requests.push(rec);
    try {
      const raw = await this.readBody(req);
      if (raw !== '') rec.body = raw;
      if (req.headers.authorization !== `Bearer ${this.token}`) {
        throw failure(401, 'Unauthorized', 'Unauthorized');
      }
      if (url.pathname === '/version' && method === 'GET') {
        return this.send(res, rec, 200, { major: '1', minor: '31', gitVersion: 'v1.31.0-stand-in', platform: 'linux/amd64' });
      }
      const target = this.parse(method, url);
      rec.verb = target.verb;
      const latency = this.behaviour.current.latencyMs[target.verb] ?? 0;
      if (latency > 0) await sleep(latency);
      // API Priority and Fairness (429) and server trouble come before authorization and admission.
      const fault = this.faults.take(method, target.verb, url.pathname);
      if (fault.kind === 'reset') {
        rec.status = 0;
        FaultInjector.reset(req);
        return;
      }
      if (fault.kind === 'hang') {
        rec.status = 0;
        this.faults.hold(req, res);
        return;
      }
      const held = fault.kind === 'apply-then-hang' && target.verb !== 'watch';
      if (fault.kind === 'error') {
        const retry = fault.retryAfterS !== undefined ? { 'Retry-After': String(fault.retryAfterS) } : undefined;
        return this.send(res, rec, fault.error.code, fault.error.status, retry);
      }
      authorize(this.behaviour.current, target.verb, target.rt, target.scope === '' ? undefined : target.scope, target.name);
      if (raw !== '') {
        if (contentType !== undefined && !JSON_TYPES.test(contentType)) {
          throw failure(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/strategic-merge-patch+json (stand-in: got ${contentType})`);
        }
        try {
          rec.body = JSON.parse(raw);
        } catch {
          throw badRequest(`the body of the request could not be decoded as JSON: ${raw.slice(0, 60)}`);
        }
      }
      if (url.searchParams.has('dryRun')) throw badRequest('stand-in apiserver: dryRun is not supported');
      if (held) {
        // Done, but the answer goes nowhere; the client waits until it gives up.
        this.faults.hold(req, res);
        const sink = { writeHead: () => sink, end: () => undefined } as unknown as ServerResponse;
        this.route(target, url, contentType ?? '', rec, sink);
        rec.status = 0;
        return;
      }
      this.route(target, url, contentType ?? '', rec, res);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof ApiError) this.send(res, rec, err.code, err.status);
      else this.send(res, rec, 500, failure(500, 'InternalError', `stand-in apiserver: ${(err as Error).message}`).status);
    }
  }

  /** The resource, scope, name and verb a request addresses (404 for anything not served). */
  private parse(method: string, url: URL): Target {
    const parts = url.pathname.split('/').filter((p) => p !== '').map(decodeURIComponent);
    let group: string;
    let rest: string[];
    if (parts[0] === 'api' && parts[1] === 'v1') [group, rest] = ['', parts.slice(2)];
    else if (parts[0] === 'apis' && parts.length >= 3) [group, rest] = [parts[1] ?? '', parts.slice(3)];
    else throw failure(404, 'NotFound', NOT_FOUND);
    const version = parts[0] === 'api' ? 'v1' : parts[2] ?? '';
    let watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    if (rest[0] === 'watch') [watch, rest] = [true, rest.slice(1)];
    let rt: ResourceType | undefined;
    let ns: string | undefined;
    let name: string | undefined;
    let sub: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      [ns, rt, name, sub] = [rest[1], resourceType(group, version, rest[2] ?? ''), rest[3], rest[4]];
      if (rt && !rt.namespaced) rt = undefined;
      if (rest.length > 5) rt = undefined;
    } else if (rest.length >= 1 && rest.length <= 2) {
      [rt, name] = [resourceType(group, version, rest[0] ?? ''), rest[1]];
      if (rt?.namespaced && name !== undefined) rt = undefined;
    }
    if (rt === undefined) throw failure(404, 'NotFound', NOT_FOUND);
    const verbs: Record<string, Verb> = name === undefined
      ? { GET: watch ? 'watch' : 'list', POST: 'create', DELETE: 'deletecollection' }
      : { GET: 'get', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
    const verb = verbs[method];
    if (verb === undefined) throw failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    return { rt, scope: rt.namespaced ? ns : '', name, sub, watch, verb };
  }

  private route(target: Target, url: URL, contentType: string, rec: RecordedRequest, res: ServerResponse): void {
    const { rt, scope, name, sub, verb } = target;
    const q = url.searchParams;
    const num = (k: string): number | undefined => {
      const v = q.get(k);
      if (v === null || v === '') return undefined;
      if (!/^-?[0-9]+$/.test(v)) throw badRequest(`invalid value for ${k}: ${v}`);
      return Number(v);
    };
    const selectors = { labelSelector: q.get('labelSelector') ?? undefined, fieldSelector: q.get('fieldSelector') ?? undefined };

    if (name === undefined) {
      if (verb === 'watch') {
        const allowWatchBookmarks = q.get('allowWatchBookmarks') === 'true';
        const w = startWatch(this.store, {
          rt, namespace: scope, ...selectors, resourceVersion: q.get('resourceVersion') ?? undefined, timeoutSeconds: num('timeoutSeconds'),
          allowWatchBookmarks, bookmarkEveryMs: this.behaviour.ms(this.behaviour.current.watch.bookmarkEveryS),
        }, res);
        rec.status = 200;
        this.watches.set(w, rt.resource);
        this.watchesStarted.set(rt.resource, (this.watchesStarted.get(rt.resource) ?? 0) + 1);
        if (w.expired) this.watchesExpired.set(rt.resource, (this.watchesExpired.get(rt.resource) ?? 0) + 1);
        void w.done.then(() => this.watches.delete(w));
        return;
      }
      if (verb === 'list') {
        const list = this.store.list(rt, scope, { ...selectors, limit: num('limit'), continue: q.get('continue') ?? undefined });
        const metadata: Record<string, unknown> = { resourceVersion: list.resourceVersion };
        if (list.continue !== undefined) Object.assign(metadata, { continue: list.continue, remainingItemCount: list.remainingItemCount });
        const items = list.items.map(({ kind: _k, apiVersion: _a, ...item }) => item);
        return this.send(res, rec, 200, { kind: rt.listKind, apiVersion: apiVersionOf(rt), metadata, items });
      }
      if (scope === undefined) throw failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      if (verb === 'create') {
        const admit = rt.kind === 'Pod' ? (obj: KubeObject) => admitPod(this.behaviour.current, this.store, scope, obj) : undefined;
        return this.send(res, rec, 201, this.store.create(rt, scope, rec.body, admit));
      }
      const items = this.store.deleteCollection(rt, scope, selectors, this.deleteOptions(q, rec.body));
      return this.send(res, rec, 200, { kind: rt.listKind, apiVersion: apiVersionOf(rt), metadata: { resourceVersion: String(this.store.currentRv()) }, items });
    }
    if (scope === undefined) throw failure(404, 'NotFound', NOT_FOUND);
    if (sub !== undefined) {
      if (rt.kind === 'Pod' && sub === 'status' && verb === 'get') return this.send(res, rec, 200, this.store.get(rt, scope, name));
      throw failure(404, 'NotFound', NOT_FOUND);
    }
    switch (verb) {
      case 'get': return this.send(res, rec, 200, this.store.get(rt, scope, name));
      case 'update': return this.send(res, rec, 200, this.store.replace(rt, scope, name, rec.body));
      case 'patch': {
        if (rec.body === undefined) throw badRequest('the body of the request was empty');
        return this.send(res, rec, 200, this.store.patch(rt, scope, name, contentType, rec.body));
      }
      default: {
        const { object, removed } = this.store.delete(rt, scope, name, this.deleteOptions(q, rec.body));
        if (rt.returnDeletedObject || !removed) return this.send(res, rec, 200, object);
        return this.send(res, rec, 200, {
          kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success',
          details: { name, ...(rt.group === '' ? {} : { group: rt.group }), kind: rt.resource, uid: object.metadata.uid },
        });
      }
    }
  }

  private deleteOptions(q: URLSearchParams, body: unknown): DeleteOptions {
    const options: DeleteOptions = {};
    const grace = q.get('gracePeriodSeconds');
    if (grace !== null && grace !== '') options.gracePeriodSeconds = Number(grace);
    if (body !== undefined && body !== null && typeof body === 'object') {
      const b = body as { gracePeriodSeconds?: unknown; preconditions?: { resourceVersion?: unknown; uid?: unknown } };
      if (typeof b.gracePeriodSeconds === 'number') options.gracePeriodSeconds = b.gracePeriodSeconds;
      const pre = b.preconditions;
      if (pre && typeof pre === 'object') {
        options.preconditions = {};
        if (typeof pre.resourceVersion === 'string') options.preconditions.resourceVersion = pre.resourceVersion;
        if (typeof pre.uid === 'string') options.preconditions.uid = pre.uid;
      }
    }
    if (options.gracePeriodSeconds !== undefined && !Number.isInteger(options.gracePeriodSeconds)) throw badRequest('gracePeriodSeconds must be an integer');
    return options;
  }
}

export type { KubeObject };
