/**
 * A tiny JSON Schema (2020-12) checker for the keywords schema/config.schema.json
 * uses: type, enum, const, properties, additionalProperties, required,
 * propertyNames, minProperties, items, minItems, minLength, pattern,
 * minimum, exclusiveMinimum, oneOf, anyOf, not, $ref (local #/…). Unknown
 * keywords are an error, so the schema cannot drift into what this does not check.
 */
type Schema = boolean | Record<string, unknown>;

const ANNOTATIONS = new Set(['$schema', '$id', 'title', 'description', '$defs', 'default', 'examples']);
const KNOWN = new Set(['type', 'enum', 'const', 'properties', 'additionalProperties', 'required', 'propertyNames', 'minProperties', 'items', 'minItems', 'minLength', 'pattern', 'minimum', 'exclusiveMinimum', 'oneOf', 'anyOf', 'not', '$ref']);

export function validateSchema(root: Schema, value: unknown): string[] {
  const errors: string[] = [];
  check(root, value, '', root, errors);
  return errors;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function resolveRef(root: Schema, ref: string): Schema {
  if (!ref.startsWith('#/')) throw new Error(`unsupported $ref ${ref}`);
  let node: unknown = root;
  for (const part of ref.slice(2).split('/')) node = (node as Record<string, unknown>)[part];
  if (node === undefined) throw new Error(`dangling $ref ${ref}`);
  return node as Schema;
}

function check(schema: Schema, v: unknown, path: string, root: Schema, errors: string[]): void {
  if (schema === true) return;
  if (schema === false) {
    errors.push(`${path || '/'}: not allowed`);
    return;
  }
  for (const key of Object.keys(schema)) if (!KNOWN.has(key) && !ANNOTATIONS.has(key)) throw new Error(`mini schema checker: unknown keyword ${key}`);
  const s = schema as Record<string, any>;
  const at = path || '/';
  if (s.$ref) check(resolveRef(root, s.$ref), v, path, root, errors);
  if (s.type !== undefined) {
    const types: string[] = Array.isArray(s.type) ? s.type : [s.type];
    const t = typeOf(v);
    if (!types.some((x) => x === t || (x === 'number' && t === 'integer'))) {
      errors.push(`${at}: expected ${types.join('|')}, got ${t}`);
      return;
    }
  }
  if (s.enum && !s.enum.some((e: unknown) => e === v)) errors.push(`${at}: not one of ${JSON.stringify(s.enum)}`);
  if ('const' in s && s.const !== v) errors.push(`${at}: not ${JSON.stringify(s.const)}`);
  if (typeof v === 'string') {
    if (s.minLength !== undefined && [...v].length < s.minLength) errors.push(`${at}: shorter than ${s.minLength}`);
    if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(v)) errors.push(`${at}: does not match ${s.pattern}`);
  }
  if (typeof v === 'number') {
    if (s.minimum !== undefined && v < s.minimum) errors.push(`${at}: below ${s.minimum}`);
    if (s.exclusiveMinimum !== undefined && v <= s.exclusiveMinimum) errors.push(`${at}: not above ${s.exclusiveMinimum}`);
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) errors.push(`${at}: fewer than ${s.minItems} items`);
    if (s.items !== undefined) v.forEach((e, i) => check(s.items, e, `${path}/${i}`, root, errors));
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (s.minProperties !== undefined && keys.length < s.minProperties) errors.push(`${at}: fewer than ${s.minProperties} properties`);
    // Own keys only: `"__proto__" in properties` is true of every object.
    const has = (x: object, k: string): boolean => Object.prototype.hasOwnProperty.call(x, k);
    for (const r of s.required ?? []) if (!has(o, r)) errors.push(`${at}: missing ${r}`);
    for (const k of keys) {
      if (s.propertyNames !== undefined) check(s.propertyNames, k, `${path}/${k}(name)`, root, errors);
      if (s.properties && has(s.properties, k)) check(s.properties[k], o[k], `${path}/${k}`, root, errors);
      else if (s.additionalProperties !== undefined) check(s.additionalProperties, o[k], `${path}/${k}`, root, errors);
    }
  }
  if (s.oneOf) {
    const passing = s.oneOf.filter((sub: Schema) => validateSub(sub, v, path, root));
    if (passing.length !== 1) errors.push(`${at}: matches ${passing.length} of oneOf`);
  }
  if (s.anyOf && !s.anyOf.some((sub: Schema) => validateSub(sub, v, path, root))) errors.push(`${at}: matches none of anyOf`);
  if (s.not !== undefined && validateSub(s.not, v, path, root)) errors.push(`${at}: matches "not"`);
}

function validateSub(schema: Schema, v: unknown, path: string, root: Schema): boolean {
  const errors: string[] = [];
  check(schema, v, path, root, errors);
  return errors.length === 0;
}
