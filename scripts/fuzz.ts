// `node scripts/fuzz.ts [--seconds N] [--seed S] [--backends sqlite-local,postgres-s3] [--target NAME] [--case N,…]`
// Fuzzes the parsers (NAR, narinfo, upload info, tokens, names and hashes) and a live atticd on
// loopback for about N seconds (default 60), then prints the seed, the cases run and every
// finding with the command that replays it. Exit code 1 when something was found.
// PostgreSQL and the S3 server are started here when a backend needs them and `npm test` has not.
import { parseArgs } from "node:util";
import { randomInt } from "node:crypto";
import type { Backend, DbKind, StorageKind } from "../test/helpers/server.ts";
import { startPostgres, type PostgresCluster } from "../test/helpers/postgres.ts";
import { startS3, type S3Server } from "../test/helpers/s3.ts";
import { runFuzz, summary } from "../test/fuzz/run.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    seed: { type: "string" },
    backends: { type: "string", default: "sqlite-local" },
    target: { type: "string" },
    case: { type: "string" },
    concurrency: { type: "string", default: "4" },
    "request-timeout": { type: "string", default: "30" },
  },
});

const seed = values.seed !== undefined ? Number(values.seed) : randomInt(2 ** 31);
const backends: Backend[] = values.backends.split(",").map((s) => {
  const [db, storage] = s.trim().split("-") as [DbKind, StorageKind];
  if (!["sqlite", "postgres"].includes(db) || !["local", "s3"].includes(storage)) throw new Error(`unknown backend ${s} (sqlite-local, postgres-s3, …)`);
  return { db, storage };
});
const cases = values.case?.split(",").map(Number);
if (cases && values.target === undefined) throw new Error("--case needs --target (the case numbers are per target)");

let pg: PostgresCluster | undefined;
let s3: S3Server | undefined;
if (backends.some((b) => b.db === "postgres") && !process.env.ATTIC_TEST_PG_URL) {
  pg = await startPostgres();
  process.env.ATTIC_TEST_PG_URL = pg.url;
}
if (backends.some((b) => b.storage === "s3") && !process.env.ATTIC_TEST_S3_ENDPOINT) {
  s3 = await startS3();
  Object.assign(process.env, {
    ATTIC_TEST_S3_ENDPOINT: s3.endpoint, ATTIC_TEST_S3_REGION: s3.region,
    ATTIC_TEST_S3_ACCESS_KEY_ID: s3.accessKeyId, ATTIC_TEST_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
  });
}

console.log(`fuzz: seed ${seed}, ${values.seconds} s, backends ${values.backends}${values.target ? `, target ${values.target}` : ""}`);
console.log(`replay this run: node scripts/fuzz.ts --seed ${seed} --seconds ${values.seconds} --backends ${values.backends}`);
let report;
try {
  report = await runFuzz({
    seed,
    seconds: Number(values.seconds),
    backends,
    ...(values.target !== undefined && { target: values.target }),
    ...(cases && { cases }),
    concurrency: Number(values.concurrency),
    requestTimeoutMs: Number(values["request-timeout"]) * 1000,
    log: (line) => console.log(line),
  });
} finally {
  await s3?.stop();
  pg?.stop();
}
console.log(summary(report));
process.exit(report.findings.length > 0 ? 1 : 0);
