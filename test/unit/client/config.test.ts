import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseCacheRef } from "../../../src/client/cache-ref.ts";
import {
  configPath,
  defaultServer,
  loadConfig,
  parseConfig,
  resolveCache,
  saveConfig,
  serializeConfig,
  serverToken,
} from "../../../src/client/config.ts";

test("the config lives under $XDG_CONFIG_HOME, else ~/.config", () => {
  assert.equal(configPath({ XDG_CONFIG_HOME: "/x/cfg", HOME: "/home/u" }), "/x/cfg/attic/config.toml");
  assert.equal(configPath({ HOME: "/home/u" }), "/home/u/.config/attic/config.toml");
  // a relative XDG_CONFIG_HOME is ignored, as the xdg crate does
  assert.equal(configPath({ XDG_CONFIG_HOME: "rel", HOME: "/home/u" }), "/home/u/.config/attic/config.toml");
});

test("upstream's format is read and written back", () => {
  const text = 'default-server = "local"\n\n[servers.local]\nendpoint = "http://localhost:8080"\ntoken = "eyJ"\n\n[servers.other]\nendpoint = "https://o/"\ntoken-file = "/run/secret"\n';
  const config = parseConfig(text, "config.toml");
  assert.equal(config.defaultServer, "local");
  assert.deepEqual([...config.servers.keys()], ["local", "other"]);
  assert.deepEqual(config.servers.get("other"), { endpoint: "https://o/", tokenFile: "/run/secret" });
  assert.equal(serializeConfig(config), text);
});

test("bad config files give clear errors", () => {
  assert.throws(() => parseConfig("[servers.x]\n", "c.toml"), /servers\.x\.endpoint must be a string/);
  assert.throws(() => parseConfig("default-server = 3", "c.toml"), /`default-server` must be a string/);
  assert.throws(() => parseConfig("[servers]\n'bad name' = { endpoint = 'x' }", "c.toml"), /invalid server name/);
  assert.throws(() => parseConfig("not toml ===", "c.toml"), /Failed to parse c\.toml/);
});

test("default server rules: explicit default, else the first; none is an error", () => {
  const none = parseConfig("", "c");
  assert.throws(() => defaultServer(none), { message: "No servers are available." });
  const two = parseConfig('[servers.b]\nendpoint = "B"\n[servers.a]\nendpoint = "A"\n', "c");
  assert.equal(defaultServer(two)[0], "b");
  two.defaultServer = "a";
  assert.equal(defaultServer(two)[0], "a");
  two.defaultServer = "gone";
  assert.throws(() => defaultServer(two), { message: 'Configured default server "gone" does not exist' });
});

test("cache references resolve against the config", () => {
  const config = parseConfig('default-server = "local"\n[servers.local]\nendpoint = "L"\n[servers.prod]\nendpoint = "P"\n', "c");
  assert.deepEqual(resolveCache(config, parseCacheRef("hello")), { serverName: "local", server: { endpoint: "L" }, cache: "hello" });
  assert.equal(resolveCache(config, parseCacheRef("prod:hello")).server.endpoint, "P");
  assert.throws(() => resolveCache(config, parseCacheRef("nope:hello")), { message: 'Server "nope" does not exist' });
});

test("cache references: cache or server:cache with valid names", () => {
  assert.deepEqual(parseCacheRef("hello"), { server: null, cache: "hello" });
  assert.deepEqual(parseCacheRef("local:my-cache_1+x"), { server: "local", cache: "my-cache_1+x" });
  for (const bad of ["", ":c", "s:", "-bad", "a:b:c", "x".repeat(51), "has space", "s:../x", "a/b"]) {
    assert.throws(() => parseCacheRef(bad), /Invalid cache reference/, bad);
  }
  assert.deepEqual(parseCacheRef("x".repeat(50)), { server: null, cache: "x".repeat(50) });
});

test("config is saved with mode 0600 and token-file contents are trimmed", async () => {
  const dir = await mkdtemp(join(tmpdir(), "attic-config-"));
  const path = join(dir, "attic", "config.toml");
  const config = await loadConfig(path);
  assert.equal(config.servers.size, 0);
  config.servers.set("local", { endpoint: "http://x" , token: "secret" });
  config.defaultServer = "local";
  await saveConfig(path, config);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.equal(await readFile(path, "utf8"), 'default-server = "local"\n\n[servers.local]\nendpoint = "http://x"\ntoken = "secret"\n');

  await chmod(path, 0o644);
  await saveConfig(path, config);
  assert.equal((await stat(path)).mode & 0o777, 0o600);

  const tokenFile = join(dir, "token");
  await writeFile(tokenFile, "  tok-from-file \n\n");
  assert.equal(await serverToken({ endpoint: "e", tokenFile }), "tok-from-file");
  assert.equal(await serverToken({ endpoint: "e" }), null);
  await assert.rejects(serverToken({ endpoint: "e", tokenFile: join(dir, "missing") }), /Failed to read token from .*missing/);
});
