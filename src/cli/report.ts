// The one home for CLI error reporting: attic, atticd and atticadm each have exactly one
// top-level catch, and it calls reportError. User and system errors are one line naming the
// thing; anything else is a bug in attic-ts and says how to report it. Exit codes: exit-codes.ts.
import { CommanderError } from "commander";
import { isUserFacing, UsageError } from "./errors.ts";
import { EXIT } from "./exit-codes.ts";

export interface ErrorOutput {
  write(text: string): unknown;
}

/** Prints `err` for the user of `tool` and returns the exit code. */
export function reportError(tool: string, err: unknown, stderr: ErrorOutput, signal?: AbortSignal): number {
  // commander printed the help, the version or the usage error already
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  if (err instanceof UsageError) {
    stderr.write(`Error: ${err.message}\n(add --help for more information)\n`);
    return EXIT.usage;
  }
  if (signal?.aborted === true && err instanceof Error && err.name === "AbortError") {
    stderr.write("Interrupted.\n");
    return EXIT.interrupted;
  }
  if (isUserFacing(err)) {
    stderr.write(`Error: ${err.message}\n`);
    return EXIT.error;
  }
  if (isSystemError(err)) {
    // The environment said no (a port in use, permissions, a full disk): not a bug.
    stderr.write(`Error: ${describeSystemError(err)}\n`);
    return EXIT.error;
  }
  stderr.write(
    `Error: ${tool} ran into an internal error. This is a bug in attic-ts, not something you did wrong.\n` +
      "Please report it to the attic-ts maintainers with the command you ran and the details below.\n\n" +
      `${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  return EXIT.internal;
}

type SystemError = NodeJS.ErrnoException & { syscall: string; address?: string; port?: number };

export function isSystemError(err: unknown): err is SystemError {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string" && typeof (err as NodeJS.ErrnoException).syscall === "string";
}

const REASONS: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOENT: "no such file or directory",
  EISDIR: "it is a directory",
  ENOTDIR: "a part of the path is not a directory",
  ENOSPC: "no space left on the device",
  EROFS: "read-only file system",
  EEXIST: "it already exists",
  EMFILE: "too many open files",
};

/** `EACCES` → "permission denied"; Node's message for the codes without a short reason. */
export function reasonOf(err: NodeJS.ErrnoException): string {
  return REASONS[err.code ?? ""] ?? err.message;
}

/** Node's `listen EADDRINUSE: address already in use :::8080` → a sentence that names the thing. */
export function describeSystemError(err: SystemError): string {
  if (err.syscall === "listen" || err.syscall === "bind") {
    const host = err.address === undefined ? "" : err.address.includes(":") ? `[${err.address}]` : err.address;
    const where = err.port === undefined ? host : `${host}:${err.port}`;
    if (err.code === "EADDRINUSE") return `cannot listen on ${where}: the address is already in use (another atticd, or another program, listens there)`;
    if (err.code === "EADDRNOTAVAIL") return `cannot listen on ${where}: no network interface of this machine has that address`;
    if (err.code === "EACCES" || err.code === "EPERM") return `cannot listen on ${where}: permission denied (ports below 1024 need privileges)`;
    return `cannot listen on ${where}: ${err.message}`;
  }
  const reason = REASONS[err.code ?? ""];
  if (err.path !== undefined && reason !== undefined) return `cannot ${err.syscall} ${err.path}: ${reason}`;
  return err.message;
}
