// Configuration errors are user errors: every problem found is reported at once, each naming
// where it came from (the file, ATTIC_SERVER_CONFIG_BASE64 or an env var) and the key path.

export interface ConfigProblem {
  /** the config file path, `ATTIC_SERVER_CONFIG_BASE64`, or the env var that supplied the value */
  source: string;
  /** dotted key path (`chunking.min-size`), a table (`database`), or "" for the whole document */
  key: string;
  message: string;
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.key ? `${p.source}: ${p.key}` : p.source;
  return `${where}: ${p.message.replace(/\n/g, "\n    ")}`;
}

export class ConfigError extends Error {
  /** a user error: print the message, no stack trace */
  readonly userFacing = true;
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    const n = problems.length;
    // one problem is one line (what the CLIs print); several are listed below the count
    super(
      n === 1
        ? `invalid server configuration: ${formatProblem(problems[0]!)}`
        : `invalid server configuration (${n} problems):\n${problems.map((p) => `  - ${formatProblem(p)}`).join("\n")}`,
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** No -f, no ATTIC_SERVER_CONFIG_BASE64 and no file at the XDG path. */
export class ConfigNotFoundError extends Error {
  readonly userFacing = true;
  readonly path: string;
  constructor(path: string) {
    super(
      `no server configuration found: pass -f PATH, set ATTIC_SERVER_CONFIG_BASE64, or create ${path} ` +
        "(atticd writes one on its first start in monolithic mode)",
    );
    this.name = "ConfigNotFoundError";
    this.path = path;
  }
}
