// Database URLs as upstream accepts them (sqlx): `sqlite://…`, `sqlite:…`, `postgres://…`,
// `postgresql://…` (socket hosts via `?host=/run/postgresql`).

export type DatabaseTarget =
  | { engine: "sqlite"; path: string; memory: boolean; create: boolean; readOnly: boolean }
  | { engine: "postgres"; url: string };

export class DatabaseUrlError extends Error {
  override name = "DatabaseUrlError";
  /** a user error: the CLIs print the message alone (src/cli/errors.ts) */
  readonly userFacing = true;
}

/** The database named by the config could not be opened (a missing folder, refused, bad password). */
export class DatabaseOpenError extends Error {
  override name = "DatabaseOpenError";
  readonly userFacing = true;
}

export function parseDatabaseUrl(url: string): DatabaseTarget {
  if (/^postgres(ql)?:\/\//i.test(url)) return { engine: "postgres", url };
  if (!/^sqlite:/i.test(url)) {
    throw new DatabaseUrlError(`unsupported database URL (expected sqlite: or postgres://): ${redact(url)}`);
  }
  let rest = url.slice("sqlite:".length);
  if (rest.startsWith("//")) rest = rest.slice(2);
  const q = rest.indexOf("?");
  const query = new URLSearchParams(q >= 0 ? rest.slice(q + 1) : "");
  const rawPath = q >= 0 ? rest.slice(0, q) : rest;
  const mode = query.get("mode") ?? "rwc";
  if (!["ro", "rw", "rwc", "memory"].includes(mode)) throw new DatabaseUrlError(`unsupported SQLite mode=${mode}`);
  const path = decodeURIComponent(rawPath);
  const memory = path === ":memory:" || path === "" || mode === "memory";
  if (memory) return { engine: "sqlite", path: ":memory:", memory: true, create: true, readOnly: false };
  return { engine: "sqlite", path, memory: false, create: mode === "rwc", readOnly: mode === "ro" };
}

/** A URL fit for logs: the password is replaced. */
export function redact(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^@/]*@/, "$1***@");
}
