/**
 * PATCH bodies the apiserver accepts, by Content-Type: JSON merge patch (RFC 7386), strategic
 * merge patch (treated as a merge patch: maps merge, lists are replaced, `$patch` directives
 * unsupported → 400) and JSON patch (RFC 6902). Errors carry the apiserver's status codes:
 * an undecodable patch is 400 BadRequest, a JSON patch that cannot be applied (a failed `test`, a
 * missing path) is 422 Invalid.
 */
import { badRequest, clone, failure, type ApiError } from './objects.js';

export const MERGE_PATCH = 'application/merge-patch+json';
export const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';
export const JSON_PATCH = 'application/json-patch+json';
export const APPLY_PATCH = 'application/apply-patch+yaml';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const isObject = (v: unknown): v is Record<string, Json> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** RFC 7386: null deletes, objects merge recursively, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete result[k];
    else result[k] = mergePatch(result[k], v);
  }
  return result;
}

function rejectDirectives(patch: unknown): void {
  if (Array.isArray(patch)) patch.forEach(rejectDirectives);
  else if (isObject(patch)) {
    for (const [k, v] of Object.entries(patch)) {
      if (k.startsWith('$')) throw badRequest(`stand-in apiserver: strategic merge directive ${k} is not supported; use a merge patch`);
      rejectDirectives(v);
    }
  }
}

const unprocessable = (message: string): ApiError => failure(422, 'Invalid', message);

function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw unprocessable(`invalid JSON pointer: "${path}"`);
  return path.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

interface Slot { parent: Record<string, unknown> | unknown[]; key: string }

function slot(doc: unknown, tokens: string[], path: string): Slot {
  let node: unknown = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(node)) node = node[Number(t)];
    else if (isObject(node)) node = node[t];
    else node = undefined;
    if (node === undefined) throw unprocessable(`doc is missing path: "${path}": missing value`);
  }
  if (!Array.isArray(node) && !isObject(node)) throw unprocessable(`doc is missing path: "${path}": missing value`);
  return { parent: node, key: tokens[tokens.length - 1] ?? '' };
}

function read(s: Slot, path: string): unknown {
  const v = Array.isArray(s.parent) ? s.parent[Number(s.key)] : s.parent[s.key];
  if (v === undefined || (Array.isArray(s.parent) && !/^(0|[1-9][0-9]*)$/.test(s.key))) {
    throw unprocessable(`doc is missing path: "${path}": missing value`);
  }
  return v;
}

function index(s: { parent: unknown[]; key: string }, path: string, forAdd: boolean): number {
  if (forAdd && s.key === '-') return s.parent.length;
  const max = forAdd ? s.parent.length : s.parent.length - 1;
  if (!/^(0|[1-9][0-9]*)$/.test(s.key) || Number(s.key) > max) throw unprocessable(`Unable to access invalid index: ${s.key} (path ${path})`);
  return Number(s.key);
}

function remove(doc: unknown, path: string): unknown {
  const s = slot(doc, parsePointer(path), path);
  const old = read(s, path);
  if (Array.isArray(s.parent)) s.parent.splice(index({ parent: s.parent, key: s.key }, path, false), 1);
  else delete s.parent[s.key];
  return old;
}

function add(doc: unknown, path: string, value: unknown): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return clone(value);
  const s = slot(doc, tokens, path);
  if (Array.isArray(s.parent)) s.parent.splice(index({ parent: s.parent, key: s.key }, path, true), 0, clone(value));
  else s.parent[s.key] = clone(value);
  return doc;
}

const deepEqual = (a: unknown, b: unknown): boolean => JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (isObject(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  return v;
}

/** RFC 6902, applied to a copy; throws 400 for a malformed patch, 422 when an op cannot apply. */
export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let doc: unknown = clone(target);
  for (const raw of ops) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') {
      throw badRequest(`the server rejected our request due to an error in our request: invalid JSON patch operation ${JSON.stringify(raw)}`);
    }
    const { op, path } = raw;
    switch (op) {
      case 'add': doc = add(doc, path, raw.value); break;
      case 'remove': remove(doc, path); break;
      case 'replace': {
        const tokens = parsePointer(path);
        if (tokens.length === 0) { doc = clone(raw.value); break; }
        read(slot(doc, tokens, path), path);
        remove(doc, path);
        doc = add(doc, path, raw.value);
        break;
      }
      case 'test': {
        const tokens = parsePointer(path);
        const actual = tokens.length === 0 ? doc : read(slot(doc, tokens, path), path);
        if (!deepEqual(actual, raw.value)) throw unprocessable(`testing value ${path} failed: test failed`);
        break;
      }
      case 'move':
      case 'copy': {
        if (typeof raw.from !== 'string') throw badRequest(`the server rejected our request: ${op} operation has no "from"`);
        const fromTokens = parsePointer(raw.from);
        const value = fromTokens.length === 0 ? clone(doc) : clone(read(slot(doc, fromTokens, raw.from), raw.from));
        if (op === 'move') {
          if (path.startsWith(`${raw.from}/`)) throw unprocessable(`Unable to move ${raw.from} into its own child ${path}`);
          remove(doc, raw.from);
        }
        doc = add(doc, path, value);
        break;
      }
      default:
        throw badRequest(`Unexpected kind: ${op}`);
    }
  }
  return doc;
}

/** Applies `body` (already JSON-decoded) to `current` according to the PATCH Content-Type. */
export function applyPatch(contentType: string, current: unknown, body: unknown): unknown {
  switch (contentType) {
    case MERGE_PATCH:
      if (!isObject(body)) throw badRequest('json: cannot unmarshal array into Go value of type map[string]interface {}');
      return mergePatch(current, body);
    case STRATEGIC_MERGE_PATCH:
      if (!isObject(body)) throw badRequest('json: cannot unmarshal array into Go value of type map[string]interface {}');
      rejectDirectives(body);
      return mergePatch(current, body);
    case JSON_PATCH:
      return jsonPatch(current, body);
    default:
      throw failure(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${JSON_PATCH}, ${MERGE_PATCH}, ${STRATEGIC_MERGE_PATCH}, ${APPLY_PATCH}`);
  }
}
