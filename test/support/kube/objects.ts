/**
 * Shapes shared by the Kubernetes API stand-in: objects, the resource types it serves, Status
 * errors with the real apiserver's reasons, codes and message wording, and create-time validation
 * and defaulting (the parts a tenant runtime can trip over: names, labels, required pod/PVC fields).
 */
import { randomBytes } from 'node:crypto';

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

export interface ResourceType {
  /** Plural, as in the URL: `pods`. */
  resource: string;
  /** '' for the core group. */
  group: string;
  version: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  /** DELETE answers with the object (pods, PVCs, namespaces) instead of a Status. */
  returnDeletedObject: boolean;
  /** Field selector values this resource supports besides metadata.name/namespace. */
  fields: (obj: KubeObject) => Record<string, string>;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const rec = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : {});

export const RESOURCES: readonly ResourceType[] = [
  {
    resource: 'pods', group: '', version: 'v1', kind: 'Pod', listKind: 'PodList', namespaced: true,
    returnDeletedObject: true,
    fields: (o) => ({
      'status.phase': str(rec(o.status).phase),
      'spec.nodeName': str(rec(o.spec).nodeName),
      'status.podIP': str(rec(o.status).podIP),
      'spec.restartPolicy': str(rec(o.spec).restartPolicy),
    }),
  },
  {
    resource: 'secrets', group: '', version: 'v1', kind: 'Secret', listKind: 'SecretList', namespaced: true,
    returnDeletedObject: false, fields: (o) => ({ type: str(o.type) }),
  },
  {
    resource: 'persistentvolumeclaims', group: '', version: 'v1', kind: 'PersistentVolumeClaim',
    listKind: 'PersistentVolumeClaimList', namespaced: true, returnDeletedObject: true,
    fields: () => ({}),
  },
  {
    resource: 'namespaces', group: '', version: 'v1', kind: 'Namespace', listKind: 'NamespaceList', namespaced: false,
    returnDeletedObject: true, fields: (o) => ({ 'status.phase': str(rec(o.status).phase) }),
  },
  {
    resource: 'nodes', group: '', version: 'v1', kind: 'Node', listKind: 'NodeList', namespaced: false,
    returnDeletedObject: false, fields: (o) => ({ 'spec.unschedulable': String(rec(o.spec).unschedulable === true) }),
  },
];

export function resourceType(group: string, version: string, resource: string): ResourceType | undefined {
  return RESOURCES.find((r) => r.group === group && r.version === version && r.resource === resource);
}

export const apiVersionOf = (rt: ResourceType): string => (rt.group === '' ? rt.version : `${rt.group}/${rt.version}`);
/** `pods`, `<resource>.<group>`: how the apiserver names a resource in messages. */
export const qualified = (rt: ResourceType): string => (rt.group === '' ? rt.resource : `${rt.resource}.${rt.group}`);

export type StatusReason =
  | 'NotFound' | 'AlreadyExists' | 'Conflict' | 'Invalid' | 'BadRequest' | 'Unauthorized' | 'Forbidden'
  | 'MethodNotAllowed' | 'UnsupportedMediaType' | 'Expired' | 'Gone' | 'InternalError' | 'ServiceUnavailable'
  | 'Timeout' | 'TooManyRequests' | 'RequestEntityTooLarge';

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: StatusReason;
  details?: { name?: string; group?: string; kind?: string; uid?: string; causes?: Array<{ reason: string; message: string; field: string }>; retryAfterSeconds?: number };
  code: number;
}

/** An error the apiserver answers with: `code` and a Status body. */
export class ApiError extends Error {
  constructor(readonly status: Status) {
    super(status.message ?? status.reason ?? `HTTP ${status.code}`);
  }
  get code(): number {
    return this.status.code;
  }
}

export function failure(code: number, reason: StatusReason | undefined, message: string, details?: Status['details']): ApiError {
  const status: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, code };
  if (reason !== undefined) status.reason = reason;
  if (details !== undefined) status.details = details;
  return new ApiError(status);
}

function details(rt: ResourceType, name: string): NonNullable<Status['details']> {
  return rt.group === '' ? { name, kind: rt.resource } : { name, group: rt.group, kind: rt.resource };
}

export const notFound = (rt: ResourceType, name: string): ApiError =>
  failure(404, 'NotFound', `${qualified(rt)} "${name}" not found`, details(rt, name));
export const alreadyExists = (rt: ResourceType, name: string): ApiError =>
  failure(409, 'AlreadyExists', `${qualified(rt)} "${name}" already exists`, details(rt, name));
export const conflict = (rt: ResourceType, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again'): ApiError =>
  failure(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(rt)} "${name}": ${why}`, details(rt, name));
export const badRequest = (message: string): ApiError => failure(400, 'BadRequest', message);

export interface Cause { field: string; reason: 'FieldValueRequired' | 'FieldValueInvalid' | 'FieldValueForbidden'; message: string }

/** 422 with the apiserver's aggregate message: `Pod "x" is invalid: [a, b]`. */
export function invalid(rt: ResourceType, name: string, causes: Cause[]): ApiError {
  const parts = causes.map((c) => `${c.field}: ${c.message}`);
  const joined = parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`;
  return failure(422, 'Invalid', `${rt.kind} "${name}" is invalid: ${joined}`, {
    name, ...(rt.group === '' ? {} : { group: rt.group }), kind: rt.kind, causes: causes.map((c) => ({ reason: c.reason, message: c.message, field: c.field })),
  });
}

/** RFC 3339 with seconds, as metav1.Time serialises. */
export const timestamp = (ms = Date.now()): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');

export const clone = <T>(v: T): T => structuredClone(v);

/** The apiserver's generateName suffix alphabet (no vowels, no confusable digits). */
export function generateSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return [...randomBytes(5)].map((b) => alphabet[b % alphabet.length]).join('');
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;

export function nameProblem(name: string, label: boolean): string | undefined {
  if (label) {
    if (name.length > 63 || !DNS1123_LABEL.test(name)) {
      return `Invalid value: "${name}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`;
    }
    return undefined;
  }
  if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    return `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`;
  }
  return undefined;
}

export function labelCauses(labels: unknown): Cause[] {
  const causes: Cause[] = [];
  for (const [k, v] of Object.entries(rec(labels))) {
    const slash = k.lastIndexOf('/');
    const prefix = slash >= 0 ? k.slice(0, slash) : undefined;
    const name = slash >= 0 ? k.slice(slash + 1) : k;
    if ((prefix !== undefined && nameProblem(prefix, false) !== undefined) || name.length > 63 || !QUALIFIED_NAME.test(name)) {
      causes.push({ field: 'metadata.labels', reason: 'FieldValueInvalid', message: `Invalid value: "${k}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character` });
    }
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)) {
      causes.push({ field: 'metadata.labels', reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(v)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character` });
    }
  }
  return causes;
}

/** Spec checks of the kinds the apiserver enforces on create (and keeps on update). */
export function specCauses(rt: ResourceType, obj: KubeObject): Cause[] {
  const causes: Cause[] = [];
  const required = (field: string): void => void causes.push({ field, reason: 'FieldValueRequired', message: 'Required value' });
  if (rt.kind === 'Pod') {
    const containers = rec(obj.spec).containers;
    if (!Array.isArray(containers) || containers.length === 0) required('spec.containers');
    else containers.forEach((c: unknown, i) => {
      const name = str(rec(c).name);
      if (name === '') required(`spec.containers[${i}].name`);
      else if (nameProblem(name, true)) causes.push({ field: `spec.containers[${i}].name`, reason: 'FieldValueInvalid', message: nameProblem(name, true) ?? '' });
      if (str(rec(c).image) === '') required(`spec.containers[${i}].image`);
    });
  } else if (rt.kind === 'PersistentVolumeClaim') {
    const spec = rec(obj.spec);
    if (!Array.isArray(spec.accessModes) || spec.accessModes.length === 0) {
      causes.push({ field: 'spec.accessModes', reason: 'FieldValueRequired', message: 'Required value: at least 1 access mode is required' });
    }
    if (rec(rec(spec.resources).requests).storage === undefined) required('spec.resources[storage]');
  } else if (rt.kind === 'Secret') {
    for (const k of Object.keys(rec(obj.data))) {
      if (!SECRET_KEY.test(k)) causes.push({ field: 'data[' + k + ']', reason: 'FieldValueInvalid', message: `Invalid value: "${k}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'` });
    }
  }
  return causes;
}

/** Server-side defaults applied on create (the ones a client would see and might compare). */
export function applyCreateDefaults(rt: ResourceType, obj: KubeObject): void {
  if (rt.kind === 'Pod') {
    const spec = rec(obj.spec);
    spec.restartPolicy ??= 'Always';
    spec.terminationGracePeriodSeconds ??= 30;
    spec.dnsPolicy ??= 'ClusterFirst';
    spec.schedulerName ??= 'default-scheduler';
    spec.securityContext ??= {};
    spec.enableServiceLinks ??= true;
    for (const c of (spec.containers as unknown[]).map(rec)) {
      const image = str(c.image);
      const tag = /@/.test(image) ? 'digest' : /:([^/:]+)$/.exec(image)?.[1];
      c.imagePullPolicy ??= tag === undefined || tag === 'latest' ? 'Always' : 'IfNotPresent';
      c.terminationMessagePath ??= '/dev/termination-log';
      c.terminationMessagePolicy ??= 'File';
      c.resources ??= {};
    }
    obj.spec = spec;
    obj.status = { phase: 'Pending', qosClass: 'BestEffort' };
  } else if (rt.kind === 'Secret') {
    obj.type ??= 'Opaque';
  } else if (rt.kind === 'PersistentVolumeClaim') {
    const spec = rec(obj.spec);
    spec.volumeMode ??= 'Filesystem';
    obj.spec = spec;
    obj.status = { phase: 'Pending' };
  } else if (rt.kind === 'Namespace') {
    obj.spec = { finalizers: ['kubernetes'] };
    obj.status = { phase: 'Active' };
  }
}

/** Secrets: `stringData` is write-only, merged into base64 `data`; `data` must be valid base64. */
export function normalizeSecret(obj: KubeObject): void {
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(rec(obj.data))) {
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) {
      throw badRequest(`Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 0`);
    }
    data[k] = v;
  }
  for (const [k, v] of Object.entries(rec(obj.stringData))) data[k] = Buffer.from(String(v)).toString('base64');
  delete obj.stringData;
  if (Object.keys(data).length > 0 || obj.data !== undefined) obj.data = data;
}
