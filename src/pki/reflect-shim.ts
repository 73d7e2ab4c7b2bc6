/**
 * Minimal Metadata Reflection API shim (the subset of `reflect-metadata`
 * that tsyringe touches), installed only when nothing else provides it.
 *
 * Why: @peculiar/x509 2.x depends on tsyringe, whose entry point throws
 * "tsyringe requires a reflect polyfill" unless `Reflect.getMetadata`
 * exists. The project does not depend on `reflect-metadata`, so this module
 * must be evaluated before '@peculiar/x509' — import x509 through
 * `src/pki/x509.ts` (or `src/pki/index.ts`), never directly, for value use.
 *
 * @peculiar/x509 only uses `@injectable()` on parameterless classes, so the
 * metadata store is almost never written; it is still a faithful
 * (WeakMap-backed, prototype-walking) implementation of the five functions.
 */

type Key = string | symbol | undefined;
const store = new WeakMap<object, Map<Key, Map<unknown, unknown>>>();

function own(target: object, prop: Key, create: boolean): Map<unknown, unknown> | undefined {
  let byProp = store.get(target);
  if (!byProp) {
    if (!create) return undefined;
    byProp = new Map();
    store.set(target, byProp);
  }
  let md = byProp.get(prop);
  if (!md && create) {
    md = new Map();
    byProp.set(prop, md);
  }
  return md;
}

const R = Reflect as unknown as Record<string, unknown>;
if (typeof R.getMetadata !== 'function') {
  const shim = {
    defineMetadata(key: unknown, value: unknown, target: object, prop?: string | symbol): void {
      own(target, prop, true)!.set(key, value);
    },
    hasOwnMetadata(key: unknown, target: object, prop?: string | symbol): boolean {
      return own(target, prop, false)?.has(key) ?? false;
    },
    getOwnMetadata(key: unknown, target: object, prop?: string | symbol): unknown {
      return own(target, prop, false)?.get(key);
    },
    hasMetadata(key: unknown, target: object, prop?: string | symbol): boolean {
      for (let t: object | null = target; t; t = Object.getPrototypeOf(t)) {
        if (own(t, prop, false)?.has(key)) return true;
      }
      return false;
    },
    getMetadata(key: unknown, target: object, prop?: string | symbol): unknown {
      for (let t: object | null = target; t; t = Object.getPrototypeOf(t)) {
        const md = own(t, prop, false);
        if (md?.has(key)) return md.get(key);
      }
      return undefined;
    },
    metadata(key: unknown, value: unknown) {
      return (target: object, prop?: string | symbol): void => {
        own(target, prop, true)!.set(key, value);
      };
    },
  };
  for (const [name, fn] of Object.entries(shim)) {
    Object.defineProperty(Reflect, name, { value: fn, writable: true, configurable: true, enumerable: false });
  }
}

export {};
