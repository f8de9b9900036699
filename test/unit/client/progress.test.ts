import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createReporter, PlainReporter, TtyReporter } from "../../../src/client/progress.ts";
import { fakePath } from "./fakes.ts";
import { renderScreen } from "./terminal.ts";
import { waitFor } from "../../helpers/wait.ts";

/** A stream that claims to be a terminal and keeps what is drawn on it. */
class FakeTerminal extends Writable {
  readonly isTTY = true;
  readonly columns = 120;
  text = "";
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

test("the live display is used only when stderr and stdout are terminals (and TERM is not dumb)", () => {
  const tty = new FakeTerminal();
  const pipe = new FakeTerminal();
  Object.defineProperty(pipe, "isTTY", { value: false });
  const pick = (out: FakeTerminal, stdout: { isTTY?: boolean }, env: NodeJS.ProcessEnv = {}) => {
    const r = createReporter(out, env, stdout);
    r.close();
    return r.constructor;
  };
  assert.equal(pick(tty, { isTTY: true }), TtyReporter);
  assert.equal(pick(tty, { isTTY: false }), PlainReporter);
  assert.equal(pick(tty, {}), PlainReporter);
  assert.equal(pick(pipe, { isTTY: true }), PlainReporter);
  assert.equal(pick(tty, { isTTY: true }, { TERM: "dumb" }), PlainReporter);
});

test("the live display shows per-path bars and an overall line, and leaves the result lines", async () => {
  const term = new FakeTerminal();
  const reporter = new TtyReporter(term);
  const a = fakePath("a", "hello-2.12", { narSize: 4 << 20 });
  const b = fakePath("b", "glibc-2.38", { narSize: 2 << 20 });
  reporter.line('⚙️ Pushing 2 paths to "c" on "local" (0 already cached, 0 in upstream)...');
  reporter.addPlanned(2, a.narSize + b.narSize);
  const barA = reporter.begin(a);
  const barB = reporter.begin(b);
  barA.advance(1 << 20);
  barB.advance(2 << 20);
  // the display redraws on a timer: wait for a frame that has all three lines
  const overall = /📦 0\/2 paths [█ ]+ 3\.00 MiB \/ 6\.00 MiB/;
  const lineA = /hello-2\.12 +[█ ]+ +1\.00 MiB \(\d+\.\d\d [KMG]iB\/s\)/;
  const lineB = /glibc-2\.38 +[█ ]+ +2\.00 MiB \(/;
  await waitFor(() => [overall, lineA, lineB].every((re) => re.test(term.text)), { what: "a frame with the overall line and both bars" });

  const drawn = term.text;
  assert.match(drawn, overall);
  assert.match(drawn, lineA);
  assert.match(drawn, lineB);

  reporter.end(b, barB, { ok: true, deduplicated: false, fracDeduplicated: 0.5, seconds: 1 });
  barA.restart();
  barA.advance(4 << 20);
  reporter.end(a, barA, { ok: false, error: "HTTP 502 Bad Gateway: oops" });
  const finalLine = /📦 2\/2 paths .* 6\.00 MiB \/ 6\.00 MiB · 50\.0% deduplicated · 1 failed/;
  await waitFor(() => finalLine.test(term.text.slice(drawn.length)), { what: "a frame with the final overall line" });
  assert.match(term.text.slice(drawn.length), finalLine);
  reporter.line("✅ All done! (0 already cached, 0 in upstream)");
  reporter.close();

  assert.deepEqual(renderScreen(term.text), [
    '⚙️ Pushing 2 paths to "c" on "local" (0 already cached, 0 in upstream)...',
    `✅ ${b.path.slice(11)} (2.00 MiB/s, 50.0% deduplicated)`,
    `❌ ${a.path.slice(11)}: HTTP 502 Bad Gateway: oops`,
    "✅ All done! (0 already cached, 0 in upstream)",
  ]);
  assert.deepEqual(reporter.totals, { planned: 2, plannedBytes: 6 << 20, done: 1, failed: 1, doneBytes: 2 << 20, dedupBytes: 1 << 20 });
});
