// The typed errors every tool shares. A user error is recognised by its `userFacing` marker,
// so rooms that cannot import this one (db/, token/, server/config/) mark theirs the same way.

/** A problem the user can act on (bad input, a config problem, a refusal): one line, exit 1. */
export class UserError extends Error {
  readonly userFacing = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "UserError";
  }
}

/** The command line itself is wrong (unknown flag, bad flag value): one line, exit 2. */
export class UsageError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export function isUserFacing(err: unknown): err is Error {
  return err instanceof Error && (err as { userFacing?: unknown }).userFacing === true;
}
