// What every command's --help shows after the flags: an example, as upstream's help does.
import type { Command } from "commander";

export function addExample(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText("after", `\nExample${lines.length > 1 ? "s" : ""}:\n${lines.map((l) => `  ${l}`).join("\n")}\n`);
}
