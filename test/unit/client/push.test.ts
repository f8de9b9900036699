import assert from "node:assert/strict";
import { test } from "node:test";
import type { UploadPathNarInfo } from "../../../src/api/v1.ts";
import type { UploadOutcome } from "../../../src/client/api.ts";
import { ApiError, NetworkError, UserError } from "../../../src/client/errors.ts";
import type { PathInfo } from "../../../src/client/nix-path-info.ts";
import { PlainReporter, resultLine, type PathBar } from "../../../src/client/progress.ts";
import { hashOfPath } from "../../../src/client/push/plan.ts";
import { Pusher } from "../../../src/client/push/pusher.ts";
import { PushSession } from "../../../src/client/push/session.ts";
import { uploadWithRetry } from "../../../src/client/push/upload.ts";
import { FakeStore, fakePath } from "./fakes.ts";
import { waitFor } from "../../helpers/wait.ts";

const noBar: PathBar = { advance: () => undefined, restart: () => undefined };
const fast = { attempts: 3, baseDelayMs: 1 };

/** An upload API that fails as told, and records the bytes it read on each attempt. */
function flakyApi(failures: unknown[], outcome: UploadOutcome = { deduplicated: false, fileSize: 1, fracDeduplicated: null }) {
  const attempts: { info: UploadPathNarInfo; bytes: number }[] = [];
  return {
    attempts,
    async uploadPath(info: UploadPathNarInfo, nar: AsyncIterable<Uint8Array>): Promise<UploadOutcome> {
      let bytes = 0;
      for await (const c of nar) bytes += c.length;
      attempts.push({ info, bytes });
      const failure = failures.shift();
      if (failure !== undefined) throw failure;
      return outcome;
    },
  };
}

test("transient failures are retried with the NAR streamed again from the start", async () => {
  const info = fakePath("a", "x", { narSize: 1000 });
  const store = new FakeStore([info]);
  const api = flakyApi([new ApiError(503, "X", "busy"), new NetworkError("http://x", new Error("reset"))]);
  let restarts = 0;
  let advanced = 0;
  const outcome = await uploadWithRetry(info, { store, api, cache: "c", forcePreamble: false, retry: fast }, {
    advance: (n) => (advanced += n),
    restart: () => restarts++,
  });
  assert.equal(outcome.deduplicated, false);
  assert.deepEqual(api.attempts.map((a) => a.bytes), [1000, 1000, 1000]);
  assert.equal(restarts, 2);
  assert.equal(advanced, 3000);
  assert.equal(store.calls.nar, 3);
});

test("client errors are not retried, and retries stop after 3 attempts", async () => {
  const info = fakePath("a", "x");
  const store = new FakeStore([info]);
  const bad = flakyApi([new ApiError(400, "RequestError", "RequestError: General request error: Bad NAR Hash or Size")]);
  await assert.rejects(uploadWithRetry(info, { store, api: bad, cache: "c", forcePreamble: false, retry: fast }, noBar), /Bad NAR Hash/);
  assert.equal(bad.attempts.length, 1);
  const down = flakyApi([new ApiError(500, "E", "a"), new ApiError(502, null, "b"), new ApiError(429, null, "c"), new ApiError(500, null, "d")]);
  await assert.rejects(uploadWithRetry(info, { store, api: down, cache: "c", forcePreamble: false, retry: fast }, noBar), { message: "c" });
  assert.equal(down.attempts.length, 3);
});

test("a 507 (the server's storage is full) is not retried", async () => {
  const info = fakePath("a", "x");
  const store = new FakeStore([info]);
  const full = flakyApi([new ApiError(507, "StorageFull", "StorageFull: The server's storage is full.")]);
  await assert.rejects(uploadWithRetry(info, { store, api: full, cache: "c", forcePreamble: false, retry: fast }, noBar), { message: "StorageFull: The server's storage is full." });
  assert.equal(full.attempts.length, 1);
});

class Collect {
  lines: string[] = [];
  write(s: string): boolean {
    this.lines.push(s.trimEnd());
    return true;
  }
}

test("the pusher uploads with N workers, reports each path and collects failures", async () => {
  const paths = Array.from({ length: 7 }, (_, i) => fakePath("abcdfghij"[i]!, `p${i}`, { narSize: 10 * (i + 1) }));
  const store = new FakeStore(paths);
  let inFlight = 0;
  let maxInFlight = 0;
  const api = {
    async uploadPath(info: UploadPathNarInfo, nar: AsyncIterable<Uint8Array>): Promise<UploadOutcome> {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      for await (const _ of nar) await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      if (info.store_path.endsWith("-p3")) throw new UserError("AccessError: nope");
      if (info.store_path.endsWith("-p4")) return { deduplicated: true, fileSize: null, fracDeduplicated: null };
      return { deduplicated: false, fileSize: 1, fracDeduplicated: info.store_path.endsWith("-p5") ? 0.456 : 0.005 };
    },
  };
  const out = new Collect();
  const reporter = new PlainReporter(out as unknown as NodeJS.WritableStream);
  const pusher = new Pusher({ store, api, cache: "c", forcePreamble: false, reporter, jobs: 3, retry: fast });
  for (const p of paths) pusher.queue(p);
  await pusher.wait();
  assert.equal(maxInFlight, 3);
  assert.equal(pusher.pushed.length, 6);
  assert.deepEqual(pusher.failures.map((f) => f.path), [paths[3]!.path]);
  assert.equal(out.lines.length, 7);
  assert.ok(out.lines.includes(`❌ ${"d".repeat(32)}-p3: AccessError: nope`));
  assert.ok(out.lines.includes(`✅ ${"f".repeat(32)}-p4 (deduplicated)`));
  assert.ok(out.lines.some((l) => /^✅ g{32}-p5 \(\d+(\.\d\d)? (B|KiB|MiB|GiB)\/s, 45\.6% deduplicated\)$/.test(l)), out.lines.join("\n"));
  assert.ok(out.lines.some((l) => /^✅ a{32}-p0 \([^,]+\/s\)$/.test(l)), "dedup ≤ 1% is not shown");
  assert.equal(reporter.totals.done, 6);
  assert.equal(reporter.totals.failed, 1);
});

test("result lines: speed as indicatif's HumanBytes, base names as upstream prints them", () => {
  const info: PathInfo = fakePath("r", "attic-0.1.0", { narSize: 52.89 * 1024 * 1024 });
  assert.equal(resultLine(info, { ok: true, deduplicated: false, fracDeduplicated: null, seconds: 1 }), `✅ ${"r".repeat(32)}-attic-0.1.0 (52.89 MiB/s)`);
  assert.equal(resultLine(fakePath("r", "x", { narSize: 100 }), { ok: true, deduplicated: false, fracDeduplicated: 0.5, seconds: 2 }), `✅ ${"r".repeat(32)}-x (50 B/s, 50.0% deduplicated)`);
});

test("a push session batches paths, plans each batch once and never pushes a path twice", async () => {
  const a = fakePath("a", "a");
  const b = fakePath("b", "b", { references: [a.path] });
  const c = fakePath("c", "c", { references: [a.path] });
  const store = new FakeStore([a, b, c]);
  const uploaded: string[] = [];
  const missingCalls: string[][] = [];
  const api = {
    getMissingPaths: async (_c: string, hashes: string[]) => {
      missingCalls.push(hashes);
      return hashes;
    },
    async uploadPath(info: UploadPathNarInfo, nar: AsyncIterable<Uint8Array>): Promise<UploadOutcome> {
      for await (const _ of nar);
      uploaded.push(info.store_path);
      return { deduplicated: false, fileSize: 1, fracDeduplicated: null };
    },
  };
  const reporter = new PlainReporter(new Collect() as unknown as NodeJS.WritableStream);
  const pusher = new Pusher({ store, api, cache: "c", forcePreamble: false, reporter, jobs: 2 });
  const plans: number[] = [];
  const session = new PushSession(
    pusher,
    { store, api, cache: "c", upstreamKeyNames: [] },
    { noClosure: false, ignoreUpstreamFilter: false },
    { onPlan: (p) => plans.push(p.paths.length) },
    { idleMs: 30, maxMs: 200 },
  );
  session.queue([b.path]);
  session.queue([b.path]);
  await waitFor(() => plans.length === 1, { what: "the first batch, flushed after 30 ms idle" });
  session.queue([c.path, b.path]);
  await session.close();
  assert.deepEqual(plans, [2, 1]);
  assert.deepEqual(uploaded.sort(), [a.path, b.path, c.path].sort());
  assert.equal(missingCalls.length, 2);
  // b was planned already; c's closure is asked about, and a (pushed before) is not uploaded again
  assert.deepEqual(missingCalls[1], [hashOfPath(c.path), hashOfPath(a.path)]);
});

test("a steady trickle of paths is still flushed after the maximum batch time", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const paths = Array.from({ length: 6 }, (_, i) => fakePath("abcdfg"[i]!, `t${i}`));
  const store = new FakeStore(paths);
  const api = {
    getMissingPaths: async (_c: string, hashes: string[]) => hashes,
    uploadPath: async (_i: UploadPathNarInfo, nar: AsyncIterable<Uint8Array>): Promise<UploadOutcome> => {
      for await (const _ of nar);
      return { deduplicated: false, fileSize: 1, fracDeduplicated: null };
    },
  };
  const reporter = new PlainReporter(new Collect() as unknown as NodeJS.WritableStream);
  const pusher = new Pusher({ store, api, cache: "c", forcePreamble: false, reporter, jobs: 1 });
  const batches: number[] = [];
  const session = new PushSession(pusher, { store, api, cache: "c", upstreamKeyNames: [] }, { noClosure: true, ignoreUpstreamFilter: false }, { onPlan: (p) => batches.push(p.paths.length) }, { idleMs: 40, maxMs: 100 });
  // one path every 25 ms never leaves the session idle for 40 ms: the 100 ms limit flushes the
  // first four (queued at 0..75 ms), close() the two after
  for (const p of paths) {
    session.queue([p.path]);
    t.mock.timers.tick(25);
  }
  await session.close();
  assert.deepEqual(batches, [4, 2]);
});
