/**
 * The stand-in apiserver's storage, with etcd's and the registry's semantics: one global
 * resourceVersion counter (string on the wire), optimistic concurrency, no-op writes that do not
 * bump the version, graceful deletion (pods on a node get a deletionTimestamp; the kubelet
 * removes them), finalizers, an ordered event history that watches replay from a version (kept for
 * a bounded window, like the watch cache and etcd compaction: `retention`), and the
 * garbage collector's ownerReferences rule: an object whose owners are all gone (by uid) is deleted
 * (at once here; the real collector is asynchronous), also when it is created with no owner left.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import {
  alreadyExists, applyCreateDefaults, badRequest, clone, conflict, failure, generateSuffix, invalid, labelCauses,
  nameProblem, normalizeSecret, notFound, RESOURCES, specCauses, timestamp, apiVersionOf,
  type Cause, type KubeObject, type ResourceType,
} from './objects.js';
import { fieldSelector, labelSelector } from './selectors.js';
import { applyPatch } from './patch.js';

export interface StoreEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  rv: number;
  rt: ResourceType;
  namespace: string;
  object: KubeObject;
  /** The state before a MODIFIED (for selector transitions) or the object a DELETED removed. */
  prev?: KubeObject;
  /** When it happened (ms). */
  at: number;
}

/** How much history is kept: at most `events`, none older than `ms`. */
export interface Retention { events: number; ms: number }

export interface ListOptions { labelSelector?: string; fieldSelector?: string; limit?: number; continue?: string }
export interface ListResult { items: KubeObject[]; resourceVersion: string; continue?: string; remainingItemCount?: number }
export interface DeleteOptions { gracePeriodSeconds?: number; preconditions?: { resourceVersion?: string; uid?: string } }
export interface DeleteResult { object: KubeObject; removed: boolean }

const NAMESPACES = RESOURCES.find((r) => r.resource === 'namespaces') as ResourceType;
const rec = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : {});
const canonical = (v: unknown): string => JSON.stringify(v, (_k, val: unknown) =>
  val !== null && typeof val === 'object' && !Array.isArray(val)
    ? Object.fromEntries(Object.keys(val).sort().map((k) => [k, (val as Record<string, unknown>)[k]]))
    : val);

export class ObjectStore extends EventEmitter {
  private rv = 1000;
  private readonly objects = new Map<string, KubeObject>();
  readonly history: StoreEvent[] = [];
  /** Watches from a version below this get 410 Expired (see compact() and `retention`). */
  compactedRv = 0;
  /** The history window; the API server sets it from its behaviour (watch.historyEvents/historyS). */
  retention: () => Retention = () => ({ events: Infinity, ms: Infinity });

  constructor(namespaces: readonly string[]) {
    super();
    this.setMaxListeners(0);
    for (const ns of namespaces) this.create(NAMESPACES, '', { metadata: { name: ns } });
  }

  currentRv(): number {
    return this.rv;
  }

  private key(rt: ResourceType, ns: string, name: string): string {
    return `${rt.resource}.${rt.group}/${rt.namespaced ? ns : ''}/${name}`;
  }

  find(rt: ResourceType, ns: string, name: string): KubeObject | undefined {
    const obj = this.objects.get(this.key(rt, ns, name));
    return obj === undefined ? undefined : clone(obj);
  }

  get(rt: ResourceType, ns: string, name: string): KubeObject {
    const obj = this.find(rt, ns, name);
    if (obj === undefined) throw notFound(rt, name);
    return obj;
  }

  private record(type: StoreEvent['type'], rt: ResourceType, obj: KubeObject, prev?: KubeObject): void {
    const ev: StoreEvent = { type, rv: this.rv, rt, namespace: obj.metadata.namespace ?? '', object: clone(obj), at: Date.now() };
    if (prev !== undefined) ev.prev = clone(prev);
    this.history.push(ev);
    this.expire();
    this.emit('event', ev);
  }

  /** Drops what is outside the retention window; a watch from before it then gets 410. */
  expire(): void {
    const { events, ms } = this.retention();
    const oldest = Date.now() - ms;
    let drop = 0;
    while (drop < this.history.length && (this.history.length - drop > events || (this.history[drop]?.at ?? 0) < oldest)) drop++;
    if (drop === 0) return;
    this.compactedRv = Math.max(this.compactedRv, this.history[drop - 1]?.rv ?? 0);
    this.history.splice(0, drop);
  }

  /** Events with rv > `after`, in order. */
  eventsAfter(after: number): StoreEvent[] {
    let lo = 0;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.history[mid]?.rv ?? 0) <= after) lo = mid + 1;
      else hi = mid;
    }
    return this.history.slice(lo);
  }

  /** Forgets the history (like etcd compaction): watches from an older version get 410. */
  compact(): void {
    this.compactedRv = this.rv;
    this.history.length = 0;
  }

  private validateMeta(rt: ResourceType, obj: KubeObject, name: string): Cause[] {
    const causes: Cause[] = [];
    const problem = nameProblem(name, rt.kind === 'Namespace');
    if (problem !== undefined) causes.push({ field: 'metadata.name', reason: 'FieldValueInvalid', message: problem });
    causes.push(...labelCauses(obj.metadata.labels));
    for (const [k, v] of Object.entries(rec(obj.metadata.annotations))) {
      if (typeof v !== 'string') throw badRequest(`json: cannot unmarshal ${typeof v} into Go struct field ObjectMeta.metadata.annotations of type string (key ${k})`);
    }
    const refs = obj.metadata.ownerReferences;
    if (refs !== undefined) {
      (Array.isArray(refs) ? refs : [refs]).forEach((ref: unknown, i: number) => {
        for (const f of ['apiVersion', 'kind', 'name', 'uid']) {
          const v = rec(ref)[f];
          if (typeof v !== 'string' || v === '') causes.push({ field: `metadata.ownerReferences[${i}].${f}`, reason: 'FieldValueRequired', message: `Required value: ${f} must not be empty` });
        }
      });
    }
    causes.push(...specCauses(rt, obj));
    return causes;
  }

  private checkBody(rt: ResourceType, body: unknown): KubeObject {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(body)}'`);
    const obj = clone(body) as KubeObject;
    if (obj.kind !== undefined && obj.kind !== rt.kind) {
      throw badRequest(`the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${apiVersionOf(rt)}) or kind ${String(obj.kind)} is not ${rt.kind}`);
    }
    obj.metadata = rec(obj.metadata);
    return obj;
  }

  /** `admit`: the admission chain, run after validation (the name is known), before storage. */
  create(rt: ResourceType, ns: string, body: unknown, admit?: (obj: KubeObject) => void): KubeObject {
    const obj = this.checkBody(rt, body);
    const meta = obj.metadata;
    if (rt.namespaced) {
      if (meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== ns) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      if (!this.objects.has(this.key(NAMESPACES, '', ns))) throw notFound(NAMESPACES, ns);
      meta.namespace = ns;
    } else delete meta.namespace;
    if ((meta.name === undefined || meta.name === '') && typeof meta.generateName === 'string' && meta.generateName !== '') {
      meta.name = meta.generateName + generateSuffix();
    }
    const name = typeof meta.name === 'string' ? meta.name : '';
    if (name === '') {
      throw invalid(rt, '', [{ field: 'metadata.name', reason: 'FieldValueRequired', message: 'Required value: name or generateName is required' }]);
    }
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== '') {
      throw failure(500, 'InternalError', 'resourceVersion should not be set on objects to be created');
    }
    if (rt.kind === 'Secret') normalizeSecret(obj);
    const causes = this.validateMeta(rt, obj, name);
    if (causes.length > 0) throw invalid(rt, name, causes);
    admit?.(obj);
    const key = this.key(rt, ns, name);
    if (this.objects.has(key)) throw alreadyExists(rt, name);
    applyCreateDefaults(rt, obj);
    this.rv++;
    obj.apiVersion = apiVersionOf(rt);
    obj.kind = rt.kind;
    obj.metadata = {
      ...meta, uid: randomUUID(), resourceVersion: String(this.rv), creationTimestamp: timestamp(),
    };
    delete obj.metadata.deletionTimestamp;
    delete obj.metadata.deletionGracePeriodSeconds;
    this.objects.set(key, obj);
    this.record('ADDED', rt, obj);
    const created = clone(obj);
    if (this.orphaned(obj)) this.removeNow(rt, ns, name, obj);
    return created;
  }

  /** Has ownerReferences, and none of those owners exists any more (same namespace, kind, name and uid). */
  private orphaned(obj: KubeObject): boolean {
    const refs = obj.metadata.ownerReferences;
    if (!Array.isArray(refs) || refs.length === 0) return false;
    return refs.every((ref: unknown) => {
      const r = rec(ref);
      const type = RESOURCES.find((t) => t.kind === r.kind && apiVersionOf(t) === r.apiVersion);
      if (type === undefined) return true;
      const owner = this.objects.get(this.key(type, obj.metadata.namespace ?? '', String(r.name)));
      return owner === undefined || owner.metadata.uid !== r.uid;
    });
  }

  /** The garbage collector after `gone` was removed: its dependents without another owner go too. */
  private collectDependents(gone: KubeObject): void {
    const uid = gone.metadata.uid;
    if (uid === undefined) return;
    for (const [key, obj] of [...this.objects]) {
      const refs = obj.metadata.ownerReferences;
      if (!Array.isArray(refs) || !refs.some((r: unknown) => rec(r).uid === uid) || !this.orphaned(obj)) continue;
      const type = RESOURCES.find((r) => key.startsWith(`${r.resource}.${r.group}/`));
      if (type) this.removeNow(type, obj.metadata.namespace ?? '', obj.metadata.name ?? '', obj);
    }
  }

  list(rt: ResourceType, ns: string | undefined, options: ListOptions = {}): ListResult {
    const byLabel = labelSelector(options.labelSelector);
    const byField = fieldSelector(rt, options.fieldSelector);
    const prefix = `${rt.resource}.${rt.group}/${ns === undefined || !rt.namespaced ? '' : `${ns}/`}`;
    let after = '';
    if (options.continue !== undefined && options.continue !== '') {
      try {
        const token = JSON.parse(Buffer.from(options.continue, 'base64url').toString()) as { start?: unknown };
        if (typeof token.start !== 'string') throw new Error('bad');
        after = token.start;
      } catch {
        throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
      }
    }
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix) && k > after).sort();
    const matched: Array<[string, KubeObject]> = [];
    for (const k of keys) {
      const obj = this.objects.get(k);
      if (obj && byLabel(obj) && byField(obj)) matched.push([k, obj]);
    }
    const limit = options.limit !== undefined && options.limit > 0 ? options.limit : Infinity;
    const page = matched.slice(0, limit);
    const result: ListResult = {
      items: page.map(([, o]) => clone(o)),
      resourceVersion: String(this.rv),
    };
    if (matched.length > page.length) {
      const last = page[page.length - 1]?.[0] ?? '';
      result.continue = Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: this.rv, start: last })).toString('base64url');
      result.remainingItemCount = matched.length - page.length;
    }
    return result;
  }

  /** PUT: the full object; 409 when metadata.resourceVersion is set and stale. */
  replace(rt: ResourceType, ns: string, name: string, body: unknown): KubeObject {
    const next = this.checkBody(rt, body);
    const current = this.objects.get(this.key(rt, ns, name));
    // None of the served types is created by a PUT (a real server does that for a few, e.g. leases).
    if (current === undefined) throw notFound(rt, name);
    return this.update(rt, ns, name, current, next);
  }

  /** PATCH: applied to the current object, then the same checks as an update. */
  patch(rt: ResourceType, ns: string, name: string, contentType: string, body: unknown): KubeObject {
    const current = this.objects.get(this.key(rt, ns, name));
    if (current === undefined) throw notFound(rt, name);
    const patched = applyPatch(contentType, clone(current), body);
    return this.update(rt, ns, name, current, this.checkBody(rt, patched));
  }

  private nameMismatch(inBody: unknown, inUrl: string): Error {
    return badRequest(`the name of the object (${String(inBody)}) does not match the name on the URL (${inUrl})`);
  }

  private update(rt: ResourceType, ns: string, name: string, current: KubeObject, next: KubeObject): KubeObject {
    const meta = next.metadata;
    if (meta.name !== undefined && meta.name !== name) throw this.nameMismatch(meta.name, name);
    if (rt.namespaced && meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== ns) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    const cur = current.metadata;
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== '' && meta.resourceVersion !== cur.resourceVersion) {
      throw conflict(rt, name);
    }
    if (meta.uid !== undefined && meta.uid !== '' && meta.uid !== cur.uid) {
      throw conflict(rt, name, `Precondition failed: UID in precondition: ${String(meta.uid)}, UID in object meta: ${cur.uid ?? ''}`);
    }
    if (rt.kind === 'Secret') normalizeSecret(next);
    if (rt.kind === 'Pod') {
      const probe: KubeObject = { metadata: {}, spec: clone(next.spec) };
      if (Array.isArray(rec(probe.spec).containers)) applyCreateDefaults(rt, probe);
      next.spec = probe.spec;
    }
    const causes = this.validateMeta(rt, next, name);
    if (rt.kind === 'Pod' && causes.length === 0 && !this.podSpecUpdateAllowed(current.spec, next.spec)) {
      causes.push({
        field: 'spec', reason: 'FieldValueForbidden',
        message: 'Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
      });
    }
    if (causes.length > 0) throw invalid(rt, name, causes);
    // What the registry keeps from the stored object on a main-resource update.
    next.apiVersion = apiVersionOf(rt);
    next.kind = rt.kind;
    next.metadata = {
      ...meta, name, uid: cur.uid, creationTimestamp: cur.creationTimestamp, resourceVersion: cur.resourceVersion,
      ...(rt.namespaced ? { namespace: ns } : {}),
    };
    for (const k of ['deletionTimestamp', 'deletionGracePeriodSeconds', 'generateName'] as const) {
      if (cur[k] === undefined) delete next.metadata[k];
      else (next.metadata as Record<string, unknown>)[k] = cur[k];
    }
    if ('status' in current) next.status = clone(current.status);
    return this.commit(rt, ns, name, current, next);
  }

  private podSpecUpdateAllowed(oldSpec: unknown, newSpec: unknown): boolean {
    const strip = (spec: unknown): unknown => {
      const s = clone(rec(spec));
      delete s.activeDeadlineSeconds;
      delete s.tolerations;
      if (Array.isArray(s.containers)) s.containers = s.containers.map((c: unknown) => ({ ...rec(c), image: undefined }));
      return s;
    };
    return canonical(strip(oldSpec)) === canonical(strip(newSpec));
  }

  /** Stores `next` (bumping the version unless nothing changed); removes it when deletion is complete. */
  private commit(rt: ResourceType, ns: string, name: string, current: KubeObject, next: KubeObject): KubeObject {
    if (canonical(next) === canonical(current)) return clone(current);
    const m = next.metadata;
    // Deletion completes once the finalizers are gone (a pod also needs its grace period over).
    if (m.deletionTimestamp !== undefined && (m.finalizers ?? []).length === 0 && (rt.kind !== 'Pod' || m.deletionGracePeriodSeconds === 0)) {
      this.removeNow(rt, ns, name, next);
      return clone(next);
    }
    this.rv++;
    next.metadata.resourceVersion = String(this.rv);
    this.objects.set(this.key(rt, ns, name), next);
    this.record('MODIFIED', rt, next, current);
    return clone(next);
  }

  /** Internal writes (the kubelet's status updates): no precondition, no validation. */
  mutate(rt: ResourceType, ns: string, name: string, fn: (obj: KubeObject) => void): KubeObject | undefined {
    const current = this.objects.get(this.key(rt, ns, name));
    if (current === undefined) return undefined;
    const next = clone(current);
    fn(next);
    return this.commit(rt, ns, name, current, next);
  }

  private removeNow(rt: ResourceType, ns: string, name: string, last: KubeObject): void {
    this.objects.delete(this.key(rt, ns, name));
    this.rv++;
    const gone = clone(last);
    gone.metadata.resourceVersion = String(this.rv);
    this.record('DELETED', rt, gone, last);
    this.collectDependents(last);
    if (rt.kind === 'Namespace') {
      for (const [key, obj] of [...this.objects]) {
        if (obj.metadata.namespace === name) {
          const type = RESOURCES.find((r) => key.startsWith(`${r.resource}.${r.group}/`));
          if (type) this.removeNow(type, name, obj.metadata.name ?? '', obj);
        }
      }
    }
  }

  delete(rt: ResourceType, ns: string, name: string, options: DeleteOptions = {}): DeleteResult {
    const current = this.objects.get(this.key(rt, ns, name));
    if (current === undefined) throw notFound(rt, name);
    const cur = current.metadata;
    const pre = options.preconditions ?? {};
    if (pre.uid !== undefined && pre.uid !== cur.uid) {
      throw conflict(rt, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${cur.uid ?? ''}`);
    }
    if (pre.resourceVersion !== undefined && pre.resourceVersion !== cur.resourceVersion) {
      throw conflict(rt, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${cur.resourceVersion ?? ''}`);
    }
    let grace = 0;
    if (rt.kind === 'Pod') {
      const spec = rec(current.spec);
      const phase = rec(current.status).phase;
      grace = options.gracePeriodSeconds ?? (typeof spec.terminationGracePeriodSeconds === 'number' ? spec.terminationGracePeriodSeconds : 30);
      if (grace < 0) grace = 1;
      // Not bound to a node, or already terminated: nothing to wait for.
      if (typeof spec.nodeName !== 'string' || spec.nodeName === '' || phase === 'Succeeded' || phase === 'Failed') grace = 0;
    }
    const finalizers = cur.finalizers ?? [];
    if (cur.deletionTimestamp !== undefined) {
      const old = cur.deletionGracePeriodSeconds ?? 0;
      if (grace === 0 && finalizers.length === 0) {
        this.removeNow(rt, ns, name, current);
        return { object: clone(current), removed: true };
      }
      if (grace >= old) return { object: clone(current), removed: false };
    } else if (grace === 0 && finalizers.length === 0) {
      this.removeNow(rt, ns, name, current);
      return { object: clone(current), removed: true };
    }
    const next = clone(current);
    next.metadata.deletionTimestamp = timestamp(Date.now() + grace * 1000);
    next.metadata.deletionGracePeriodSeconds = grace;
    this.rv++;
    next.metadata.resourceVersion = String(this.rv);
    this.objects.set(this.key(rt, ns, name), next);
    this.record('MODIFIED', rt, next, current);
    return { object: clone(next), removed: false };
  }

  /** DELETE on a collection: each match deleted as above; answers with the deleted objects. */
  deleteCollection(rt: ResourceType, ns: string | undefined, list: ListOptions, options: DeleteOptions): KubeObject[] {
    const { items } = this.list(rt, ns, { ...list, limit: undefined, continue: undefined });
    const out: KubeObject[] = [];
    for (const item of items) {
      try {
        out.push(this.delete(rt, item.metadata.namespace ?? '', item.metadata.name ?? '', options).object);
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
    }
    return out;
  }
}
