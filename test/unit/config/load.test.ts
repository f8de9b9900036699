import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { ConfigError, ConfigNotFoundError, defaultConfigPath, loadConfig } from "../../../src/server/config/load.ts";

const configText = (storage: string): string => `
[database]
url = "sqlite:///tmp/x.db"
[storage]
type = "local"
path = "${storage}"
[chunking]
nar-size-threshold = 1
min-size = 64
avg-size = 256
max-size = 1024
[jwt.signing]
token-hs256-secret-base64 = "${randomBytes(32).toString("base64")}"
`;

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "attic-config-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("load order: -f PATH, then ATTIC_SERVER_CONFIG_BASE64, then $XDG_CONFIG_HOME/attic/server.toml", async (t) => {
  const dir = tempDir(t);
  const xdg = join(dir, "xdg");
  mkdirSync(join(xdg, "attic"), { recursive: true });
  writeFileSync(join(xdg, "attic", "server.toml"), configText("from-xdg"));
  const explicit = join(dir, "explicit.toml");
  writeFileSync(explicit, configText("from-file"));
  const base64 = Buffer.from(configText("from-env")).toString("base64");
  const env = { XDG_CONFIG_HOME: xdg, ATTIC_SERVER_CONFIG_BASE64: base64, HOME: dir };

  const fromFile = await loadConfig({ path: explicit, env });
  assert.equal(fromFile.source, "file");
  assert.equal(fromFile.path, explicit);
  assert.deepEqual(fromFile.config.storage, { type: "local", path: "from-file", packs: true, packSize: 64 * 1024 * 1024 });

  const fromEnv = await loadConfig({ env });
  assert.equal(fromEnv.source, "env");
  assert.equal(fromEnv.path, null);
  assert.deepEqual(fromEnv.config.storage, { type: "local", path: "from-env", packs: true, packSize: 64 * 1024 * 1024 });

  const fromXdg = await loadConfig({ env: { ...env, ATTIC_SERVER_CONFIG_BASE64: "" } });
  assert.equal(fromXdg.source, "xdg");
  assert.equal(fromXdg.path, join(xdg, "attic", "server.toml"));
  assert.deepEqual(fromXdg.config.storage, { type: "local", path: "from-xdg", packs: true, packSize: 64 * 1024 * 1024 });
});

test("the default path follows XDG_CONFIG_HOME (absolute only), else ~/.config", () => {
  assert.equal(defaultConfigPath({ XDG_CONFIG_HOME: "/x/conf", HOME: "/home/u" }), "/x/conf/attic/server.toml");
  assert.equal(defaultConfigPath({ XDG_CONFIG_HOME: "relative", HOME: "/home/u" }), "/home/u/.config/attic/server.toml");
  assert.equal(defaultConfigPath({ HOME: "/home/u" }), "/home/u/.config/attic/server.toml");
});

test("nothing anywhere: ConfigNotFoundError naming the XDG path; missing -f file: a ConfigError", async (t) => {
  const dir = tempDir(t);
  await assert.rejects(loadConfig({ env: { XDG_CONFIG_HOME: dir, HOME: dir } }), (e: unknown) => {
    assert.ok(e instanceof ConfigNotFoundError);
    assert.equal(e.path, join(dir, "attic", "server.toml"));
    assert.match(e.message, /-f PATH.*ATTIC_SERVER_CONFIG_BASE64/);
    return true;
  });
  const missing = join(dir, "nope.toml");
  await assert.rejects(loadConfig({ path: missing, env: {} }), (e: unknown) => e instanceof ConfigError && e.message.includes(`${missing}: no such file`));
});

test("problems in ATTIC_SERVER_CONFIG_BASE64 name the variable; warnings are returned", async () => {
  const bad = Buffer.from(`bogus = 1\n${configText("s")}`).toString("base64");
  await assert.rejects(loadConfig({ env: { ATTIC_SERVER_CONFIG_BASE64: bad } }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.deepEqual(e.problems.map((p) => [p.source, p.key]), [["ATTIC_SERVER_CONFIG_BASE64", "bogus"]]);
    return true;
  });
  await assert.rejects(loadConfig({ env: { ATTIC_SERVER_CONFIG_BASE64: "@@@" } }), /ATTIC_SERVER_CONFIG_BASE64: not valid base64/);
  const warned = Buffer.from(configText("s").replace("[chunking]", "[chunking]\nfoo = 1")).toString("base64");
  const loaded = await loadConfig({ env: { ATTIC_SERVER_CONFIG_BASE64: warned } });
  assert.deepEqual(loaded.warnings, ["ATTIC_SERVER_CONFIG_BASE64: chunking.foo: unknown key, ignored"]);
});
