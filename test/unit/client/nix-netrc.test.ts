import assert from "node:assert/strict";
import { mkdtemp, readFile, stat, writeFile, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { addToken, loadNetrc, nextToken, parseNetrc, saveNetrc, serializeNetrc, stripLeadingWhitespace } from "../../../src/client/nix-netrc.ts";

test("leading whitespace is stripped as upstream", () => {
  assert.equal(stripLeadingWhitespace("   "), "");
  assert.equal(stripLeadingWhitespace("   a"), "a");
  assert.equal(stripLeadingWhitespace("   \t\t\n\nabc"), "abc");
  assert.equal(stripLeadingWhitespace("abc"), "abc");
});

test("netrc tokenization matches upstream's cases", () => {
  const cases: [string, [string, string]][] = [
    ["", ["", ""]],
    [" ", ["", ""]],
    ["\n", ["", ""]],
    ["\t", ["", ""]],
    ["a ", ["a", ""]],
    [" a", ["a", ""]],
    ["  a ", ["a", ""]],
    ["abc", ["abc", ""]],
    ["a b", ["a", "b"]],
    ["a b c", ["a", "b c"]],
    ["a\nb\nc", ["a", "b\nc"]],
    ["a\tb\nc", ["a", "b\nc"]],
    ["a       b c", ["a", "b c"]],
    ["a\n\n\nb\nc", ["a", "b\nc"]],
    ["a\n\t\nb\nc", ["a", "b\nc"]],
  ];
  for (const [input, expected] of cases) assert.deepEqual(nextToken(input), expected, JSON.stringify(input));
});

test("netrc parses and round-trips through serialization", () => {
  const machines = parseNetrc("default password hunter2 machine localhost login login password 114514");
  assert.equal(machines.get("localhost")?.password, "114514");
  assert.deepEqual(machines.get("localhost")?.other, ["login", "login"]);
  assert.equal(machines.get("")?.password, "hunter2");
  const serialized = serializeNetrc(machines);
  assert.equal(serialized, "default\npassword hunter2\nmachine localhost\npassword 114514\nlogin login\n");
  assert.deepEqual(parseNetrc(serialized), machines);
});

test("tokens outside a machine block are errors", () => {
  assert.throws(() => parseNetrc("password x"), /outside a machine block/);
  assert.throws(() => parseNetrc("login x"), /outside a machine block/);
});

test("adding a token keeps other machines and their tokens", () => {
  const machines = parseNetrc("machine a.example login me password old\nmachine b.example password b\n");
  addToken(machines, "a.example", "new");
  addToken(machines, "localhost", "tok");
  assert.equal(
    serializeNetrc(machines),
    "machine a.example\npassword new\nlogin me\nmachine b.example\npassword b\nmachine localhost\npassword tok\n",
  );
});

test("netrc is written with mode 0600, also over a more open file", async () => {
  const dir = await mkdtemp(join(tmpdir(), "attic-netrc-"));
  const path = join(dir, "nix", "netrc");
  const m = await loadNetrc(path);
  assert.equal(m.size, 0);
  addToken(m, "localhost", "t");
  await saveNetrc(path, m);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.equal(await readFile(path, "utf8"), "machine localhost\npassword t\n");

  await writeFile(path, "machine other password x\n");
  await chmod(path, 0o644);
  const m2 = await loadNetrc(path);
  addToken(m2, "localhost", "t2");
  await saveNetrc(path, m2);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.equal(await readFile(path, "utf8"), "machine other\npassword x\nmachine localhost\npassword t2\n");
});
