// Turning what the user typed into a store path, as upstream's `follow_store_path`: a path
// under the store dir names its top-level store path without following symlinks
// (`/nix/store/x-y/bin/foo` → `x-y`, so `…-system/sw` is not resolved); anything else
// (`./result`, `$(which attic)`, `/run/current-system`) is canonicalised first.
import { realpath } from "node:fs/promises";
import { isAbsolute, normalize, resolve } from "node:path";
import { storePathOfPath, StorePathError, type StorePath } from "../nix/store-path.ts";
import { UserError } from "./errors.ts";

export async function resolveStorePath(input: string, storeDir: string, cwd: string): Promise<StorePath> {
  if (input === "") throw new UserError("An empty path is not a store path");
  if (isAbsolute(input)) {
    const lexical = normalize(input);
    if (lexical.startsWith(`${storeDir}/`)) return inStore(input, lexical, storeDir);
  }
  let real: string;
  try {
    real = await realpath(resolve(cwd, input));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new UserError(`Cannot resolve "${input}": no such file or directory`);
    throw new UserError(`Cannot resolve "${input}": ${(err as Error).message}`);
  }
  if (real.startsWith(`${storeDir}/`)) return inStore(input, real, storeDir);
  // The store dir itself may be reached through a symlink (e.g. a bind-mounted /nix).
  const realStoreDir = await realpath(storeDir).catch(() => storeDir);
  if (realStoreDir !== storeDir && real.startsWith(`${realStoreDir}/`)) {
    return inStore(input, storeDir + real.slice(realStoreDir.length), storeDir);
  }
  throw new UserError(`"${input}" is not in the Nix store ${storeDir}${real === input ? "" : ` (it resolves to ${real})`}`);
}

function inStore(input: string, path: string, storeDir: string): StorePath {
  try {
    return storePathOfPath(path, storeDir);
  } catch (err) {
    if (err instanceof StorePathError) throw new UserError(`"${input}" is not a valid store path: ${err.message}`);
    throw err;
  }
}
