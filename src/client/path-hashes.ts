// Store paths as the path commands (`attic delete`, `attic pin`) take them: a store path (which
// need not exist on this machine), a link to one (`./result`), or its 32-character hash.
import { isValidStorePathHash, type StorePath } from "../nix/store-path.ts";
import type { Ctx } from "./context.ts";
import { defaultStoreDir } from "./nix-store.ts";
import { resolveStorePath } from "./resolve-path.ts";

export async function storePathHash(input: string, ctx: Ctx): Promise<{ hash: string; display: string; path?: StorePath }> {
  if (isValidStorePathHash(input)) return { hash: input, display: input };
  const path = await resolveStorePath(input, defaultStoreDir(ctx.env), ctx.cwd);
  return { hash: path.hash, display: path.path, path };
}
