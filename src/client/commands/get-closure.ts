// `attic get-closure PATH [--include-outputs]` (hidden, as upstream): the full closure paths,
// one per line on stdout, like `nix-store -qR`.
import { print, type Ctx } from "../context.ts";
import { NixCliStore } from "../nix-store.ts";
import { resolveStorePath } from "../resolve-path.ts";

export type GetClosureOptions = { storePath: string; includeOutputs?: boolean };

export async function run(options: GetClosureOptions, ctx: Ctx): Promise<void> {
  const store = new NixCliStore(ctx.env);
  const root = await resolveStorePath(options.storePath, store.storeDir, ctx.cwd);
  for (const path of await store.closure([root.path], { includeOutputs: options.includeOutputs === true })) print(ctx, path);
}
