// The `atticadm` shell: parses flags with commander, lazy-loads the command, and has the one
// top-level catch, which hands the error to the reporter the three tools share
// (src/cli/report.ts): user errors (bad flags, config problems, a verify-only key) are one line.
import { Command, InvalidArgumentError, Option } from "commander";
import { DurationParseError, parseDuration } from "../api/duration.ts";
import { addExample } from "../cli/help.ts";
import { reportError } from "../cli/report.ts";
import { version } from "../cli/version.ts";
import { isValidCachePattern } from "../token/permissions.ts";
import type { AdminCtx } from "./context.ts";
import type { MakeTokenOptions } from "./commands/make-token.ts";

function parseValidity(value: string): number {
  try {
    return parseDuration(value);
  } catch (error) {
    if (error instanceof DurationParseError) throw new InvalidArgumentError(error.message);
    throw error;
  }
}

function collectPattern(value: string, previous: string[] | undefined): string[] {
  if (!isValidCachePattern(value)) {
    throw new InvalidArgumentError(
      "a cache name pattern is 1 to 50 characters of letters, digits, -, _, + and the wildcard *, and cannot start with - or _",
    );
  }
  return [...(previous ?? []), value];
}

const PATTERN_FLAGS: readonly [flag: string, description: string][] = [
  ["pull", "A cache that the token may pull from"],
  ["push", "A cache that the token may push to"],
  ["delete", "A cache that the token may delete store paths from"],
  ["create-cache", "A cache that the token may create"],
  ["configure-cache", "A cache that the token may configure"],
  ["configure-cache-retention", "A cache that the token may configure retention/quota for"],
  ["destroy-cache", "A cache that the token may destroy"],
];

export function buildProgram(ctx: AdminCtx): Command {
  const program = new Command("atticadm")
    .description("Attic server administration utilities.")
    .version(version(), "-V, --version", "Print version")
    .option("-f, --config <path>", "Path to the config file")
    .helpOption("-h, --help", "Print help")
    .helpCommand("help [command]", "Print help for a command")
    .exitOverride()
    .configureOutput({
      writeOut: (text) => ctx.stdout.write(text),
      writeErr: (text) => ctx.stderr.write(text),
      outputError: (text, write) => write(text.replace(/^error: /, "Error: ")),
    });
  addExample(program, 'atticadm -f server.toml make-token --sub alice --validity 1y --pull "*" --push "*"');

  const makeToken = program
    .command("make-token")
    .summary("Generate a new token")
    .description(
      "Generate a new token.\n\nFor example, a token for Alice with read-write access to any cache starting with `dev-`\n" +
        'and read-only access to `prod`, expiring in 2 years:\n\n  atticadm make-token --sub "alice" --validity "2y" --pull "dev-*" --push "dev-*" --pull "prod"',
    )
    .requiredOption("--sub <sub>", "The subject of the JWT token")
    .addOption(
      new Option("--validity <duration>", 'The validity period of the JWT token, e.g. "2 years", "3 months", "1y"')
        .argParser(parseValidity)
        .makeOptionMandatory(),
    )
    .option("--dump-claims", "Dump the claims without signing and encoding it", false);
  for (const [flag, description] of PATTERN_FLAGS) {
    makeToken.option(`--${flag} <pattern>`, `${description}; may contain wildcards, repeatable`, collectPattern);
  }
  addExample(makeToken, 'atticadm make-token --sub ci --validity "3 months" --pull "dev-*" --push "dev-*"');
  makeToken.helpOption("-h, --help", "Print help").exitOverride().action(async (opts: Record<string, unknown>) => {
    const list = (name: string): string[] => (opts[name] as string[] | undefined) ?? [];
    const options: MakeTokenOptions = {
      sub: opts.sub as string,
      validity: opts.validity as number,
      dumpClaims: opts.dumpClaims === true,
      pull: list("pull"),
      push: list("push"),
      delete: list("delete"),
      createCache: list("createCache"),
      configureCache: list("configureCache"),
      configureCacheRetention: list("configureCacheRetention"),
      destroyCache: list("destroyCache"),
    };
    const { run } = await import("./commands/make-token.ts");
    await run(options, { ...ctx, configPath: program.opts<{ config?: string }>().config });
  });
  const purge = program
    .command("purge-cache")
    .summary("Free the name of a soft-deleted cache")
    .description("Remove a soft-deleted cache (soft-delete-caches = true) for good, so that its name can be used again.")
    .argument("<name>", "The name of the deleted cache")
    .helpOption("-h, --help", "Print help")
    .exitOverride()
    .action(async (name: string) => {
      const { run } = await import("./commands/purge-cache.ts");
      await run(name, { ...ctx, configPath: program.opts<{ config?: string }>().config });
    });
  addExample(purge, "atticadm -f /etc/attic/server.toml purge-cache old-cache");
  const revoke = program
    .command("revoke-token")
    .summary("Revoke a token, or every token of a subject")
    .description(
      "Revoke a token by its jti (set by this atticadm's make-token), given the whole token or the jti alone, or with\n" +
        "--sub every token of a subject issued until now (tokens from upstream's atticadm have no jti: revoke their subject).\n" +
        "The revocation is stored in the database: every atticd using it refuses the token within seconds, with 401\n" +
        "TokenRevoked. A revoked whole token is forgotten once it has expired.",
    )
    .argument("[token]", "The token, or its jti")
    .option("--sub <subject>", "Revoke every token of this subject issued until now")
    .option("--reason <text>", "Why (shown by list-revocations)")
    .addOption(new Option("--keep <duration>", "Forget the revocation after this long (default: when the token expires; for a jti or subject, never)").argParser(parseValidity))
    .helpOption("-h, --help", "Print help")
    .exitOverride()
    .action(async (token: string | undefined, opts: { sub?: string; reason?: string; keep?: number }) => {
      const { run } = await import("./commands/revoke-token.ts");
      await run({ token, sub: opts.sub, reason: opts.reason, keep: opts.keep }, { ...ctx, configPath: program.opts<{ config?: string }>().config });
    });
  addExample(revoke, "atticadm revoke-token eyJhbGciOi... --reason 'leaked in a CI log'", "atticadm revoke-token --sub alice");
  const listRevocations = program
    .command("list-revocations")
    .summary("List the token revocations in force")
    .description("List the token revocations in force: id, what is revoked, when, until when, and the reason.")
    .helpOption("-h, --help", "Print help")
    .exitOverride()
    .action(async () => {
      const { run } = await import("./commands/list-revocations.ts");
      await run({ ...ctx, configPath: program.opts<{ config?: string }>().config });
    });
  addExample(listRevocations, "atticadm -f /etc/attic/server.toml list-revocations");
  const verify = program
    .command("verify")
    .summary("Re-check stored chunks (and NARs) against the database")
    .description(
      "Re-read every stored chunk and compare its size and hash with the database; report what is missing or damaged\n" +
        "and the store paths it affects. With --repair, mark those paths for re-upload: get-missing-paths then reports\n" +
        "them and the next `attic push` heals them. Exits with 1 when problems were found and not marked.",
    )
    .option("--quick", "Only check that each chunk file exists (no re-read)", false)
    .option("--nars", "Also reassemble every NAR and check it against its NarHash", false)
    .option("--repair", "Mark the broken paths for re-upload", false)
    .helpOption("-h, --help", "Print help")
    .exitOverride()
    .action(async (opts: { quick: boolean; nars: boolean; repair: boolean }) => {
      const { run } = await import("./commands/verify.ts");
      await run({ quick: opts.quick, nars: opts.nars, repair: opts.repair }, { ...ctx, configPath: program.opts<{ config?: string }>().config });
    });
  addExample(verify, "atticadm -f /etc/attic/server.toml verify --quick");
  const unpack = program
    .command("unpack")
    .summary("Move every chunk out of packs into an object of its own (upstream's layout)")
    .description(
      "The way back to upstream atticd: every chunk stored in a pack is written as its own object, where upstream reads\n" +
        "it, and its row repointed; packs left empty are retired and deleted by garbage collection after\n" +
        "garbage-collection.pack-retire-grace. Set storage.packs = false on every atticd first. Can be\n" +
        "interrupted and run again. Exits with 1 when chunks are left in packs.",
    )
    .option("--delete-now", "Delete the emptied packs at once (only when no atticd serves this storage)", false)
    .helpOption("-h, --help", "Print help")
    .exitOverride()
    .action(async (opts: { deleteNow: boolean }) => {
      const { run } = await import("./commands/unpack.ts");
      await run({ deleteNow: opts.deleteNow }, { ...ctx, configPath: program.opts<{ config?: string }>().config });
    });
  addExample(unpack, "atticadm -f /etc/attic/server.toml unpack");
  return program;
}

/** Runs atticadm with `argv` (node, script, args…) and returns the exit code. */
export async function main(argv: string[], ctx: AdminCtx = { env: process.env, stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  try {
    await buildProgram(ctx).parseAsync(argv);
    return 0;
  } catch (error) {
    return reportError("atticadm", error, ctx.stderr);
  }
}
