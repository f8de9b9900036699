// The chaos run (issue 15, item 8): --uploads concurrent pushes of overlapping closures from
// --clients clients into two API replicas and a collector on PostgreSQL + S3, while a replica is
// SIGKILLed and restarted at random moments, PostgreSQL is restarted once and S3 fails
// --fault-rate of its requests. Then it checks what must hold (see test/helpers/chaos.ts and
// chaos-checks.ts), prints the counts and exits 1 on any problem.
//
//   node bench/chaos.ts [--uploads 100] [--clients 10] [--jobs 5] [--caches 3] [--attempts 5]
//                       [--kill-every 1000-4000] [--fault-rate 0.05] [--grace 30] [--seed N]
import { parseArgs } from "node:util";
import { runChaos } from "../test/helpers/chaos.ts";
import { startS3 } from "../test/helpers/s3.ts";

const { values } = parseArgs({
  options: {
    uploads: { type: "string", default: "100" },
    clients: { type: "string", default: "10" },
    jobs: { type: "string", default: "5" },
    caches: { type: "string", default: "3" },
    attempts: { type: "string", default: "5" },
    "kill-every": { type: "string", default: "1000-4000" },
    "fault-rate": { type: "string", default: "0.05" },
    grace: { type: "string", default: "30" },
    seed: { type: "string", default: String(Date.now() % 1_000_000) },
  },
});
const [killMin, killMax] = values["kill-every"]!.split("-").map(Number) as [number, number];

const s3 = process.env.ATTIC_TEST_S3_ENDPOINT ? null : await startS3();
if (s3) Object.assign(process.env, { ATTIC_TEST_S3_ENDPOINT: s3.endpoint, ATTIC_TEST_S3_REGION: s3.region });
try {
  const t0 = Date.now();
  const report = await runChaos({
    uploads: Number(values.uploads),
    clients: Number(values.clients),
    jobs: Number(values.jobs),
    caches: Number(values.caches),
    attempts: Number(values.attempts),
    killEveryMs: [killMin, killMax],
    faultRate: Number(values["fault-rate"]),
    graceSeconds: Number(values.grace),
    seed: Number(values.seed),
    log: (line) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${line}`),
  });
  const faults = Object.values(report.faults).reduce((s, n) => s + n, 0);
  console.log(`\nseed ${values.seed}: ${report.seconds.toFixed(0)} s`);
  console.log(`uploads: ${report.planned} planned, ${report.acknowledged} acknowledged, ${report.gaveUp} gave up after ${values.attempts} attempts, ${report.retries} retries ${JSON.stringify(report.retryReasons)}`);
  console.log(`chaos: ${report.kills} replica kills (cutting off ${report.cutByKills} uploads in flight), ${report.pgRestarts} PostgreSQL restart, ${faults} S3 faults injected ${JSON.stringify(report.faults)}`);
  console.log(`stale state recovered by the collector during the run: ${report.staleReaped.nars} NARs, ${report.staleReaped.chunks} chunks`);
  console.log(`served: ${report.narinfosServed} narinfos with their full NARs (${report.servedUnacknowledged} paths never acknowledged), ${report.nixPulled} paths pulled by nix-store -r`);
  console.log(`storage: ${report.chunkRows} chunk rows, ${report.bucketObjects} bucket objects`);
  console.log(`server log lines at error: ${JSON.stringify(report.serverErrors, null, 1)}`);
  console.log(`last collection: ${report.finalGc.replace(/\n\s*/g, "; ")}`);
  if (report.problems.length > 0) {
    console.log(`\n${report.problems.length} PROBLEMS:`);
    for (const p of report.problems) console.log(`- ${p}`);
    process.exitCode = 1;
  } else console.log("\nno problems");
} finally {
  await s3?.stop();
}
