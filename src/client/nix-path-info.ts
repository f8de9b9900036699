// Parsing `nix path-info --json`. Nix 2.8 (Debian) prints an array of objects with full
// reference paths and `narHash` as `sha256:<nix32>` or SRI; Nix ≥ 2.19 prints an object keyed
// by path (null for invalid paths); Nix ≥ 2.32 may print structured hashes and content
// addresses and base-name references. All of them become one shape here.
import { NixHash } from "../nix/hash.ts";
import { NixError } from "./errors.ts";

export interface PathInfo {
  /** full store path */
  path: string;
  /** `sha256:<64 hex>`, as upstream's client sends it */
  narHash: string;
  narSize: number;
  /** full store paths */
  references: string[];
  sigs: string[];
  /** rendered content address (`fixed:r:sha256:…`, `text:sha256:…`) or null */
  ca: string | null;
  deriver: string | null;
}

export interface PathInfoQueryResult {
  infos: PathInfo[];
  /** paths Nix reported as not valid */
  invalid: string[];
}

export function parsePathInfoJson(text: string, storeDir: string): PathInfoQueryResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new NixError(`Could not parse the output of \`nix path-info --json\`: ${text.slice(0, 200)}`);
  }
  const entries: [string, unknown][] = [];
  if (Array.isArray(doc)) {
    for (const e of doc) entries.push([String((e as { path?: unknown } | null)?.path ?? ""), e]);
  } else if (typeof doc === "object" && doc !== null) {
    for (const [path, e] of Object.entries(doc)) entries.push([path, e]);
  } else {
    throw new NixError("Unexpected output of `nix path-info --json`");
  }

  const result: PathInfoQueryResult = { infos: [], invalid: [] };
  for (const [key, e] of entries) {
    const path = fullPath(key, storeDir);
    if (e === null || !isObject(e) || (e as { valid?: unknown }).valid === false) {
      result.invalid.push(path);
      continue;
    }
    result.infos.push(toPathInfo(path, e as Record<string, unknown>, storeDir));
  }
  return result;
}

function toPathInfo(path: string, e: Record<string, unknown>, storeDir: string): PathInfo {
  const bad = (what: string): NixError => new NixError(`\`nix path-info\` reported ${what} for ${path}`);
  const narHash = parseHash(e.narHash);
  if (narHash === null) throw bad(`an unusable narHash (${JSON.stringify(e.narHash)})`);
  if (narHash.algo !== "sha256") throw bad(`a ${narHash.algo} narHash (only sha256 is supported)`);
  if (typeof e.narSize !== "number" || !Number.isSafeInteger(e.narSize) || e.narSize < 0) throw bad("no narSize");
  const refs = Array.isArray(e.references) ? e.references : [];
  const sigs = Array.isArray(e.signatures) ? e.signatures : [];
  return {
    path,
    narHash: narHash.toTypedBase16(),
    narSize: e.narSize,
    references: refs.filter((r) => typeof r === "string").map((r) => fullPath(r, storeDir)),
    sigs: sigs.filter((s) => typeof s === "string"),
    ca: renderCa(e.ca),
    deriver: typeof e.deriver === "string" ? fullPath(e.deriver, storeDir) : null,
  };
}

function fullPath(p: string, storeDir: string): string {
  return p.startsWith("/") ? p : `${storeDir}/${p}`;
}

function isObject(v: unknown): v is object {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `sha256:…`, `sha256-…`, or `{"algorithm":"sha256","format":"base64","hash":"…"}`. */
function parseHash(v: unknown): NixHash | null {
  try {
    if (typeof v === "string") return NixHash.parse(v);
    if (isObject(v)) {
      const h = v as { algorithm?: unknown; hash?: unknown };
      if (typeof h.algorithm === "string" && typeof h.hash === "string") return NixHash.parse(`${h.algorithm}:${h.hash}`);
    }
  } catch {
    // reported by the caller
  }
  return null;
}

/** Content addresses as Nix renders them; structured ones (newer Nix) are rendered back. */
function renderCa(v: unknown): string | null {
  if (typeof v === "string") return v === "" ? null : v;
  if (!isObject(v)) return null;
  const ca = v as { method?: unknown; hash?: unknown };
  const hash = parseHash(ca.hash);
  if (hash === null) return null;
  switch (ca.method) {
    case "text":
      return `text:${hash.toTypedNix32()}`;
    case "nar":
      return `fixed:r:${hash.toTypedNix32()}`;
    case "flat":
      return `fixed:${hash.toTypedNix32()}`;
    default:
      return null;
  }
}
