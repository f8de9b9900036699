// Every command and flag of `attic`, in one table: main.ts builds the commander parser from it
// and completions.ts the shell completions, so the two cannot drift. Commands are loaded only
// when run. Names, flags and defaults are upstream's (client/src/cli.rs, command/*.rs).
import type { CommandModule } from "./context.ts";

export interface ArgSpec {
  /** kebab-case; the command receives it camelCased */
  name: string;
  description: string;
  required?: boolean;
  variadic?: boolean;
  /** completed as file names */
  file?: boolean;
}

export type ValueParser = "count" | "integer" | "repeatable";

export interface OptSpec {
  /** commander syntax: `-j, --jobs <N>`, `--public` */
  flags: string;
  description: string;
  default?: unknown;
  hidden?: boolean;
  parser?: ValueParser;
}

export interface CommandSpec {
  name: string;
  description: string;
  hidden?: boolean;
  args?: ArgSpec[];
  options?: OptSpec[];
  subcommands?: CommandSpec[];
  load?: () => Promise<CommandModule>;
  /** shown at the end of --help; every command has at least one */
  examples: string[];
}

const cacheArg = (description: string): ArgSpec => ({
  name: "cache",
  description: `${description} Either \`servername:cachename\` or \`cachename\` on the default server.`,
  required: true,
});

const jobs: OptSpec = { flags: "-j, --jobs <N>", description: "The maximum number of parallel upload processes.", default: 5, parser: "count" };
const ignoreUpstream: OptSpec = { flags: "--ignore-upstream-cache-filter", description: "Ignore the upstream cache filter." };
const chunkSize: OptSpec = {
  flags: "--chunk-size <BYTES>",
  description:
    "The maximum size of each uploaded part in bytes, when the server takes uploads in parts (upload sessions). Default: the largest the server allows. NARs larger than one part go in parts; `0` sends every NAR in a single request.",
  parser: "count",
};
const forcePreamble: OptSpec = { flags: "--force-preamble", description: "Always send the upload info as part of the payload.", hidden: true };
const storeDirHelp = "The Nix store path this binary cache uses. You probably don't want to change this.";
const priorityHelp = "The priority of the binary cache. A lower number denotes a higher priority; https://cache.nixos.org has a priority of 40.";
const upstreamHelp =
  "The signing key name of an upstream cache. When pushing to the cache, paths signed with this key will be skipped by default. Repeat to add several names.";

// The casts: each command module narrows the options type it accepts (see CommandModule).
const load = (p: Promise<unknown>): Promise<CommandModule> => p as Promise<CommandModule>;

/** `attic --help`'s examples: the first steps of the README */
export const EXAMPLES = ["attic login local http://localhost:8080 eyJhbGciOi...", "attic cache create hello", "attic push hello ./result"];

export const COMMANDS: CommandSpec[] = [
  {
    name: "login",
    examples: ["attic login local http://localhost:8080 eyJhbGciOi..."],
    description: "Log into an Attic server.",
    args: [
      { name: "name", description: "Name of the server (env: ATTIC_LOGIN_NAME)." },
      { name: "endpoint", description: "Endpoint of the server (env: ATTIC_LOGIN_ENDPOINT)." },
      { name: "token", description: "Access token (env: ATTIC_LOGIN_TOKEN)." },
    ],
    options: [
      { flags: "--set-default", description: "Set the server as the default (env: ATTIC_LOGIN_FORCE_DEFAULT)." },
      {
        flags: "--oidc",
        description:
          "Inside a CI job: exchange the job's OIDC ID token for a short-lived token instead of giving TOKEN (GitHub Actions with `id-token: write`, or a token from --id-token-file / --id-token-env; attic-ts addition).",
      },
      { flags: "--id-token-file <PATH>", description: "With --oidc: read the ID token from this file." },
      { flags: "--id-token-env <VAR>", description: "With --oidc: read the ID token from this environment variable (GitLab CI: the variable named in `id_tokens:`)." },
      { flags: "--audience <AUD>", description: "With --oidc on GitHub Actions: the audience to request (default: ENDPOINT)." },
    ],
    load: () => load(import("./commands/login.ts")),
  },
  {
    name: "use",
    examples: ["attic use hello"],
    description: "Configure Nix to use a binary cache.",
    args: [cacheArg("The cache to configure.")],
    load: () => load(import("./commands/use.ts")),
  },
  {
    name: "push",
    examples: ["attic push hello ./result", "nix-store -qR ./result | attic push hello --stdin"],
    description: "Push closures to a binary cache.",
    args: [cacheArg("The cache to push to."), { name: "paths", description: "The store paths to push.", variadic: true, file: true }],
    options: [
      { flags: "--stdin", description: "Read paths from the standard input." },
      { flags: "--no-closure", description: "Push the specified paths only and do not compute closures." },
      ignoreUpstream,
      jobs,
      chunkSize,
      forcePreamble,
    ],
    load: () => load(import("./commands/push.ts")),
  },
  {
    name: "cache",
    examples: ["attic cache create hello", "attic cache info hello"],
    description: "Manage caches on an Attic server.",
    subcommands: [
      {
        name: "create",
        examples: ["attic cache create hello", "attic cache create --public --priority 30 local:ci"],
        description: "Create a cache. You need the `create_cache` permission on the cache that you are creating.",
        args: [cacheArg("Name of the cache to create.")],
        options: [
          { flags: "--public", description: "Make the cache public: anyone can pull from it without a token. By default, caches are private." },
          { flags: "--store-dir <PATH>", description: storeDirHelp, default: "/nix/store", hidden: true },
          { flags: "--priority <N>", description: priorityHelp, default: 41, parser: "integer" },
          { flags: "--upstream-cache-key-name <NAME>", description: upstreamHelp, default: ["cache.nixos.org-1"], parser: "repeatable" },
        ],
        load: () => load(import("./commands/cache-create.ts")),
      },
      {
        name: "configure",
        examples: ["attic cache configure hello --public --retention-period \"2 weeks\""],
        description: "Configure a cache. You need the `configure_cache` permission on the cache that you are configuring.",
        args: [cacheArg("Name of the cache to configure.")],
        options: [
          { flags: "--regenerate-keypair", description: "Regenerate the signing keypair. All users will need to configure the new signing key in `nix.conf`." },
          { flags: "--public", description: "Make the cache public. Use `--private` to make it private." },
          { flags: "--private", description: "Make the cache private. Use `--public` to make it public." },
          { flags: "--store-dir <PATH>", description: storeDirHelp, hidden: true },
          { flags: "--priority <N>", description: priorityHelp, parser: "integer" },
          { flags: "--upstream-cache-key-name <NAME>", description: upstreamHelp, parser: "repeatable" },
          {
            flags: "--retention-period <PERIOD>",
            description: 'Set the retention period of the cache. You can use expressions like "2 years", "3 months" and "1y". Needs the `configure_cache_retention` permission.',
          },
          { flags: "--reset-retention-period", description: "Reset the retention period of the cache to global default." },
          { flags: "--max-size <SIZE>", description: 'Set the size quota of the cache, like "10 GiB" or "500 MB" (attic-ts addition).' },
          { flags: "--reset-max-size", description: "Remove the size quota of the cache (attic-ts addition)." },
          {
            flags: "--upstream <URL>",
            description:
              "Add a pull-through upstream (e.g. https://cache.nixos.org), asked after those already set, or change the keys of one already set: paths the cache does not have are fetched from it (attic-ts addition; the server's `[pull-through] allowed-upstreams` must allow the URL).",
            parser: "repeatable",
          },
          { flags: "--upstream-key <KEY>", description: "A public key (`name:base64`) whose signatures the `--upstream` given is trusted for (attic-ts addition).", parser: "repeatable" },
          { flags: "--remove-upstream <URL>", description: "Remove a pull-through upstream (attic-ts addition).", parser: "repeatable" },
          { flags: "--clear-upstreams", description: "Remove every pull-through upstream (attic-ts addition)." },
        ],
        load: () => load(import("./commands/cache-configure.ts")),
      },
      {
        name: "destroy",
        examples: ["attic cache destroy hello"],
        description: "Destroy a cache. You need the `destroy_cache` permission on the cache that you are destroying.",
        args: [cacheArg("Name of the cache to destroy.")],
        options: [{ flags: "--no-confirm", description: "Don't ask for interactive confirmation." }],
        load: () => load(import("./commands/cache-destroy.ts")),
      },
      {
        name: "list",
        examples: ["attic cache list", "attic cache list ci"],
        description: "List the caches your token can see on a server: name, visibility, size and object count (attic-ts addition).",
        args: [{ name: "server", description: "The server to ask (default: the default server)." }],
        load: () => load(import("./commands/cache-list.ts")),
      },
      {
        name: "info",
        examples: ["attic cache info hello"],
        description: "Show the current configuration of a cache.",
        args: [cacheArg("Name of the cache to query.")],
        load: () => load(import("./commands/cache-info.ts")),
      },
    ],
  },
  {
    name: "delete",
    examples: ["attic delete hello /nix/store/7x1h…-secret-config", "attic delete hello ./result"],
    description:
      "Remove store paths from a cache. You need the `delete` permission on the cache. Other caches keep their copies; the data is freed by the server's next garbage collection once no cache uses it (attic-ts addition).",
    args: [cacheArg("The cache to delete from."), { name: "paths", description: "The store paths (or their hashes) to delete.", required: true, variadic: true, file: true }],
    load: () => load(import("./commands/delete.ts")),
  },
  {
    name: "pin",
    examples: ["attic pin prod web-server /run/current-system"],
    description:
      "Pin a store path and its closure in the cache under a name, keeping them from retention and quota garbage collection. Pinning an existing name moves it. You need the `configure_cache_retention` permission (attic-ts addition).",
    args: [
      cacheArg("The cache to pin in."),
      { name: "name", description: "The pin's name (letters, digits, -, _, +).", required: true },
      { name: "path", description: "The store path (or its hash) to pin; the cache must hold it.", required: true, file: true },
    ],
    load: () => load(import("./commands/pin.ts")),
  },
  {
    name: "unpin",
    examples: ["attic unpin prod web-server"],
    description: "Remove a pin; its paths are subject to garbage collection again. You need the `configure_cache_retention` permission (attic-ts addition).",
    args: [cacheArg("The cache of the pin."), { name: "name", description: "The pin's name.", required: true }],
    load: () => load(import("./commands/unpin.ts")),
  },
  {
    name: "pins",
    examples: ["attic pins prod"],
    description: "List the pins of a cache (attic-ts addition).",
    args: [cacheArg("The cache to list the pins of.")],
    load: () => load(import("./commands/pins.ts")),
  },
  {
    name: "watch-store",
    examples: ["attic watch-store hello"],
    description: "Watch the Nix Store for new paths and upload them to a binary cache.",
    args: [cacheArg("The cache to push to.")],
    options: [
      { flags: "--no-closure", description: "Push the new paths only and do not compute closures.", hidden: true },
      ignoreUpstream,
      jobs,
      chunkSize,
      forcePreamble,
    ],
    load: () => load(import("./commands/watch-store.ts")),
  },
  {
    name: "get-closure",
    examples: ["attic get-closure ./result"],
    description: "Returns the closure of a store path (test). This is similar to `nix-store -qR`.",
    hidden: true,
    args: [{ name: "store-path", description: "A store path, or a path inside the store, or a symlink to one.", required: true, file: true }],
    options: [{ flags: "--include-outputs", description: "For derivations, include their outputs." }],
    load: () => load(import("./commands/get-closure.ts")),
  },
  {
    name: "gen-completions",
    examples: ["attic gen-completions bash > ~/.local/share/bash-completion/completions/attic"],
    description: "Generate shell autocompletion files.",
    args: [{ name: "shell", description: "The shell to generate autocompletion files for (bash, zsh, fish)." }],
    load: () => load(import("./commands/gen-completions.ts")),
  },
];

/** `-j, --jobs <N>` → `jobs`, `--no-closure` → `no-closure` */
export function longName(flags: string): string {
  const name = /--([a-z0-9-]+)/.exec(flags)?.[1];
  if (name === undefined) throw new Error(`option without a long name: ${flags}`);
  return name;
}

/** `-j, --jobs <N>` → `j` */
export function shortName(flags: string): string | undefined {
  return /(?:^|[\s,])-([a-zA-Z])\b/.exec(flags)?.[1];
}

export function camelCase(kebab: string): string {
  return kebab.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function takesValue(flags: string): boolean {
  return /[<[]/.test(flags);
}
