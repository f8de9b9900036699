// The backend matrix of the integration tests, {sqlite, postgres} × {local, s3}, and the env
// variable that narrows it for a local run (read by the test files and checked up front by the runner).
export type DbKind = "sqlite" | "postgres";
export type StorageKind = "local" | "s3";
export interface Backend {
  db: DbKind;
  storage: StorageKind;
}

export const ALL_BACKENDS: Backend[] = [
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "local" },
  { db: "sqlite", storage: "s3" },
  { db: "postgres", storage: "s3" },
];

/**
 * ATTIC_TEST_BACKENDS=sqlite-local,postgres-s3 narrows a file's own matrix (`defaults`) for a local
 * run: a file written for local storage only is never run on S3 by it. A misspelt name is an
 * error: run quietly on some other backend, it would report a pass for one never tested.
 */
export function backendsFromEnv(defaults: Backend[] = ALL_BACKENDS): Backend[] {
  const env = process.env.ATTIC_TEST_BACKENDS;
  if (!env) return defaults;
  const byName = new Map(ALL_BACKENDS.map((b) => [`${b.db}-${b.storage}`, b]));
  const wanted = new Set(
    env.split(",").map((s) => {
      const backend = byName.get(s.trim());
      if (!backend) throw new Error(`ATTIC_TEST_BACKENDS: unknown backend "${s.trim()}" (valid: ${[...byName.keys()].join(", ")})`);
      return backend;
    }),
  );
  return defaults.filter((d) => [...wanted].some((w) => w.db === d.db && w.storage === d.storage));
}

export const backendName = (b: Backend) => `${b.db}+${b.storage}`;
