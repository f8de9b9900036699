// The exit codes of attic, atticd and atticadm (docs/cli.md, "Exit codes"). One table, so
// that a script wrapping any of the three tools can tell these cases apart the same way.
export const EXIT = {
  ok: 0,
  /** a user or system error: bad input, a config problem, a port in use, permission denied */
  error: 1,
  /** the command line is wrong: unknown flag, bad flag value, missing argument */
  usage: 2,
  /** a bug in attic-ts (the "please report" text) */
  internal: 70,
  /** stopped by Ctrl-C */
  interrupted: 130,
} as const;
