// `attic gen-completions bash|zsh|fish`: print a completion script on stdout.
import { generateCompletions, SHELLS, type Shell } from "../completions.ts";
import type { Ctx } from "../context.ts";
import { UserError } from "../errors.ts";

export type GenCompletionsOptions = { shell?: string };

export async function run(options: GenCompletionsOptions, ctx: Ctx): Promise<void> {
  if (options.shell === undefined) throw new UserError("Must specify a shell.");
  if (!(SHELLS as readonly string[]).includes(options.shell)) {
    throw new UserError(`Unsupported shell "${options.shell}": use one of ${SHELLS.join(", ")}`);
  }
  ctx.stdout.write(generateCompletions(options.shell as Shell));
}
