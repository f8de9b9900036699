// The claims of an Attic token: the registered JWT claims plus the `https://jwt.attic.rs/v1`
// claim, `{"caches": {<name or pattern>: {"r":1,"w":1,…}}}`. Parsing is as strict as upstream's
// serde types: a flag that is not the integer 0 or 1, a malformed pattern or a missing claim
// makes the whole token invalid. Serialisation reproduces upstream's key order byte for byte.
import { CachePermission, isValidCachePattern, type PermissionName } from "./permissions.ts";

export const CLAIM_NAMESPACE = "https://jwt.attic.rs/v1";

/** Token flag key → permission, in upstream's serialisation order. */
export const PERMISSION_FLAGS: readonly (readonly [flag: string, permission: PermissionName])[] = [
  ["r", "pull"],
  ["w", "push"],
  ["d", "delete"],
  ["cc", "createCache"],
  ["cr", "configureCache"],
  ["cq", "configureCacheRetention"],
  ["cd", "destroyCache"],
];

export interface Claims {
  /** Unix seconds; absent = never expires */
  exp?: number;
  nbf?: number;
  iat?: number;
  iss?: string;
  sub?: string;
  /** a string or a set, as the token carried it */
  aud?: string | string[];
  jti?: string;
  nonce?: string;
  /** The attic claim's `caches`, in the token's key order (which decides pattern precedence). */
  caches: Map<string, CachePermission>;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** Parse a decoded JWT payload. Returns null when anything is malformed. */
export function parseClaims(payload: unknown): Claims | null {
  if (!isObject(payload)) return null;
  const claims: Claims = { caches: new Map() };

  for (const key of ["exp", "nbf", "iat"] as const) {
    const v = payload[key];
    if (v === undefined || v === null) continue;
    // jwt-simple accepts fractional Unix times and truncates them
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > Number.MAX_SAFE_INTEGER) return null;
    claims[key] = Math.floor(v);
  }
  for (const key of ["iss", "sub", "jti", "nonce"] as const) {
    const v = payload[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== "string") return null;
    claims[key] = v;
  }
  const aud = payload.aud;
  if (typeof aud === "string") claims.aud = aud;
  else if (Array.isArray(aud)) {
    if (!aud.every((a) => typeof a === "string")) return null;
    claims.aud = aud as string[];
  } else if (aud !== undefined && aud !== null) return null;

  const attic = payload[CLAIM_NAMESPACE];
  if (!isObject(attic) || !isObject(attic.caches)) return null;
  for (const [pattern, entry] of Object.entries(attic.caches)) {
    if (!isValidCachePattern(pattern) || !isObject(entry)) return null;
    const permission = new CachePermission();
    for (const [flag, name] of PERMISSION_FLAGS) {
      const v = entry[flag];
      if (v === undefined) continue;
      if (v !== 0 && v !== 1) return null;
      permission[name] = v === 1;
    }
    claims.caches.set(pattern, permission);
  }
  return claims;
}

/**
 * The payload JSON in upstream's order: iat, exp, nbf, iss, sub, aud, jti, nonce, then the attic
 * claim; absent claims are omitted and only granted flags are written (order r w d cc cr cq cd).
 */
export function serializeClaims(claims: Claims): string {
  const parts: string[] = [];
  const add = (key: string, value: unknown): void => {
    if (value !== undefined) parts.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
  };
  add("iat", claims.iat);
  add("exp", claims.exp);
  add("nbf", claims.nbf);
  add("iss", claims.iss);
  add("sub", claims.sub);
  add("aud", claims.aud);
  add("jti", claims.jti);
  add("nonce", claims.nonce);
  // a Map keeps insertion order even for keys like "123", which a plain object would hoist
  const caches = [...claims.caches].map(([pattern, permission]) => {
    const flags = PERMISSION_FLAGS.filter(([, name]) => permission[name]).map(([flag]) => `"${flag}":1`);
    return `${JSON.stringify(pattern)}:{${flags.join(",")}}`;
  });
  parts.push(`${JSON.stringify(CLAIM_NAMESPACE)}:{"caches":{${caches.join(",")}}}`);
  return `{${parts.join(",")}}`;
}

/** Grant `permission` on `pattern`, keeping the position of an existing entry (IndexMap semantics). */
export function grant(claims: Claims, pattern: string, permission: PermissionName): void {
  let entry = claims.caches.get(pattern);
  if (!entry) {
    entry = new CachePermission();
    claims.caches.set(pattern, entry);
  }
  entry[permission] = true;
}
