/**
 * Label and field selectors as the apiserver parses them. Label: `k=v`, `k==v`, `k!=v`,
 * `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, comma = AND. Field: `f=v`, `f==v`, `f!=v` over the
 * fields a resource supports (unsupported field → 400 like the real server).
 */
import { badRequest, type KubeObject, type ResourceType } from './objects.js';

type Op = 'eq' | 'neq' | 'in' | 'notin' | 'exists' | 'notexists';
interface Requirement { key: string; op: Op; values: string[] }

export type Matcher = (obj: KubeObject) => boolean;

const KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Splits on commas that are not inside parentheses. */
function splitTerms(selector: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      terms.push(current);
      current = '';
    } else current += ch;
  }
  terms.push(current);
  return terms.map((t) => t.trim());
}

function parseRequirement(term: string, selector: string): Requirement {
  const bad = (why: string): never => {
    throw badRequest(`unable to parse requirement: ${why} (selector ${JSON.stringify(selector)})`);
  };
  let m = /^!\s*(\S+)$/.exec(term);
  if (m) return checkKey({ key: m[1] ?? '', op: 'notexists', values: [] }, bad);
  m = /^(\S+?)\s+(in|notin)\s*\(([^)]*)\)$/.exec(term);
  if (m) {
    const values = (m[3] ?? '').split(',').map((v) => v.trim());
    for (const v of values) if (!VALUE.test(v)) bad(`invalid label value: "${v}"`);
    return checkKey({ key: m[1] ?? '', op: m[2] === 'in' ? 'in' : 'notin', values }, bad);
  }
  m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
  if (m) {
    const value = m[3] ?? '';
    if (!VALUE.test(value)) bad(`invalid label value: "${value}"`);
    return checkKey({ key: m[1] ?? '', op: m[2] === '!=' ? 'neq' : 'eq', values: [value] }, bad);
  }
  m = /^(\S+)$/.exec(term);
  if (m) return checkKey({ key: m[1] ?? '', op: 'exists', values: [] }, bad);
  return bad(`found '${term}', expected: identifier`);
}

function checkKey(r: Requirement, bad: (why: string) => never): Requirement {
  if (!KEY.test(r.key) || r.key.length > 316) bad(`invalid label key "${r.key}"`);
  return r;
}

function matches(r: Requirement, labels: Record<string, string>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, r.key);
  const v = labels[r.key];
  switch (r.op) {
    case 'eq': return has && v === r.values[0];
    case 'neq': return !has || v !== r.values[0];
    case 'in': return has && r.values.includes(v ?? '');
    case 'notin': return !has || !r.values.includes(v ?? '');
    case 'exists': return has;
    case 'notexists': return !has;
  }
}

/** Parses a label selector (throws a 400 ApiError on bad syntax); empty → everything. */
export function labelSelector(selector: string | undefined): Matcher {
  if (selector === undefined || selector.trim() === '') return () => true;
  const reqs = splitTerms(selector).map((t) => parseRequirement(t, selector));
  return (obj) => reqs.every((r) => matches(r, obj.metadata.labels ?? {}));
}

/** Parses a field selector against what `rt` supports (throws a 400 ApiError otherwise). */
export function fieldSelector(rt: ResourceType, selector: string | undefined): Matcher {
  if (selector === undefined || selector.trim() === '') return () => true;
  const reqs = selector.split(',').map((term) => {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(term);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${term}'`);
    return { field: m[1] ?? '', neq: m[2] === '!=', value: m[3] ?? '' };
  });
  const probe = { metadata: {} } as KubeObject;
  const known = new Set(['metadata.name', 'metadata.namespace', ...Object.keys(rt.fields(probe))]);
  for (const r of reqs) {
    if (!known.has(r.field)) throw badRequest(`field label not supported: ${r.field}`);
  }
  return (obj) => {
    const values: Record<string, string> = {
      'metadata.name': obj.metadata.name ?? '',
      'metadata.namespace': obj.metadata.namespace ?? '',
      ...rt.fields(obj),
    };
    return reqs.every((r) => ((values[r.field] ?? '') === r.value) !== r.neq);
  };
}
