import assert from "node:assert/strict";
import { mkdtemp, readFile, stat, writeFile, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { addToken, editNetrc, loadNetrc, parseNetrc, saveNetrc, serializeNetrc, setNetrcPassword, tokenizeNetrc } from "../../../src/client/nix-netrc.ts";

test("netrc tokenization matches upstream's cases, and skips comments", () => {
  const cases: [string, string[]][] = [
    ["", []],
    [" ", []],
    ["\n", []],
    ["\t", []],
    ["   \t\t\n\nabc", ["abc"]],
    ["a ", ["a"]],
    [" a", ["a"]],
    ["  a ", ["a"]],
    ["abc", ["abc"]],
    ["a b", ["a", "b"]],
    ["a b c", ["a", "b", "c"]],
    ["a\nb\nc", ["a", "b", "c"]],
    ["a\tb\nc", ["a", "b", "c"]],
    ["a       b c", ["a", "b", "c"]],
    ["a\n\n\nb\nc", ["a", "b", "c"]],
    ["a\n\t\nb\nc", ["a", "b", "c"]],
    ["a\r\nb\r\n", ["a", "b"]],
    ["# a comment\nmachine h # another\npassword #not-a-comment", ["machine", "h", "password", "#not-a-comment"]],
    ["default # c\nlogin x", ["default", "login", "x"]],
  ];
  for (const [input, expected] of cases) {
    assert.deepEqual(tokenizeNetrc(input).map((t) => t.text), expected, JSON.stringify(input));
  }
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
  assert.equal(await readFile(path, "utf8"), "machine other password x\nmachine localhost\npassword t2\n");
});

const USER_NETRC = `# Nix's netrc
machine a.example
  login me
  password old # rotated by hand

machine b.example password b   login   bob
`;

const netrcCases: [name: string, before: string, machine: string, token: string, after: string][] = [
  [
    "a password spread over lines is replaced in place, comments and other entries kept",
    USER_NETRC,
    "a.example",
    "new",
    USER_NETRC.replace("password old", "password new"),
  ],
  ["one on a single line", USER_NETRC, "b.example", "nb", USER_NETRC.replace("password b ", "password nb ")],
  ["a new machine is appended", USER_NETRC, "localhost", "t", `${USER_NETRC}machine localhost\npassword t\n`],
  ["an entry without a password gets one after its name", "machine h login me\n", "h", "t", "machine h password t login me\n"],
  [
    "a new machine goes before default, which must stay last",
    "machine a password x\n# fallback\n  default login anon password anon\n",
    "h",
    "t",
    "machine a password x\n# fallback\nmachine h\npassword t\n  default login anon password anon\n",
  ],
  ["every entry of a repeated machine", "machine h password 1\nmachine h password 2\n", "h", "3", "machine h password 3\nmachine h password 3\n"],
  ["CRLF files stay CRLF", "# c\r\nmachine a password x\r\n", "b", "t", "# c\r\nmachine a password x\r\nmachine b\r\npassword t\r\n"],
  ["a file without a final newline gets one", "machine a password x", "a", "y", "machine a password y\n"],
  ["and before an appended entry", "machine a password x", "b", "y", "machine a password x\nmachine b\npassword y\n"],
  ["an empty file", "", "h", "t", "machine h\npassword t\n"],
  ["a comment-looking password is a password", "machine h password #x # c\n", "h", "t", "machine h password t # c\n"],
];

for (const [name, before, machine, token, after] of netrcCases) {
  test(`netrc edit: ${name}`, () => {
    assert.equal(setNetrcPassword(before, machine, token), after);
    const machines = parseNetrc(before);
    addToken(machines, machine, token);
    assert.equal(editNetrc(before, machines), after);
    assert.deepEqual(parseNetrc(after), machines);
  });
}

test("netrc edit: a token with whitespace is refused; other changes rewrite the file", () => {
  assert.throws(() => setNetrcPassword("", "h", "a b"), /cannot be empty or contain whitespace/);
  const machines = parseNetrc(USER_NETRC);
  machines.delete("b.example");
  assert.equal(editNetrc(USER_NETRC, machines), "machine a.example\npassword old\nlogin me\n");
});
