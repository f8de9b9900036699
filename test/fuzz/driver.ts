// The fuzz loop: runs each target's cases until its time is up, every case on its own Rng
// (seed, target, case number), and collects failures with what is needed to replay them.
import { Finding, type Target } from "./parser-targets.ts";
import { Rng } from "./rng.ts";

export interface FuzzFinding {
  target: string;
  caseNo: number;
  message: string;
  /** how many cases failed the same way */
  count: number;
}

export interface TargetReport {
  target: string;
  cases: number;
  ms: number;
}

export interface RunOptions {
  seed: number;
  /** wall-clock budget for this target */
  ms: number;
  /** cases run at once (the live server's target); default 1 */
  concurrency?: number;
  /** replay exactly these case numbers instead of running for `ms` */
  only?: readonly number[];
  /** stop after this many cases even if time is left */
  maxCases?: number;
  findings: FuzzFinding[];
}

/** The finding's kind: its message without the numbers and quoted input that vary per case. */
function signature(target: string, message: string): string {
  const first = message.split("\n")[0]!.replace(/"[^"]*"|'[^']*'|`[^`]*`/g, "…").replace(/\d+/g, "N");
  return `${target}: ${first.slice(0, 160)}`;
}

export function record(findings: FuzzFinding[], target: string, caseNo: number, error: unknown): void {
  const message = error instanceof Finding ? error.message : `unexpected ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
  const sig = signature(target, message);
  const known = findings.find((f) => signature(f.target, f.message) === sig);
  if (known) known.count++;
  else findings.push({ target, caseNo, message, count: 1 });
}

export async function runTarget(target: Target, opts: RunOptions): Promise<TargetReport> {
  const started = performance.now();
  const deadline = started + opts.ms;
  let next = 0;
  let cases = 0;
  const pickCase = (): number | undefined => {
    if (opts.only) return next < opts.only.length ? opts.only[next++] : undefined;
    if (performance.now() >= deadline || (opts.maxCases !== undefined && next >= opts.maxCases)) return undefined;
    return next++;
  };
  const worker = async (): Promise<void> => {
    for (let caseNo = pickCase(); caseNo !== undefined; caseNo = pickCase()) {
      cases++;
      try {
        await target.run(Rng.forCase(opts.seed, target.name, caseNo));
      } catch (e) {
        record(opts.findings, target.name, caseNo, e);
      }
      // let timers and sockets run between synchronous cases
      if (cases % 64 === 0) await new Promise((r) => setImmediate(r));
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 1 }, worker));
  return { target: target.name, cases, ms: performance.now() - started };
}

export function formatFindings(findings: readonly FuzzFinding[], seed: number): string {
  return findings
    .map((f) => `- [${f.target}] case ${f.caseNo} (${f.count}×): ${f.message.slice(0, 2000)}\n  replay: node scripts/fuzz.ts --seed ${seed} --target ${f.target} --case ${f.caseNo}`)
    .join("\n");
}
