import assert from "node:assert/strict";
import { mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  CACHE_NIXOS_ORG_KEY,
  formatNixConfLine,
  loadNixConfig,
  NixConfig,
  parseNixConfLine,
  saveNixConfig,
} from "../../../src/client/nix-config.ts";

test("nix.conf lines parse as upstream's tests expect", () => {
  assert.deepEqual(parseNixConfLine("# some comment"), { kind: "verbatim", text: "# some comment" });
  assert.deepEqual(parseNixConfLine("    # some indented comment"), { kind: "verbatim", text: "    # some indented comment" });
  const blank = " \t\t \t\t \t \t\t  \t \t \t\t \t\t\t\t \t\t\t \t\t\t";
  assert.deepEqual(parseNixConfLine(blank), { kind: "verbatim", text: blank });
  assert.deepEqual(parseNixConfLine("key = value"), { kind: "kv", indent: "", key: "key", before: " ", after: " ", value: "value", comment: "" });
  assert.deepEqual(parseNixConfLine("\t 🔥🔥🔥very=WILD=key🔥🔥🔥 =\tvalue = #comment"), {
    kind: "kv",
    indent: "\t ",
    key: "🔥🔥🔥very=WILD=key🔥🔥🔥",
    before: " ",
    after: "\t",
    value: "value = ",
    comment: "#comment",
  });
});

test("nix.conf lines round-trip byte for byte", () => {
  const cases = [
    "# some comment",
    "    # some indented comment",
    " \t\t \t\t \t \t\t  \t \t \t\t \t\t\t\t \t\t\t \t\t\t",
    "key = value",
    "\t 🔥🔥🔥very=WILD=key🔥🔥🔥 =\tvalue = #comment",
    // ours in addition (decision 8) and lines upstream would reject
    "key=value",
    "substituters=a b # c",
    "key =",
    "include /etc/nix/extra.conf",
    "!include other.conf",
  ];
  for (const c of cases) assert.equal(formatNixConfLine(parseNixConfLine(c)), c);
});

test("key=value without spaces is understood (decision 8)", () => {
  const line = parseNixConfLine("substituters=https://a https://b");
  assert.equal(line.kind, "kv");
  assert.equal(line.kind === "kv" && line.key, "substituters");
  assert.equal(line.kind === "kv" && line.value, "https://a https://b");

  const conf = new NixConfig("substituters=https://a\ntrusted-public-keys=a:AAAA");
  conf.addSubstituter("http://localhost:8080/hello");
  conf.addTrustedPublicKey("hello:KEY=");
  assert.equal(conf.toString(), "substituters=http://localhost:8080/hello https://a\ntrusted-public-keys=hello:KEY= a:AAAA\n");
});

test("adding to a missing list appends it with cache.nixos.org", () => {
  const conf = new NixConfig("# my config\nexperimental-features = nix-command\n");
  conf.addSubstituter("http://localhost:8080/hello");
  conf.addTrustedPublicKey("hello:KEY=");
  assert.equal(
    conf.toString(),
    [
      "# my config",
      "experimental-features = nix-command",
      "substituters = http://localhost:8080/hello https://cache.nixos.org",
      `trusted-public-keys = hello:KEY= ${CACHE_NIXOS_ORG_KEY}`,
      "",
    ].join("\n"),
  );
});

test("adding to an existing list prepends once and keeps comments and whitespace; every line ends with a newline", () => {
  const text = "  substituters  =  https://a   # mine\ntrusted-public-keys = k:1";
  const conf = new NixConfig(text);
  conf.addSubstituter("http://s/c");
  conf.addSubstituter("http://s/c");
  conf.addTrustedPublicKey("k:1");
  assert.equal(conf.toString(), "  substituters  =  http://s/c https://a   # mine\ntrusted-public-keys = k:1\n");
});

test("netrc-file is replaced in place or appended", () => {
  const conf = new NixConfig("netrc-file = /old # keep");
  conf.setNetrcFile("/new/netrc");
  assert.equal(conf.toString(), "netrc-file = /new/netrc # keep\n");
  const empty = new NixConfig("");
  empty.setNetrcFile("/x/netrc");
  assert.equal(empty.toString(), "netrc-file = /x/netrc\n");
});

test("nix.conf is loaded when missing and saved keeping its mode", async () => {
  const dir = await mkdtemp(join(tmpdir(), "attic-nixconf-"));
  const path = join(dir, "nix", "nix.conf");
  const conf = await loadNixConfig(path);
  assert.equal(conf.toString(), "");
  conf.addSubstituter("http://s/c");
  await saveNixConfig(path, conf);
  assert.equal(await readFile(path, "utf8"), "substituters = http://s/c https://cache.nixos.org\n");

  const existing = join(dir, "other.conf");
  await writeFile(existing, "a = b\r\n", { mode: 0o640 });
  const c2 = await loadNixConfig(existing);
  c2.setNetrcFile("/n");
  await saveNixConfig(existing, c2);
  assert.equal(await readFile(existing, "utf8"), "a = b\nnetrc-file = /n\n");
  assert.equal((await stat(existing)).mode & 0o777, 0o640);
});
