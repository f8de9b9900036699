// Typed errors of the client. The one top-level catch in main.ts hands them to the shared
// reporter (src/cli/report.ts): a UserError is `Error: <message>` with exit code 1; anything
// else is treated as a bug in attic-ts.
import { UserError } from "../cli/errors.ts";

export { UserError };

/** The server answered with an error status. `message` is what upstream shows. */
export class ApiError extends UserError {
  readonly status: number;
  /** upstream's error kind (`NoSuchCache`, ...) when the body was a JSON error */
  readonly kind: string | null;

  constructor(status: number, kind: string | null, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.kind = kind;
  }

  /**
   * Worth retrying: the server was overloaded or failed on its side. Not a 507 (its storage is
   * full): a retry would send the whole NAR again only to be refused again.
   */
  get transient(): boolean {
    return (this.status >= 500 && this.status !== 507) || this.status === 429;
  }
}

/** The request never got an answer (connection refused, reset, DNS, ...). */
export class NetworkError extends UserError {
  constructor(url: string, cause: unknown) {
    super(`Failed to send the request to ${url}: ${describeCause(cause)}`, { cause });
    this.name = "NetworkError";
  }
}

/** A Nix command failed or printed something we could not understand. */
export class NixError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = "NixError";
  }
}

/** Node's fetch wraps the interesting part (ECONNREFUSED, ...) in `cause`, sometimes twice. */
export function describeCause(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; depth < 4 && cur instanceof Error; depth++) {
    const code = (cur as { code?: unknown }).code;
    const text = typeof code === "string" && !cur.message.includes(code) ? `${cur.message} (${code})` : cur.message;
    // "fetch failed" says nothing the URL in our message does not.
    if (text !== "" && text !== "fetch failed" && !parts.includes(text)) parts.push(text);
    cur = cur.cause;
  }
  if (parts.length === 0) return String(err);
  return parts.join(": ");
}
