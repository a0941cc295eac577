/**
 * PATCH bodies the stand-in accepts, by Content-Type: JSON merge patch (RFC 7386, what the runtime
 * sends) and strategic merge patch (treated as a merge patch: maps merge, lists are replaced,
 * `$patch` directives unsupported → 400). JSON patch (RFC 6902) is not served: nothing the platform
 * runs sends one. An undecodable patch is 400 BadRequest, as on the real server.
 */
import { badRequest, clone, failure } from './objects.js';

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
      // What client-node sends when the caller forgot the Content-Type: an object body is a 400 as on
      // the real server. A real JSON patch the runtime never sends: not served.
      if (!Array.isArray(body)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
      throw failure(415, 'UnsupportedMediaType', `stand-in apiserver: ${JSON_PATCH} is not supported (the runtime uses merge patches)`);
    default:
      throw failure(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${JSON_PATCH}, ${MERGE_PATCH}, ${STRATEGIC_MERGE_PATCH}, ${APPLY_PATCH}`);
  }
}
