// Pull-through's pure parts (issue 27): the URL allowlist (table of hostile URLs), upstream
// validation, the circuit breaker, upstream narinfo trust, the client's upstream list edits and
// the `[pull-through]` / `[[caches.upstreams]]` config.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { checkUpstreams, isAllowedUrl } from "../../../src/server/pull-through/allowlist.ts";
import { Breakers } from "../../../src/server/pull-through/breaker.ts";
import { UntrustedNarInfo, verifyUpstreamNarInfo, renderOurNarInfo } from "../../../src/server/pull-through/narinfo.ts";
import { editUpstreams } from "../../../src/client/commands/cache-configure.ts";
import { ServerError } from "../../../src/server/errors.ts";
import { NixHash } from "../../../src/nix/hash.ts";
import { fingerprintFromBaseNames, SigningKeypair } from "../../../src/nix/signing.ts";
import { parseNarInfo, renderNarInfo } from "../../../src/nix/narinfo.ts";
import { ConfigError, parseConfig } from "../../../src/server/config/load.ts";

const ALLOWED = ["https://cache.nixos.org", "http://127.0.0.1:8081/caches/"];

test("the allowlist matches scheme, host, port and a path at or below the entry, nothing else", () => {
  const cases: [string, boolean][] = [
    ["https://cache.nixos.org", true],
    ["https://cache.nixos.org/", true],
    ["https://cache.nixos.org/abc.narinfo", true],
    ["https://cache.nixos.org:443/nar/x.nar.xz", true],
    ["http://cache.nixos.org", false],
    ["https://cache.nixos.org:8443", false],
    ["https://cache.nixos.org.evil.example", false],
    ["https://evil.example/https://cache.nixos.org", false],
    ["https://user:pw@cache.nixos.org", false],
    ["https://CACHE.NIXOS.ORG/x", true],
    ["http://127.0.0.1:8081/caches/xz", true],
    ["http://127.0.0.1:8081/cachesX", false],
    ["http://127.0.0.1:8081/", false],
    ["http://127.0.0.1:8081/caches/../admin", false],
    ["http://127.0.0.1:5432/caches/", false],
    ["http://localhost:8081/caches/", false],
    ["http://[::1]:8081/caches/", false],
    ["http://169.254.169.254/latest/meta-data", false],
    ["file:///etc/passwd", false],
    ["gopher://127.0.0.1:8081/caches/", false],
    ["not a url", false],
  ];
  for (const [url, allowed] of cases) assert.equal(isAllowedUrl(url, ALLOWED), allowed, url);
  assert.equal(isAllowedUrl("https://cache.nixos.org", []), false, "an empty allowlist allows nothing");
});

test("checkUpstreams normalizes URLs and keys, and refuses with a 400 naming the setting", () => {
  const key = SigningKeypair.generate("up-1").publicKey().toString();
  assert.deepEqual(checkUpstreams([{ url: "https://cache.nixos.org/", keys: [key] }], ALLOWED), [{ url: "https://cache.nixos.org", keys: [key] }]);
  const refused = (list: { url: string; keys: string[] }[]) => {
    try {
      checkUpstreams(list, ALLOWED);
    } catch (err) {
      assert.ok(err instanceof ServerError && err.status === 400, String(err));
      return err.message;
    }
    assert.fail("expected a 400");
  };
  assert.match(refused([{ url: "http://127.0.0.1:5432", keys: [key] }]), /\[pull-through\] allowed-upstreams/);
  assert.match(refused([{ url: "https://cache.nixos.org?x=1", keys: [key] }]), /Invalid upstream URL/);
  assert.match(refused([{ url: "https://cache.nixos.org", keys: [] }]), /at least one trusted key/);
  assert.match(refused([{ url: "https://cache.nixos.org", keys: ["nope"] }]), /Invalid upstream key/);
  assert.match(refused([{ url: "https://cache.nixos.org", keys: [key] }, { url: "https://cache.nixos.org/", keys: [key] }]), /twice/);
});

test("the breaker opens after the threshold, lets one probe through after the cooldown, and closes on success", async () => {
  const b = new Breakers(2, 50);
  const u = "https://up";
  assert.ok(b.allow(u));
  b.failure(u);
  assert.ok(b.allow(u), "one failure: still closed");
  b.failure(u);
  assert.ok(!b.allow(u), "open");
  assert.ok(b.isOpen(u));
  await new Promise((r) => setTimeout(r, 60));
  assert.ok(b.allow(u), "a probe after the cooldown");
  assert.ok(!b.allow(u), "only one probe at a time");
  b.failure(u);
  assert.ok(!b.allow(u), "a failed probe opens it again");
  await new Promise((r) => setTimeout(r, 60));
  assert.ok(b.allow(u));
  b.success(u);
  assert.ok(b.allow(u) && b.allow(u) && !b.isOpen(u), "closed");
});

function signedNarInfo(key: SigningKeypair, over: Partial<{ storePath: string }> = {}): string {
  const storePath = over.storePath ?? "/nix/store/0c9wlf9ylqpx7kz4z6gr0n8p4n8n1cfv-hello";
  const narHash = NixHash.fromDigest("sha256", randomBytes(32));
  const references = ["0c9wlf9ylqpx7kz4z6gr0n8p4n8n1cfv-hello"];
  const sig = key.sign(fingerprintFromBaseNames("/nix/store", storePath, narHash, 1234, references));
  return renderNarInfo({ storePath, url: "nar/abc.nar.xz", compression: "xz", narHash: narHash.toTypedNix32(), narSize: 1234, references, sigs: [sig] });
}

test("an upstream narinfo is trusted only with a valid signature by one of that upstream's keys, for the path asked", () => {
  const up = SigningKeypair.generate("up-1");
  const other = SigningKeypair.generate("up-1"); // same name, another key
  const upstream = { url: "https://up", keys: [up.publicKey().toString()] };
  const hash = "0c9wlf9ylqpx7kz4z6gr0n8p4n8n1cfv";
  const good = signedNarInfo(up);
  const trusted = verifyUpstreamNarInfo(good, hash, "/nix/store", upstream, 1 << 30);
  assert.equal(trusted.compression, "xz");
  const reject = (text: string, h = hash, dir = "/nix/store", max = 1 << 30) => assert.throws(() => verifyUpstreamNarInfo(text, h, dir, upstream, max), UntrustedNarInfo);
  reject(signedNarInfo(other));
  reject(good.replace("NarSize: 1234", "NarSize: 1235"));
  reject(good, "1c9wlf9ylqpx7kz4z6gr0n8p4n8n1cfv");
  reject(good, hash, "/other/store");
  reject(good, hash, "/nix/store", 100);
  reject(good.replace("Compression: xz", "Compression: lz4"));
  reject("garbage");
  // our narinfo: the cache's signature first, the upstream's kept, our URL and compression
  const cache = SigningKeypair.generate("mycache");
  const ours = parseNarInfo(renderOurNarInfo(trusted, hash, cache.toString(), "/nix/store", "zstd"));
  assert.equal(ours.url, `nar/${hash}.nar`);
  assert.equal(ours.compression, "zstd");
  assert.ok(ours.sigs[0]!.startsWith("mycache:"));
  assert.ok(ours.sigs.includes(parseNarInfo(good).sigs[0]!));
  const fp = fingerprintFromBaseNames("/nix/store", ours.storePath, NixHash.parse(ours.narHash), ours.narSize, ours.references);
  assert.ok(cache.publicKey().verify(fp, ours.sigs[0]!));
});

test("attic cache configure --upstream/--upstream-key/--remove-upstream/--clear-upstreams edit the list in order", () => {
  const k1 = "a-1:AAAA";
  const k2 = "b-1:BBBB";
  const base = [{ url: "https://one", keys: [k1] }];
  assert.deepEqual(editUpstreams(base, { cache: "c", upstream: ["https://two/"], upstreamKey: [k2] }), [...base, { url: "https://two", keys: [k2] }]);
  assert.deepEqual(editUpstreams(base, { cache: "c", upstream: ["https://one"], upstreamKey: [k2] }), [{ url: "https://one", keys: [k2] }]);
  assert.deepEqual(editUpstreams(base, { cache: "c", removeUpstream: ["https://one/"] }), []);
  assert.deepEqual(editUpstreams(base, { cache: "c", clearUpstreams: true, upstream: ["https://two"], upstreamKey: [k2] }), [{ url: "https://two", keys: [k2] }]);
  assert.throws(() => editUpstreams(base, { cache: "c", upstream: ["https://two"] }), /upstream-key/);
  assert.throws(() => editUpstreams(base, { cache: "c", upstreamKey: [k2] }), /needs the `--upstream`/);
  assert.throws(() => editUpstreams(base, { cache: "c", removeUpstream: ["https://none"] }), /no upstream/);
});

const BASE = `
[database]
url = "sqlite:///var/lib/attic/server.db"
[storage]
type = "local"
path = "/var/lib/attic/storage"
[chunking]
nar-size-threshold = 65536
min-size = 16384
avg-size = 65536
max-size = 262144
[jwt.signing]
token-hs256-secret-base64 = "${randomBytes(32).toString("base64")}"
`;
const parse = (text: string) => parseConfig(text, { source: "server.toml", env: {} }).config;

test("[pull-through] defaults to cache.nixos.org only; [[caches.upstreams]] is read per cache", () => {
  const c = parse(BASE);
  assert.deepEqual(c.pullThrough, { allowedUpstreams: ["https://cache.nixos.org"], timeout: 10, negativeTtl: 60, breakerThreshold: 3, breakerCooldown: 30 });
  const d = parse(`${BASE}
[pull-through]
allowed-upstreams = ["http://10.0.0.5/"]
timeout = "2s"
[[caches]]
name = "hello"
[[caches.upstreams]]
url = "https://cache.nixos.org"
keys = ["cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="]
[[caches]]
name = "plain"
`);
  assert.deepEqual(d.pullThrough.allowedUpstreams, ["http://10.0.0.5/"]);
  assert.equal(d.pullThrough.timeout, 2);
  assert.deepEqual(d.declared.caches[0]!.upstreams, [{ url: "https://cache.nixos.org", keys: ["cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="] }]);
  assert.equal(d.declared.caches[1]!.upstreams, undefined);
  assert.throws(
    () => parse(`${BASE}\n[[caches]]\nname = "x"\n[[caches.upstreams]]\nurl = "https://cache.nixos.org"\n`),
    (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.key === "caches[0].upstreams[0].keys"),
  );
});
