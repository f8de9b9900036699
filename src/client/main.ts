// The `attic` shell: builds the commander parser from the command table, lazy-loads the
// command that was asked for, and has the one top-level catch of the client, which hands the
// error to the reporter the three tools share (src/cli/report.ts).
import { Command, InvalidArgumentError, Option } from "commander";
import { addExample } from "../cli/help.ts";
import { reportError } from "../cli/report.ts";
import { version } from "../cli/version.ts";
import { camelCase, COMMANDS, EXAMPLES, longName, type CommandSpec, type OptSpec, type ValueParser } from "./command-table.ts";
import { processCtx, type CommandOptions, type Ctx } from "./context.ts";


const PARSERS: Record<ValueParser, (value: string, previous: unknown, defaultValue: unknown) => unknown> = {
  count: (value) => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError("Expected a non-negative integer.");
    return Number(value);
  },
  integer: (value) => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value) || n < -(2 ** 31) || n >= 2 ** 31) throw new InvalidArgumentError("Expected an integer.");
    return n;
  },
  // The first occurrence replaces the default instead of adding to it.
  repeatable: (value, previous, defaultValue) =>
    Array.isArray(previous) && previous !== defaultValue ? [...(previous as unknown[]), value] : [value],
};

function buildOption(spec: OptSpec): Option {
  const option = new Option(spec.flags, spec.description);
  if (spec.parser !== undefined) {
    const parse = PARSERS[spec.parser];
    option.argParser((value: string, previous: unknown) => parse(value, previous, spec.default));
  }
  if (spec.default !== undefined) option.default(spec.default, Array.isArray(spec.default) ? spec.default.join(", ") : undefined);
  if (spec.hidden === true) option.hideHelp();
  return option;
}

/** commander's values → the options object a command receives (args and flags, camelCased). */
function collectOptions(spec: CommandSpec, positional: unknown[], cmd: Command): CommandOptions {
  const opts = cmd.opts();
  const options: CommandOptions = {};
  for (const o of spec.options ?? []) {
    const name = longName(o.flags);
    // commander stores `--no-x` as `x: false`; commands see `noX: true`.
    options[camelCase(name)] = name.startsWith("no-") ? opts[camelCase(name.slice(3))] === false : opts[camelCase(name)];
  }
  (spec.args ?? []).forEach((a, i) => {
    options[camelCase(a.name)] = positional[i];
  });
  return options;
}

function addCommand(parent: Command, spec: CommandSpec, ctx: Ctx): void {
  const cmd = new Command(spec.name).description(spec.description);
  configure(cmd);
  for (const a of spec.args ?? []) {
    const name = a.variadic === true ? `${a.name}...` : a.name;
    cmd.argument(a.required === true ? `<${name}>` : `[${name}]`, a.description);
  }
  for (const o of spec.options ?? []) cmd.addOption(buildOption(o));
  addExample(cmd, ...spec.examples);
  if (spec.subcommands !== undefined) cmd.helpCommand("help [command]", "Print help for a command");
  for (const sub of spec.subcommands ?? []) addCommand(cmd, sub, ctx);
  const load = spec.load;
  if (load !== undefined) {
    cmd.action(async (...args: unknown[]) => {
      const self = args[args.length - 1] as Command;
      const module = await load();
      await module.run(collectOptions(spec, args.slice(0, -2), self), ctx);
    });
  }
  parent.addCommand(cmd, { hidden: spec.hidden === true });
}

function configure(cmd: Command): void {
  cmd
    .exitOverride()
    .helpOption("-h, --help", "Print help")
    .showHelpAfterError("(add --help for more information)")
    .configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, "Error: ")) });
}

export function buildProgram(ctx: Ctx): Command {
  const program = new Command("attic").description("Attic binary cache client.").version(version(), "-V, --version", "Print version");
  configure(program);
  addExample(program, ...EXAMPLES);
  program.helpCommand("help [command]", "Print help for a command");
  for (const spec of COMMANDS) addCommand(program, spec, ctx);
  return program;
}

/** Runs the CLI and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const abort = new AbortController();
  const onSignal = (): void => {
    // The first Ctrl-C asks the command to stop cleanly; the second one does not wait (and
    // gives back the cursor the progress display hid).
    if (abort.signal.aborted) {
      if (process.stderr.isTTY) process.stderr.write("\x1b[?25h\n");
      process.exit(130);
    }
    abort.abort(new DOMException("Interrupted", "AbortError"));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const ctx = processCtx(abort.signal);
  try {
    await buildProgram(ctx).parseAsync(argv);
    return 0;
  } catch (err) {
    return reportError("attic", err, ctx.stderr, abort.signal);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

