// `attic cache destroy CACHE [--no-confirm]`: asks for the cache name first, as upstream.
import { createInterface } from "node:readline/promises";
import { connect } from "../connect.ts";
import { say, type Ctx } from "../context.ts";
import { UserError } from "../errors.ts";

export type CacheDestroyOptions = { cache: string; noConfirm?: boolean };

export async function run(options: CacheDestroyOptions, ctx: Ctx): Promise<void> {
  const { serverName, cache, api } = await connect(ctx, options.cache);
  if (options.noConfirm !== true) {
    say(ctx, "When you destroy a cache:");
    say(ctx, "");
    say(ctx, "1. Everyone will lose access.");
    say(ctx, "2. The underlying data won't be deleted immediately.");
    say(ctx, "3. You may not be able to create a cache of the same name.");
    say(ctx, "");
    const answer = await ask(ctx, `⚠️ Type the cache name to confirm destroying "${cache}" on "${serverName}": `);
    if (answer !== cache) throw new UserError("Incorrect answer. Aborting...");
  }
  await api.destroyCache(cache);
  say(ctx, "🗑️ The cache was destroyed.");
}

/** One line from stdin (a terminal or a pipe); end of input counts as an empty answer. */
async function ask(ctx: Ctx, prompt: string): Promise<string> {
  const rl = createInterface({ input: ctx.stdin, output: ctx.stderr, terminal: ctx.stdin.isTTY === true });
  try {
    const closed = new Promise<string>((resolve) => rl.once("close", () => resolve("")));
    return (await Promise.race([rl.question(prompt, { signal: ctx.signal }), closed])).trim();
  } finally {
    rl.close();
  }
}
