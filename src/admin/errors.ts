// Typed errors of atticadm. The one top-level catch in main.ts prints a UserError (and the
// config and token errors, which are user errors too) as `Error: <message>` with exit code 1.

export class UserError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "UserError";
  }
}
