import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { NarError, NarParser } from "../../../src/nix/nar/parser.ts";
import type { NarEvent } from "../../../src/nix/nar/parser.ts";
import { NarValidator } from "../../../src/nix/nar/parse.ts";
import { validateNar } from "../../helpers/validate-nar.ts";
import { entryTokens, narBytes, narStr, regularTokens, u64 } from "../../helpers/nar-tree.ts";

const MAGIC = "nix-archive-1";
const dirNar = (...entries: (string | Buffer)[][]): Buffer => narBytes(MAGIC, "(", "type", "directory", ...entries.flat(), ")");
const fileEntry = (name: string | Buffer, contents = "x"): (string | Buffer)[] => entryTokens(name, regularTokens(contents));

/** A valid NAR exercising every node kind. */
const VALID = dirNar(
  fileEntry("a", "hello"),
  entryTokens("b", ["(", "type", "directory", ...entryTokens("c", regularTokens("#!/bin/sh\n", true)), ")"]),
  entryTokens("d", ["(", "type", "symlink", "target", "a", ")"]),
  fileEntry("e", ""),
);

function parse(nar: Buffer, onEvent?: (e: NarEvent) => void): void {
  const p = new NarParser(onEvent);
  p.update(nar);
  p.end();
}

/** Asserts that parsing `nar` fails with a NarError matching `re`, whether fed whole or byte by byte. */
function rejects(nar: Buffer, re: RegExp, offset?: number): void {
  const check = (e: unknown): boolean => {
    assert.ok(e instanceof NarError, `expected NarError, got ${String(e)}`);
    assert.match(e.message, re);
    if (offset !== undefined) assert.equal(e.offset, offset, e.message);
    assert.match(e.message, /at byte \d+/);
    return true;
  };
  assert.throws(() => parse(nar), check);
  assert.throws(() => {
    const p = new NarParser();
    for (let i = 0; i < nar.length; i++) p.update(nar.subarray(i, i + 1));
    p.end();
  }, check);
}

test("accepts a valid NAR fed whole, byte by byte, and in odd pieces", () => {
  parse(VALID);
  const p = new NarParser();
  for (let i = 0; i < VALID.length; i++) p.update(VALID.subarray(i, i + 1));
  p.end();
  assert.ok(p.complete);
  assert.equal(p.bytesSeen, VALID.length);
  const q = new NarParser();
  for (let i = 0; i < VALID.length; i += 13) q.update(VALID.subarray(i, i + 13));
  q.end();
});

test("accepts single-node NARs: regular, executable, empty, symlink, empty directory", () => {
  parse(narBytes(MAGIC, ...regularTokens("abc")));
  parse(narBytes(MAGIC, ...regularTokens("12345678", true)));
  parse(narBytes(MAGIC, ...regularTokens("")));
  parse(narBytes(MAGIC, "(", "type", "symlink", "target", "/nix/store/x", ")"));
  parse(dirNar());
});

test("reports events in order with paths and contents", () => {
  const events: string[] = [];
  parse(VALID, (e) => {
    const path = e.path.toString();
    if (e.type === "contents") events.push(`contents ${path} ${e.data.toString()}`);
    else if (e.type === "regular") events.push(`regular ${path} ${e.executable} ${e.size}`);
    else if (e.type === "symlink") events.push(`symlink ${path} -> ${e.target.toString()}`);
    else events.push(`directory ${path}`);
  });
  assert.deepEqual(events, [
    "directory ",
    "regular a false 5",
    "contents a hello",
    "directory b",
    "regular b/c true 10",
    "contents b/c #!/bin/sh\n",
    "symlink d -> a",
    "regular e false 0",
  ]);
});

test("rejects bad magic", () => {
  rejects(narBytes("nix-archive-2", ...regularTokens("x")), /expected "nix-archive-1", got "nix-archive-2"/, 0);
});

test("rejects a huge first string instead of buffering it", () => {
  rejects(Buffer.concat([u64(2n ** 40n), Buffer.alloc(64)]), /unexpected a 1099511627776-byte string where "nix-archive-1" was expected/, 0);
});

test("rejects a bad tag (unknown node type)", () => {
  rejects(narBytes(MAGIC, "(", "type", "fifo", ")"), /expected "regular" or "symlink" or "directory", got "fifo"/, 56);
});

test("rejects an unknown keyword inside a regular file", () => {
  rejects(narBytes(MAGIC, "(", "type", "regular", "executable", "", "executable", "", "contents", narStr("x"), ")"), /expected "contents", got "executable"/);
});

test("rejects a non-empty executable marker", () => {
  rejects(narBytes(MAGIC, "(", "type", "regular", "executable", "1", "contents", narStr("x"), ")"), /expected "", got "1"/);
});

test("rejects a missing closing parenthesis after contents", () => {
  rejects(narBytes(MAGIC, "(", "type", "regular", "contents", narStr("x"), "("), /expected "\)", got "\("/);
});

test("rejects unsorted directory entries", () => {
  rejects(dirNar(fileEntry("b"), fileEntry("a")), /entry "a" is not sorted after "b"/);
});

test("rejects entries sorted by locale instead of bytes", () => {
  // Bytewise, "B" (0x42) < "_" (0x5f) < "a" (0x61); a locale sort would put "a" before "B".
  parse(dirNar(fileEntry("B"), fileEntry("_"), fileEntry("a")));
  rejects(dirNar(fileEntry("a"), fileEntry("B")), /not sorted/);
});

test("rejects duplicate directory entries", () => {
  rejects(dirNar(fileEntry("a"), fileEntry("a")), /duplicate entry name "a"/);
});

test("rejects an entry name containing '/'", () => {
  rejects(dirNar(fileEntry("a/b")), /entry name "a\/b" contains '\/'/);
});

test("rejects the entry name '.'", () => {
  rejects(dirNar(fileEntry(".")), /entry name "\." is not allowed/);
});

test("rejects the entry name '..'", () => {
  rejects(dirNar(fileEntry("..")), /entry name "\.\." is not allowed/);
});

test("rejects an entry name containing NUL", () => {
  rejects(dirNar(fileEntry(Buffer.from("a\0b"))), /contains a NUL byte/);
});

test("rejects an empty entry name", () => {
  rejects(dirNar(fileEntry("")), /empty entry name/);
});

test("rejects an over-long entry name", () => {
  parse(dirNar(fileEntry("n".repeat(255))));
  rejects(dirNar(fileEntry("n".repeat(256))), /an entry name of 256 bytes \(at most 255\)/);
});

test("rejects an over-long or empty symlink target", () => {
  parse(narBytes(MAGIC, "(", "type", "symlink", "target", "t".repeat(4096), ")"));
  rejects(narBytes(MAGIC, "(", "type", "symlink", "target", "t".repeat(4097), ")"), /a symlink target of 4097 bytes/);
  rejects(narBytes(MAGIC, "(", "type", "symlink", "target", "", ")"), /empty symlink target/);
});

test("rejects non-zero padding after a string", () => {
  const nar = narBytes(MAGIC, ...regularTokens("x"));
  const bad = Buffer.from(nar);
  bad[8 + 13] = 1; // first padding byte after "nix-archive-1"
  rejects(bad, /non-zero padding/, 21);
});

test("rejects non-zero padding after file contents", () => {
  const nar = narBytes(MAGIC, ...regularTokens("abc"));
  const bad = Buffer.from(nar);
  const contentsAt = nar.indexOf("abc");
  bad[contentsAt + 4] = 0xff;
  rejects(bad, /non-zero padding/, contentsAt + 4);
});

test("rejects trailing data after the root object", () => {
  rejects(Buffer.concat([VALID, Buffer.from([0])]), /trailing data after the root object/, VALID.length);
  rejects(Buffer.concat([VALID, narStr("x")]), /trailing data/, VALID.length);
});

test("rejects truncated input at several offsets", () => {
  const offsets = [0, 1, 7, 8, 20, 24, 40, 63, 100, VALID.indexOf("hello") + 2, VALID.length - 9, VALID.length - 1];
  for (const at of offsets) {
    assert.throws(
      () => parse(VALID.subarray(0, at)),
      (e: unknown) => e instanceof NarError && /truncated/.test(e.message) && e.offset === at,
      `cut at ${at}`,
    );
  }
});

test("every proper prefix of a valid NAR is rejected as truncated", () => {
  for (let at = 0; at < VALID.length; at++) {
    assert.throws(() => parse(VALID.subarray(0, at)), NarError, `cut at ${at}`);
  }
});

test("rejects directories nested beyond the depth limit", () => {
  const level = narBytes("entry", "(", "name", "d", "node", "(", "type", "directory");
  const nested = (depth: number): Buffer =>
    Buffer.concat([narBytes(MAGIC, "(", "type", "directory"), ...Array<Buffer>(depth - 1).fill(level)]);
  const p = new NarParser();
  p.update(nested(4096));
  assert.throws(() => parse(nested(4097)), /nested deeper than 4096/);
});

test("rejects file contents whose size does not fit in 2^53", () => {
  rejects(narBytes(MAGIC, "(", "type", "regular", "contents", u64(2n ** 60n)), /more than 2\^53/);
});

test("NarValidator passes bytes through unchanged and reports hash and size", async () => {
  const out: Buffer[] = [];
  const v = new NarValidator();
  await pipeline(
    Readable.from([VALID.subarray(0, 10), VALID.subarray(10, 100), VALID.subarray(100)]),
    v,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk);
        cb();
      },
    }),
  );
  assert.deepEqual(Buffer.concat(out), VALID);
  const { narHash, narSize } = v.result();
  assert.equal(narSize, VALID.length);
  assert.equal(narHash.toBase16(), createHash("sha256").update(VALID).digest("hex"));
  const again = await validateNar(Readable.from([VALID]));
  assert.ok(again.narHash.equals(narHash));
});

test("NarValidator result() is ready at 'finish'", async () => {
  const v = new NarValidator();
  const done = new Promise<void>((resolve) => v.on("finish", () => {
    assert.equal(v.result().narSize, VALID.length);
    resolve();
  }));
  v.resume();
  v.end(VALID);
  await done;
});

test("NarValidator fails the pipeline on a malformed NAR and has no result", async () => {
  const v = new NarValidator();
  await assert.rejects(pipeline(Readable.from([VALID.subarray(0, 50)]), v, new Writable({ write: (_c, _e, cb) => cb() })), /truncated/);
  assert.throws(() => v.result(), /before the NAR was complete/);
  await assert.rejects(validateNar(Readable.from([dirNar(fileEntry("b"), fileEntry("a"))])), NarError);
});
