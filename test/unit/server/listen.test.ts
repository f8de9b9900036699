// One rule for listen addresses: `atticd -l ADDR` and `listen = "ADDR"` in the config give the
// same verdict with the same message (upstream's SocketAddr: IPv4:port or [IPv6]:port).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, parseConfig } from "../../../src/server/config/load.ts";
import { main } from "../../../src/server/main.ts";
import { parseListenAddress } from "../../../src/server/listen.ts";

const ACCEPTED: [string, { host: string; port: number }][] = [
  ["[::]:8080", { host: "::", port: 8080 }],
  ["127.0.0.1:0", { host: "127.0.0.1", port: 0 }],
  ["0.0.0.0:80", { host: "0.0.0.0", port: 80 }],
  ["[::1]:65535", { host: "::1", port: 65535 }],
  ["[::ffff:127.0.0.1]:8080", { host: "::ffff:127.0.0.1", port: 8080 }],
];

const REFUSED = [
  "localhost:80",
  "localhost:8080",
  "example.com:443",
  "[localhost]:80",
  ":8080",
  "8080",
  "[::]",
  "::1:80",
  "1.2.3.4:70000",
  "1.2.3:80",
  "256.1.1.1:80",
  "[zz]:1",
  " 127.0.0.1:80",
  "127.0.0.1:80 ",
  "",
];

const dir = mkdtempSync(join(tmpdir(), "attic-listen-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const MINIMAL = `
[database]
url = "sqlite://${join(dir, "server.db")}"
[storage]
type = "local"
path = "${join(dir, "storage")}"
[chunking]
nar-size-threshold = 65536
min-size = 16384
avg-size = 65536
max-size = 262144
[jwt.signing]
token-hs256-secret-base64 = "${randomBytes(32).toString("base64")}"
`;
const configFile = join(dir, "server.toml");
writeFileSync(configFile, MINIMAL);

/** The config path's verdict: null when accepted, else the message of the `listen` problem. */
function viaConfig(addr: string): string | null {
  try {
    parseConfig(`listen = ${JSON.stringify(addr)}\n${MINIMAL}`, { source: "server.toml", env: {} });
    return null;
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    assert.deepEqual(error.problems.map((p) => p.key), ["listen"]);
    return error.problems[0]!.message;
  }
}

/** The CLI path's verdict (atticd's main with -l, in check-config mode): null when accepted, else its message. */
async function viaFlag(addr: string): Promise<string | null> {
  let stderr = "";
  const code = await main(["node", "atticd", "-f", configFile, "--mode", "check-config", "-l", addr], { write: (text: string) => (stderr += text) });
  if (code === 0) return null;
  // a usage error, in commander's words, with the message of `listen`
  assert.equal(code, 2, stderr);
  const m = /^Error: option '-l, --listen <addr>' argument '.*' is invalid\. (.*)\n\(add --help for more information\)\n$/s.exec(stderr);
  assert.ok(m, stderr);
  return m[1]!;
}

for (const [addr, parsed] of ACCEPTED) {
  test(`accepted by both: ${JSON.stringify(addr)}`, async () => {
    assert.deepEqual(parseListenAddress(addr), parsed);
    assert.equal(viaConfig(addr), null);
    assert.equal(await viaFlag(addr), null);
  });
}

for (const addr of REFUSED) {
  test(`refused by both with one message: ${JSON.stringify(addr)}`, async () => {
    const message = `expected a socket address such as "[::]:8080" or "127.0.0.1:8080", got ${JSON.stringify(addr)} (host names are not allowed)`;
    assert.throws(() => parseListenAddress(addr), { message });
    assert.equal(viaConfig(addr), message);
    assert.equal(await viaFlag(addr), message);
  });
}
