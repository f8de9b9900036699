// docs/client.md cannot drift from the command table: every command has its section, and each
// section names exactly the arguments and flags the command has (hidden ones included).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { COMMANDS, longName, shortName, type CommandSpec } from "../../../src/client/command-table.ts";

const doc = readFileSync(join(import.meta.dirname, "..", "..", "..", "docs", "client.md"), "utf8");

/** `## \`attic cache create CACHE\`` → its text, keyed by `cache create`. */
function sections(): Map<string, string> {
  const out = new Map<string, string>();
  const parts = doc.split(/^## /m).slice(1);
  for (const part of parts) {
    const m = /^`attic ([a-z-]+(?: [a-z-]+)?)(?: [^`]*)?`/.exec(part);
    if (m !== null) out.set(m[1]!, part);
  }
  return out;
}

function leaves(specs: CommandSpec[], prefix: string[] = []): [string, CommandSpec][] {
  return specs.flatMap((s) => (s.subcommands === undefined ? [[[...prefix, s.name].join(" "), s] as [string, CommandSpec]] : leaves(s.subcommands, [...prefix, s.name])));
}

test("docs/client.md has a section for every command, naming its arguments and flags", () => {
  const docs = sections();
  const commands = leaves(COMMANDS);
  assert.deepEqual([...docs.keys()].sort(), commands.map(([name]) => name).sort(), "one section per command, no stale ones");
  for (const [name, spec] of commands) {
    const text = docs.get(name)!;
    const heading = text.slice(0, text.indexOf("\n"));
    for (const arg of spec.args ?? []) {
      assert.match(heading, new RegExp(`[ [](${arg.name.toUpperCase()})(\\.\\.\\.)?\\]?( |\`)`), `${name}: argument ${arg.name.toUpperCase()} is in the heading`);
    }
    const flags = new Set<string>();
    for (const o of spec.options ?? []) {
      const long = `--${longName(o.flags)}`;
      flags.add(long);
      assert.match(text, new RegExp(`(\`|, )${long}[\` <]`), `${name}: ${long} is documented`);
      const short = shortName(o.flags);
      if (short !== undefined) assert.ok(text.includes(`-${short}, ${long}`), `${name}: -${short} is documented`);
      if (o.hidden === true) assert.match(text, new RegExp(`${long}[^|]*\\| hidden`), `${name}: ${long} is marked hidden`);
    }
    // the flag tables name no flag the command does not have
    for (const m of text.matchAll(/^\| `[^`]*?(--[a-z-]+)/gm)) assert.ok(flags.has(m[1]!), `${name}: documented ${m[1]} exists`);
    if (spec.hidden === true) assert.match(text, /Hidden/, `${name} is marked hidden`);
  }
});
