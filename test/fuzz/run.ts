// One fuzz run: the parser targets, then the live server on each backend asked for, sharing a
// time budget; returns what ran and what failed. scripts/fuzz.ts and test/fuzz/fuzz.test.ts
// both call this.
import type { Backend } from "../helpers/server.ts";
import { formatFindings, runTarget, type FuzzFinding, type TargetReport } from "./driver.ts";
import { PARSER_TARGETS } from "./parser-targets.ts";
import { startServerFuzz } from "./server-target.ts";

export interface FuzzOptions {
  seed: number;
  seconds: number;
  backends: readonly Backend[];
  /** run only targets whose name contains this */
  target?: string;
  /** replay these case numbers (with `target`) */
  cases?: readonly number[];
  /** requests in flight at once against the server */
  concurrency?: number;
  /** an answer slower than this is a hang */
  requestTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface FuzzReport {
  seed: number;
  ms: number;
  targets: TargetReport[];
  findings: FuzzFinding[];
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const log = opts.log ?? (() => undefined);
  const started = performance.now();
  const findings: FuzzFinding[] = [];
  const reports: TargetReport[] = [];
  const wanted = (name: string): boolean => opts.target === undefined || name.includes(opts.target);
  const parsers = PARSER_TARGETS.filter((t) => wanted(t.name));
  const backends = opts.backends.filter((b) => wanted(`server-${b.db}-${b.storage}`));
  // the server gets two thirds of the time: a request costs far more than a parse
  const slots = parsers.length + 2 * backends.length;
  const slotMs = (opts.seconds * 1000) / Math.max(1, slots);

  for (const t of parsers) {
    const r = await runTarget(t, { seed: opts.seed, ms: slotMs, findings, ...(opts.cases && { only: opts.cases }) });
    reports.push(r);
    log(`${r.target}: ${r.cases} cases in ${(r.ms / 1000).toFixed(1)} s`);
  }
  for (const b of backends) {
    const fuzz = await startServerFuzz(b, opts.requestTimeoutMs ?? 30_000);
    try {
      const r = await runTarget(fuzz.target, {
        seed: opts.seed, ms: 2 * slotMs, concurrency: opts.concurrency ?? 4, findings, ...(opts.cases && { only: opts.cases }),
      });
      reports.push(r);
      log(`${r.target}: ${r.cases} requests in ${(r.ms / 1000).toFixed(1)} s`);
      for (const problem of await fuzz.finalChecks()) {
        findings.push({ target: fuzz.target.name, caseNo: -1, message: `after the run: ${problem}`, count: 1 });
      }
    } finally {
      await fuzz.stop();
    }
  }
  return { seed: opts.seed, ms: performance.now() - started, targets: reports, findings };
}

export function summary(report: FuzzReport): string {
  const cases = report.targets.reduce((n, t) => n + t.cases, 0);
  const lines = [`seed ${report.seed}: ${cases} cases in ${(report.ms / 1000).toFixed(1)} s, ${report.findings.length} finding(s)`];
  if (report.findings.length > 0) lines.push(formatFindings(report.findings, report.seed));
  return lines.join("\n");
}
