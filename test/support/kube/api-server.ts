/**
 * A stand-in kube-apiserver on node:http for tests: the REST paths, JSON shapes, status codes and
 * Status errors of the real one for what a tenant runtime uses (core/v1 pods, secrets,
 * persistentvolumeclaims, namespaces; coordination.k8s.io/v1 leases; watches; pod logs), with
 * bearer-token auth. Clients use it exactly as a cluster, through `kubeConfig()`. Every request is
 * recorded (`requests`) and faults can be injected (`failNext`). Storage semantics: store.ts;
 * watches: watch-stream.ts; a simulated kubelet that runs the pods: kubelet.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { ApiError, apiVersionOf, badRequest, failure, resourceType, type KubeObject, type ResourceType, type StatusReason } from './objects.js';
import { ObjectStore, type DeleteOptions } from './store.js';
import { startWatch } from './watch-stream.js';

export interface KubeApiServerOptions {
  host?: string;
  port?: number;
  /** The bearer token clients must send; random by default. */
  token?: string;
  /** Namespaces that exist from the start besides default, kube-system, kube-public, kube-node-lease. */
  namespaces?: string[];
}

export interface RecordedRequest {
  method: string;
  /** The URL path, without the query. */
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
  /** The decoded JSON body, the raw text when not JSON, undefined when empty. */
  body: unknown;
  /** The status code answered (for a watch: 200 when the stream started). */
  status?: number;
}

interface Fault { method: string; path: RegExp; status: number; reason: StatusReason | undefined; message: string | undefined }

/** Provides a container's log text, or undefined while it has not started. */
export type LogSource = (namespace: string, pod: string, container: string | undefined) => string | undefined;

const JSON_TYPES = /^application\/(json|merge-patch\+json|strategic-merge-patch\+json|json-patch\+json)$/;
const MAX_BODY = 3 * 1024 * 1024;
const DEFAULT_CODES: Record<number, StatusReason> = {
  400: 'BadRequest', 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict', 410: 'Expired', 422: 'Invalid',
  429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout',
};

export class KubeApiServer {
  readonly requests: RecordedRequest[] = [];
  private readonly faults: Fault[] = [];
  private readonly watches = new Set<{ stop(): void }>();
  private logSource: LogSource | undefined;

  private constructor(private readonly server: Server, readonly url: string, readonly token: string, readonly store: ObjectStore) {}

  static async start(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const store = new ObjectStore(['default', 'kube-system', 'kube-public', 'kube-node-lease', ...(options.namespaces ?? ['tenants'])]);
    const server = createServer();
    const host = options.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const api = new KubeApiServer(server, `http://${host}:${port}`, options.token ?? randomBytes(16).toString('hex'), store);
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

  /** The next request matching method (or '*') and path fails with this status; faults queue up. */
  failNext(method: string, path: RegExp, status: number, reason?: StatusReason, message?: string): void {
    this.faults.push({ method: method.toUpperCase(), path, status, reason: reason ?? DEFAULT_CODES[status], message });
  }

  /** Where GET .../pods/<name>/log reads from (the kubelet sets this). */
  setLogSource(source: LogSource | undefined): void {
    this.logSource = source;
  }

  /** Watch streams currently open. */
  get openWatches(): number {
    return this.watches.size;
  }

  /** Ends every open watch stream (as an apiserver restart or its watch timeout would); clients reconnect. */
  closeWatches(): void {
    for (const w of [...this.watches]) w.stop();
  }

  async close(): Promise<void> {
    for (const w of [...this.watches]) w.stop();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private send(res: ServerResponse, rec: RecordedRequest, status: number, body: unknown): void {
    rec.status = status;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Content-Length': Buffer.byteLength(text) });
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
      const faultAt = this.faults.findIndex((f) => (f.method === '*' || f.method === method) && f.path.test(url.pathname));
      if (faultAt >= 0) {
        const [f] = this.faults.splice(faultAt, 1);
        if (f) throw failure(f.status, f.reason, f.message ?? `injected failure (${f.status})`);
      }
      if (raw !== '') {
        if (contentType !== undefined && !JSON_TYPES.test(contentType)) {
          throw failure(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (stand-in: got ${contentType})`);
        }
        try {
          rec.body = JSON.parse(raw);
        } catch {
          throw badRequest(`the body of the request could not be decoded as JSON: ${raw.slice(0, 60)}`);
        }
      }
      if (url.searchParams.has('dryRun')) throw badRequest('stand-in apiserver: dryRun is not supported');
      this.route(method, url, contentType ?? '', rec, res);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof ApiError) this.send(res, rec, err.code, err.status);
      else this.send(res, rec, 500, failure(500, 'InternalError', `stand-in apiserver: ${(err as Error).message}`).status);
    }
  }

  private route(method: string, url: URL, contentType: string, rec: RecordedRequest, res: ServerResponse): void {
    const parts = url.pathname.split('/').filter((p) => p !== '').map(decodeURIComponent);
    if (parts.length === 1 && parts[0] === 'version' && method === 'GET') {
      return this.send(res, rec, 200, { major: '1', minor: '31', gitVersion: 'v1.31.0-stand-in', platform: 'linux/amd64' });
    }
    let group: string;
    let rest: string[];
    if (parts[0] === 'api' && parts[1] === 'v1') [group, rest] = ['', parts.slice(2)];
    else if (parts[0] === 'apis' && parts.length >= 3) [group, rest] = [parts[1] ?? '', parts.slice(3)];
    else throw failure(404, 'NotFound', 'the server could not find the requested resource');
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
    if (rt === undefined) throw failure(404, 'NotFound', 'the server could not find the requested resource');
    const scope = rt.namespaced ? ns : '';
    const q = url.searchParams;
    const num = (k: string): number | undefined => {
      const v = q.get(k);
      if (v === null || v === '') return undefined;
      if (!/^-?[0-9]+$/.test(v)) throw badRequest(`invalid value for ${k}: ${v}`);
      return Number(v);
    };
    const selectors = { labelSelector: q.get('labelSelector') ?? undefined, fieldSelector: q.get('fieldSelector') ?? undefined };

    if (name === undefined) {
      if (method === 'GET' && watch) {
        const w = startWatch(this.store, { rt, namespace: scope, ...selectors, resourceVersion: q.get('resourceVersion') ?? undefined, timeoutSeconds: num('timeoutSeconds') }, res);
        rec.status = 200;
        this.watches.add(w);
        void w.done.then(() => this.watches.delete(w));
        return;
      }
      if (method === 'GET') {
        const list = this.store.list(rt, scope, { ...selectors, limit: num('limit'), continue: q.get('continue') ?? undefined });
        const metadata: Record<string, unknown> = { resourceVersion: list.resourceVersion };
        if (list.continue !== undefined) Object.assign(metadata, { continue: list.continue, remainingItemCount: list.remainingItemCount });
        const items = list.items.map(({ kind: _k, apiVersion: _a, ...item }) => item);
        return this.send(res, rec, 200, { kind: rt.listKind, apiVersion: apiVersionOf(rt), metadata, items });
      }
      if (method === 'POST' && scope !== undefined) return this.send(res, rec, 201, this.store.create(rt, scope, rec.body));
      if (method === 'DELETE' && scope !== undefined) {
        const items = this.store.deleteCollection(rt, scope, selectors, this.deleteOptions(q, rec.body));
        return this.send(res, rec, 200, { kind: rt.listKind, apiVersion: apiVersionOf(rt), metadata: { resourceVersion: String(this.store.currentRv()) }, items });
      }
      throw failure(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
    }
    if (scope === undefined) throw failure(404, 'NotFound', 'the server could not find the requested resource');
    if (sub !== undefined) return this.subresource(method, rt, scope, name, sub, q, rec, res);
    switch (method) {
      case 'GET': return this.send(res, rec, 200, this.store.get(rt, scope, name));
      case 'PUT': {
        const { object, created } = this.store.replace(rt, scope, name, rec.body);
        return this.send(res, rec, created ? 201 : 200, object);
      }
      case 'PATCH': {
        if (rec.body === undefined) throw badRequest('the body of the request was empty');
        return this.send(res, rec, 200, this.store.patch(rt, scope, name, contentType, rec.body));
      }
      case 'DELETE': {
        const { object, removed } = this.store.delete(rt, scope, name, this.deleteOptions(q, rec.body));
        if (rt.returnDeletedObject || !removed) return this.send(res, rec, 200, object);
        return this.send(res, rec, 200, {
          kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success',
          details: { name, ...(rt.group === '' ? {} : { group: rt.group }), kind: rt.resource, uid: object.metadata.uid },
        });
      }
      default:
        throw failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    }
  }

  private subresource(method: string, rt: ResourceType, ns: string, name: string, sub: string, q: URLSearchParams, rec: RecordedRequest, res: ServerResponse): void {
    if (rt.kind === 'Pod' && sub === 'status' && method === 'GET') return this.send(res, rec, 200, this.store.get(rt, ns, name));
    if (rt.kind !== 'Pod' || sub !== 'log' || method !== 'GET') throw failure(404, 'NotFound', 'the server could not find the requested resource');
    const pod = this.store.get(rt, ns, name);
    const containers = ((pod.spec as { containers?: Array<{ name?: string }> } | undefined)?.containers ?? []).map((c) => c.name ?? '');
    const container = q.get('container') ?? undefined;
    if (container === undefined && containers.length > 1) {
      throw badRequest(`a container name must be specified for pod ${name}, choose one of: [${containers.join(' ')}]`);
    }
    const cname = container ?? containers[0] ?? '';
    if (!containers.includes(cname)) throw badRequest(`container ${cname} is not valid for pod ${name}`);
    const text = this.logSource?.(ns, name, cname);
    if (text === undefined) throw badRequest(`container "${cname}" in pod "${name}" is waiting to start: ContainerCreating`);
    const tail = Number(q.get('tailLines') ?? NaN);
    const out = Number.isInteger(tail) && tail >= 0 ? text.split('\n').slice(-(tail + 1)).join('\n') : text;
    rec.status = 200;
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(out) });
    res.end(out);
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
