/**
 * Validators for the custom resources the chart renders (KEDA ScaledObject, Karpenter NodePool and
 * EC2NodeClass, Prometheus Operator PodMonitor), from their CRDs' published openAPIV3Schema,
 * vendored unchanged in test/fixtures/crd-schemas/<group>_<version>_<Kind>.json (source and release
 * in each file's $comment). Applied as an apiserver with strict field validation (kubectl's
 * default) would: an unknown field is an error, except where the schema preserves unknown fields.
 * Not applied: the CRDs' CEL rules (x-kubernetes-validations).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { fileURLToPath } from 'node:url';

const DIR = fileURLToPath(new URL('../fixtures/crd-schemas', import.meta.url));

type Schema = { [k: string]: unknown };

/** Closes every object schema that lists its properties and says nothing of others (structural schemas prune or, strict, refuse them). */
function strict(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strict);
  if (!schema || typeof schema !== 'object') return schema;
  const out: Schema = {};
  for (const [k, v] of Object.entries(schema as Schema)) out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as Schema).map(([p, s]) => [p, strict(s)])) : strict(v);
  if (out.properties && out.additionalProperties === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) out.additionalProperties = false;
  return out;
}

let validators: Map<string, ValidateFunction> | undefined;

/** `<apiVersion>/<Kind>` → validator, for every vendored CRD schema. */
export function crdValidators(): Map<string, ValidateFunction> {
  if (validators) return validators;
  const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
  validators = new Map();
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.json'))) {
    const m = /^([a-z0-9.-]+)_(v[0-9a-z]+)_([A-Za-z0-9]+)\.json$/.exec(file);
    if (!m) throw new Error(`${file}: expected <group>_<version>_<Kind>.json`);
    const schema = JSON.parse(readFileSync(path.join(DIR, file), 'utf8')) as Schema;
    validators.set(`${m[1]}/${m[2]}/${m[3]}`, ajv.compile(strict(schema) as Schema));
  }
  return validators;
}

/** undefined when valid, else the problems; `unknown` when no vendored schema covers the kind. */
export function validateCustomResource(m: { apiVersion: string; kind: string }): string | undefined | 'unknown' {
  const validate = crdValidators().get(`${m.apiVersion}/${m.kind}`);
  if (!validate) return 'unknown';
  if (validate(m)) return undefined;
  return (validate.errors ?? []).map((e) => {
    const extra = 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : '';
    return `${e.instancePath || '/'} ${e.message ?? 'invalid'}${extra}`;
  }).join('; ');
}
