// Store paths: `<storeDir>/<32 nix32 chars>-<name>`, with Nix's rules for the name.
import { NIX32_ALPHABET } from "./base32.ts";

export const STORE_PATH_HASH_LENGTH = 32;
/** Longest name Nix accepts (StorePath::MaxPathLen). */
export const STORE_PATH_NAME_MAX = 211;
export const DEFAULT_STORE_DIR = "/nix/store";

export const STORE_PATH_HASH_RE = new RegExp(`^[${NIX32_ALPHABET}]{${STORE_PATH_HASH_LENGTH}}$`);
const NAME_RE = /^[A-Za-z0-9+\-._?=]+$/;

export class StorePathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StorePathError";
  }
}

export interface StorePath {
  /** e.g. `/nix/store` (no trailing slash) */
  readonly storeDir: string;
  /** the 32-character nix32 hash part */
  readonly hash: string;
  readonly name: string;
  /** `<hash>-<name>` */
  readonly baseName: string;
  /** `<storeDir>/<baseName>` */
  readonly path: string;
}

export function isValidStorePathHash(s: string): boolean {
  return STORE_PATH_HASH_RE.test(s);
}

/** Why `name` is not a valid store path name, or undefined when it is. */
function nameProblem(name: string): string | undefined {
  if (name.length === 0) return "has an empty name";
  if (name.length > STORE_PATH_NAME_MAX) return `has a name longer than ${STORE_PATH_NAME_MAX} characters`;
  if (name.startsWith(".")) return "has a name starting with '.'";
  if (!NAME_RE.test(name)) {
    const bad = [...name].find((c) => !NAME_RE.test(c));
    return `has a name with the illegal character ${JSON.stringify(bad)}`;
  }
  return undefined;
}

export function isValidStorePathName(name: string): boolean {
  return nameProblem(name) === undefined;
}

/** Checks a store directory: absolute, no trailing slash, no empty, `.` or `..` components. */
export function checkStoreDir(storeDir: string): string {
  if (!storeDir.startsWith("/") || storeDir.length < 2 || storeDir.endsWith("/")) {
    throw new StorePathError(`store directory '${storeDir}' must be an absolute path without a trailing slash`);
  }
  for (const part of storeDir.slice(1).split("/")) {
    if (part === "" || part === "." || part === ".." || part.includes("\0")) {
      throw new StorePathError(`store directory '${storeDir}' is not a canonical path`);
    }
  }
  return storeDir;
}

export function parseStorePathBaseName(baseName: string): { hash: string; name: string } {
  if (baseName.length < STORE_PATH_HASH_LENGTH + 1 || baseName[STORE_PATH_HASH_LENGTH] !== "-") {
    throw new StorePathError(`'${baseName}' is not a store path base name (expected <32-character hash>-<name>)`);
  }
  const hash = baseName.slice(0, STORE_PATH_HASH_LENGTH);
  if (!isValidStorePathHash(hash)) {
    throw new StorePathError(`store path '${baseName}' has an invalid hash part '${hash}'`);
  }
  const name = baseName.slice(STORE_PATH_HASH_LENGTH + 1);
  const problem = nameProblem(name);
  if (problem !== undefined) throw new StorePathError(`store path '${baseName}' ${problem}`);
  return { hash, name };
}

export function storePathFromBaseName(storeDir: string, baseName: string): StorePath {
  checkStoreDir(storeDir);
  const { hash, name } = parseStorePathBaseName(baseName);
  return { storeDir, hash, name, baseName, path: `${storeDir}/${baseName}` };
}

export function parseStorePath(path: string, storeDir: string = DEFAULT_STORE_DIR): StorePath {
  checkStoreDir(storeDir);
  const prefix = `${storeDir}/`;
  if (!path.startsWith(prefix)) throw new StorePathError(`path '${path}' is not in the Nix store ${storeDir}`);
  const baseName = path.slice(prefix.length);
  if (baseName.includes("/")) {
    throw new StorePathError(`path '${path}' is inside a store path, not a store path itself`);
  }
  return storePathFromBaseName(storeDir, baseName);
}

/** The store path containing `p` (which may be the store path itself or any file below it). */
export function storePathOfPath(p: string, storeDir: string = DEFAULT_STORE_DIR): StorePath {
  checkStoreDir(storeDir);
  const prefix = `${storeDir}/`;
  if (!p.startsWith(prefix)) throw new StorePathError(`path '${p}' is not in the Nix store ${storeDir}`);
  const rest = p.slice(prefix.length);
  const slash = rest.indexOf("/");
  return storePathFromBaseName(storeDir, slash < 0 ? rest : rest.slice(0, slash));
}

/** `<storeDir>` of a full store path, checking that the path is a store path. */
export function storeDirOf(path: string): string {
  const slash = path.lastIndexOf("/");
  if (slash <= 0) throw new StorePathError(`'${path}' is not an absolute store path`);
  const storeDir = path.slice(0, slash);
  parseStorePath(path, storeDir);
  return storeDir;
}
