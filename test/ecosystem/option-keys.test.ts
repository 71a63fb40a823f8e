/**
 * The option keys cannot drift: the TypeScript interfaces (read with the
 * TypeScript compiler API from src/), schema/config.schema.json and the
 * validator's key lists name the same keys, at the top level and in every
 * nested object the schema describes. An option added to one and not the
 * others fails here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { ACCOUNT_OBJECT_KEYS, CODE_ONLY_KEYS, FILE_KEYS, FILE_ONLY_KEYS, GATEWAY_OBJECT_KEYS, OPTION_KEYS, PROXY_OBJECT_KEYS } from '../../src/config/document.js';
import { FILE_ONLY_TLS_KEYS, FILE_TLS_KEYS, PROXY_TLS_KEYS, REQUEST_TLS_KEYS, TLS_DESTINATION_KEYS } from '../../src/config/tls.js';
import { HEALTH_CHECK_RULES, HEALTH_RULES, STORE_RULES, STORE_SENTINEL_RULES } from '../../src/config/values.js';
import { PAC_OPTION_KEYS, RULE_KEYS } from '../../src/config/rules.js';
import { root } from './support/run.js';

const schema = JSON.parse(readFileSync(join(root, 'schema/config.schema.json'), 'utf8'));
const schemaKeys = (node: { properties?: Record<string, unknown>; $ref?: string }): string[] => {
  const target = node.$ref ? schema.$defs[node.$ref.replace('#/$defs/', '')] : node;
  return Object.keys(target.properties ?? {}).sort();
};
const sorted = (keys: readonly string[]): string[] => [...keys].sort();
const without = (keys: readonly string[], drop: readonly string[]): string[] => sorted(keys.filter((k) => !drop.includes(k)));

/** The TypeScript side: property names of exported interfaces, and of the types of their properties. */
const types = (() => {
  const files = ['src/options.ts', 'src/proxy/endpoint.ts', 'src/gateways/definition.ts', 'src/store/index.ts'].map((f) => join(root, f));
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    types: ['node'],
    skipLibCheck: true,
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const exported = (file: string, name: string): ts.Type => {
    const module = checker.getSymbolAtLocation(program.getSourceFile(join(root, file))!)!;
    const symbol = checker.getExportsOfModule(module).find((s) => s.name === name);
    if (!symbol) throw new Error(`${file} exports no ${name}`);
    return checker.getDeclaredTypeOfSymbol(symbol);
  };
  const keys = (t: ts.Type): string[] => checker.getPropertiesOfType(t).map((p) => p.name).sort();
  const property = (t: ts.Type, key: string): ts.Type => {
    const p = t.getProperty(key);
    if (!p) throw new Error(`no property ${key}`);
    return checker.getNonNullableType(checker.getTypeOfSymbol(p));
  };
  const options = exported('src/options.ts', 'SessionProxyOptions');
  const proxyObject = exported('src/proxy/endpoint.ts', 'ProxyObjectInput');
  const gateway = exported('src/gateways/definition.ts', 'GatewayInput');
  return {
    gateway: keys(gateway),
    gatewayTemplate: keys(property(gateway, 'template')),
    watchEgress: keys(property(options, 'watchEgress')),
    options: keys(options),
    health: keys(property(options, 'health')),
    healthCheck: keys(property(options, 'healthCheck')),
    requestTls: keys(property(options, 'requestTls')),
    proxyObject: keys(proxyObject),
    proxyTls: keys(property(proxyObject, 'tls')),
    rule: keys(exported('src/options.ts', 'RoutingRule')),
    pacOptions: keys(exported('src/options.ts', 'PacOptions')),
    store: keys(exported('src/store/index.ts', 'StoreOptions')),
    storeSentinel: keys(exported('src/store/index.ts', 'StoreSentinelOptions')),
  };
})();

describe('option keys: TypeScript, JSON schema and validator agree', () => {
  it('the TypeScript reader sees the interfaces (a broken reader would compare empty lists)', () => {
    expect(types.options).toContain('proxy');
    expect(types.health).toContain('threshold');
    expect(types.requestTls).toContain('ca');
    expect(types.proxyTls).toContain('servername');
  });

  it('top level: SessionProxyOptions = the schema’s properties minus the file-only ones = the validator’s keys', () => {
    // Code-only options (an object with methods, e.g. sessionStore) have no JSON form.
    expect(without(schemaKeys(schema), FILE_ONLY_KEYS)).toEqual(without(types.options, CODE_ONLY_KEYS));
    expect(sorted([...OPTION_KEYS, ...CODE_ONLY_KEYS])).toEqual(types.options);
    expect(sorted(FILE_KEYS)).toEqual(schemaKeys(schema));
  });

  it('a proxy object: ProxyObjectInput ∪ GatewayInput = $defs.proxyObject = the validator’s keys', () => {
    expect(schemaKeys(schema.$defs.proxyObject)).toEqual(sorted([...new Set([...types.proxyObject, ...types.gateway])]));
    expect(sorted(PROXY_OBJECT_KEYS)).toEqual(types.proxyObject);
    expect(sorted(GATEWAY_OBJECT_KEYS)).toEqual(without(types.gateway, types.proxyObject));
  });

  it('a gateway template and watchEgress: their TypeScript interfaces = the schema’s', () => {
    expect(schemaKeys(schema.$defs.gatewayTemplate)).toEqual(types.gatewayTemplate);
    expect(schemaKeys(schema.properties.watchEgress)).toEqual(types.watchEgress);
  });

  it('a proxy’s tls: ProxyTlsOptions = $defs.tls minus the file-only keys = the validator’s keys in code; the schema’s = the validator’s in files', () => {
    expect(sorted(FILE_ONLY_TLS_KEYS)).toEqual(['caFile', 'certFile', 'keyFile']);
    expect(without(schemaKeys(schema.$defs.tls), FILE_ONLY_TLS_KEYS)).toEqual(types.proxyTls);
    expect(sorted(PROXY_TLS_KEYS)).toEqual(types.proxyTls);
    expect(sorted(FILE_TLS_KEYS)).toEqual(schemaKeys(schema.$defs.tls));
    expect(schema.$defs.proxyObject.properties.tls).toEqual({ $ref: '#/$defs/tls' });
  });

  it('requestTls: tls.ConnectionOptions = the keys code may pass + the destination keys; the file’s are a subset', () => {
    expect(sorted([...REQUEST_TLS_KEYS, ...TLS_DESTINATION_KEYS])).toEqual(types.requestTls);
    expect(schema.properties.requestTls.$ref).toBe('#/$defs/tls');
    for (const key of without(schemaKeys(schema.$defs.tls), FILE_ONLY_TLS_KEYS)) expect(types.requestTls).toContain(key);
  });

  it('health and healthCheck: HealthOptions / HealthCheckOptions = the schema’s = the validator’s', () => {
    expect(schemaKeys(schema.properties.health)).toEqual(types.health);
    expect(sorted(Object.keys(HEALTH_RULES))).toEqual(types.health);
    expect(schemaKeys(schema.properties.healthCheck)).toEqual(types.healthCheck);
    expect(sorted(Object.keys(HEALTH_CHECK_RULES))).toEqual(types.healthCheck);
  });

  it('a rule and PacOptions: RoutingRule / PacOptions = $defs.rule / $defs.pacOptions = the validator’s keys', () => {
    expect(types.rule).toContain('scopes');
    expect(schemaKeys(schema.$defs.rule)).toEqual(types.rule);
    expect(sorted(RULE_KEYS)).toEqual(types.rule);
    expect(schema.properties.rules.items).toEqual({ $ref: '#/$defs/rule' });
    expect(schemaKeys(schema.$defs.pacOptions)).toEqual(types.pacOptions);
    expect(sorted(PAC_OPTION_KEYS)).toEqual(types.pacOptions);
  });

  it('store: StoreOptions = $defs.storeObject = the validator’s keys; its sentinel: StoreSentinelOptions = $defs.storeSentinel = the validator’s', () => {
    expect(types.store).toContain('leaseTtl');
    expect(types.store).toEqual(expect.arrayContaining(['url', 'cluster', 'sentinel']));
    expect(schemaKeys(schema.$defs.storeObject)).toEqual(types.store);
    expect(sorted(Object.keys(STORE_RULES))).toEqual(types.store);
    expect(types.storeSentinel).toEqual(['database', 'name', 'nodes']);
    expect(schema.$defs.storeObject.properties.sentinel).toEqual({ $ref: '#/$defs/storeSentinel' });
    expect(schemaKeys(schema.$defs.storeSentinel)).toEqual(types.storeSentinel);
    expect(sorted(Object.keys(STORE_SENTINEL_RULES))).toEqual(types.storeSentinel);
  });

  it('every nested object of the schema is closed and compared above', () => {
    const compared = new Set(['proxyObject', 'tls', 'accountObject', 'gatewayTemplate', 'rule', 'pacOptions', 'storeObject', 'storeSentinel']);
    for (const [name, def] of Object.entries(schema.$defs as Record<string, { type?: string; additionalProperties?: unknown }>)) {
      if (def.type !== 'object') continue;
      expect(def.additionalProperties, name).toBe(false);
      expect(compared.has(name), `$defs.${name} is compared with a TypeScript interface or the validator`).toBe(true);
    }
    for (const [key, node] of Object.entries(schema.properties as Record<string, { type?: string; additionalProperties?: unknown }>)) {
      if (node.type !== 'object' || key === 'accounts') continue;
      expect(node.additionalProperties, key).toBe(false);
      expect(['health', 'healthCheck', 'watchEgress'], `${key} is compared with a TypeScript interface`).toContain(key);
    }
    // The file-only account object has no TypeScript counterpart: it agrees with the validator.
    expect(schemaKeys(schema.$defs.accountObject)).toEqual(sorted(ACCOUNT_OBJECT_KEYS));
  });
});
