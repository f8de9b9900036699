import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { ConfigError, parseConfig } from "../../../src/server/config/load.ts";
import type { ParseOptions } from "../../../src/server/config/parse.ts";

const SECRET = randomBytes(64).toString("base64");
const SOURCE = "/etc/attic/server.toml";

const MINIMAL = `
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
token-hs256-secret-base64 = "${SECRET}"
`;

function parse(text: string, options: Partial<ParseOptions> = {}) {
  return parseConfig(text, { source: SOURCE, env: {}, ...options }).config;
}

function problemsOf(text: string, options: Partial<ParseOptions> = {}): { key: string; message: string; source: string }[] {
  try {
    parse(text, options);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems.map((p) => ({ ...p }));
  }
  assert.fail("expected a ConfigError");
}

/** MINIMAL with `[table]` bodies replaced or extended */
function withTables(extra: string, replace: Record<string, string> = {}): string {
  let text = MINIMAL;
  for (const [from, to] of Object.entries(replace)) {
    assert.ok(text.includes(from), from);
    text = text.replace(from, to);
  }
  return `${extra}\n${text}`;
}

test("defaults of every optional key", () => {
  const c = parse(MINIMAL);
  assert.equal(c.listen, "[::]:8080");
  assert.deepEqual(c.allowedHosts, []);
  assert.equal(c.apiEndpoint, null);
  assert.equal(c.substituterEndpoint, null);
  assert.equal(c.softDeleteCaches, false);
  assert.equal(c.requireProofOfPossession, true);
  assert.equal(c.maxNarInfoSize, 1048576);
  assert.equal(c.presignedRedirects, true);
  assert.deepEqual(c.database, { url: "sqlite:///var/lib/attic/server.db", heartbeat: false, poolSize: 10 });
  assert.deepEqual(c.storage, { type: "local", path: "/var/lib/attic/storage", packs: true, packSize: 64 * 1024 * 1024 });
  assert.deepEqual(c.chunking, { narSizeThreshold: 65536, minSize: 16384, avgSize: 65536, maxSize: 262144 });
  assert.deepEqual(c.compression, { type: "zstd", level: 8, narinfoName: "zstd" });
  assert.deepEqual(c.garbageCollection, {
    interval: 43200,
    defaultRetentionPeriod: 0,
    staleGracePeriod: 3600,
    maxSize: null,
    compaction: { threshold: 0.1, maxRewriteBytes: 4 * 1024 ** 3, retiredGraceMs: 3600_000, packSize: 64 * 1024 * 1024, packLoose: true },
  });
  assert.equal(c.jwt.tokenBoundIssuer, null);
  assert.equal(c.jwt.tokenBoundAudiences, null);
  assert.equal(c.jwt.signing.alg, "HS256");
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.chunking) && Object.isFrozen(c.allowedHosts) && Object.isFrozen(c.jwt));
});

test("every key, set explicitly", () => {
  const c = parse(
    `
listen = "127.0.0.1:9000"
allowed-hosts = ["cache.example", "localhost:9000"]
api-endpoint = "https://cache.example/"
substituter-endpoint = "https://cdn.example/nix/"
soft-delete-caches = true
require-proof-of-possession = false
max-nar-info-size = 2048
presigned-redirects = false

[database]
url = "postgres://attic:pw@db/attic"
heartbeat = true
pool-size = 25

[storage]
type = "s3"
region = "eu-west-1"
bucket = "nars"
endpoint = "http://127.0.0.1:9000"
public-endpoint = "https://s3.example.com"
packs = false
pack-size = "16 MiB"

[storage.credentials]
access_key_id = "AK"
secret_access_key = "SK"

[chunking]
nar-size-threshold = 0
min-size = 64
avg-size = 256
max-size = 1024

[compression]
type = "xz"
level = 9

[garbage-collection]
interval = "1h 30m"
default-retention-period = "3 months"
stale-grace-period = "10 minutes"
max-size = "1.5 GiB"
compaction-threshold = 5
compaction-max-rewrite = "1 GiB"
pack-retire-grace = "2 hours"

[jwt]
token-bound-issuer = "https://issuer.example"
token-bound-audiences = ["a", "b"]

[jwt.signing]
token-hs256-secret-base64 = "${SECRET}"
`,
  );
  assert.equal(c.listen, "127.0.0.1:9000");
  assert.deepEqual(c.allowedHosts, ["cache.example", "localhost:9000"]);
  assert.equal(c.apiEndpoint, "https://cache.example/");
  assert.equal(c.substituterEndpoint, "https://cdn.example/nix/");
  assert.equal(c.softDeleteCaches, true);
  assert.equal(c.requireProofOfPossession, false);
  assert.equal(c.maxNarInfoSize, 2048);
  assert.equal(c.presignedRedirects, false);
  assert.deepEqual(c.database, { url: "postgres://attic:pw@db/attic", heartbeat: true, poolSize: 25 });
  assert.deepEqual(c.storage, {
    type: "s3",
    region: "eu-west-1",
    bucket: "nars",
    endpoint: "http://127.0.0.1:9000",
    publicEndpoint: "https://s3.example.com",
    packs: false,
    packSize: 16 * 1024 * 1024,
    credentials: { access_key_id: "AK", secret_access_key: "SK" },
  });
  assert.deepEqual(c.chunking, { narSizeThreshold: 0, minSize: 64, avgSize: 256, maxSize: 1024 });
  assert.deepEqual(c.compression, { type: "xz", level: 9, narinfoName: "xz" });
  assert.deepEqual(c.garbageCollection, {
    interval: 5400,
    defaultRetentionPeriod: 3 * 2_630_016,
    staleGracePeriod: 600,
    maxSize: Math.floor(1.5 * 1024 ** 3),
    // packs = false: compaction leaves chunks stored one object each as they are
    compaction: { threshold: 0.05, maxRewriteBytes: 1024 ** 3, retiredGraceMs: 7200_000, packSize: 16 * 1024 * 1024, packLoose: false },
  });
  assert.equal(c.jwt.tokenBoundIssuer, "https://issuer.example");
  assert.deepEqual(c.jwt.tokenBoundAudiences, ["a", "b"]);
});

test("s3 storage without credentials uses the default chain (no credentials key)", () => {
  const c = parse(withTables("", { 'type = "local"\npath = "/var/lib/attic/storage"': 'type = "s3"\nregion = "r"\nbucket = "b"' }));
  assert.deepEqual(c.storage, { type: "s3", region: "r", bucket: "b", packs: true, packSize: 64 * 1024 * 1024 });
});

test("storage.public-endpoint must be an http(s) URL", () => {
  const s3 = (extra: string) => withTables("", { 'type = "local"\npath = "/var/lib/attic/storage"': `type = "s3"\nregion = "r"\nbucket = "b"\n${extra}` });
  assert.equal(parse(s3('public-endpoint = "http://s3.example.com:9000"')).storage.type, "s3");
  for (const bad of ['"s3.example.com"', '"ftp://s3.example.com"', "9000"]) {
    const problems = problemsOf(s3(`public-endpoint = ${bad}`));
    assert.deepEqual(problems.map((p) => p.key), ["storage.public-endpoint"], bad);
  }
});

test("compression level defaults per type and ranges", () => {
  const withCompression = (body: string) => parse(`${MINIMAL}\n[compression]\n${body}\n`);
  assert.deepEqual(withCompression('type = "brotli"').compression, { type: "brotli", level: 5, narinfoName: "br" });
  assert.deepEqual(withCompression('type = "xz"').compression, { type: "xz", level: 2, narinfoName: "xz" });
  assert.deepEqual(withCompression('type = "zstd"').compression, { type: "zstd", level: 8, narinfoName: "zstd" });
  assert.deepEqual(withCompression('type = "none"').compression, { type: "none", level: 0, narinfoName: "none" });
  assert.deepEqual(withCompression('type = "zstd"\nlevel = 22').compression, { type: "zstd", level: 22, narinfoName: "zstd" });
  const bad = problemsOf(`${MINIMAL}\n[compression]\ntype = "brotli"\nlevel = 12\n`);
  assert.deepEqual(bad.map((p) => p.key), ["compression.level"]);
  assert.match(bad[0]!.message, /between 0 and 11 for brotli/);
  assert.deepEqual(problemsOf(`${MINIMAL}\n[compression]\nlevel = 3\n`).map((p) => [p.key, p.message]), [["compression.type", "missing (required)"]]);
  assert.match(problemsOf(`${MINIMAL}\n[compression]\ntype = "gzip"\n`)[0]!.message, /expected one of "none", "brotli", "zstd", "xz", got "gzip"/);
});

test("an unknown top-level key is an error naming the key and the file", () => {
  const problems = problemsOf(`listn = "[::]:8080"\n${MINIMAL}`);
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.key, "listn");
  assert.equal(problems[0]!.source, SOURCE);
  assert.match(problems[0]!.message, /unknown key/);
  assert.throws(() => parse(`listn = 1\n${MINIMAL}`), (e: Error) => e.message.includes(`${SOURCE}: listn: unknown key`));
  // ours are known keys
  assert.equal(parse(`presigned-redirects = false\n${MINIMAL}`).presignedRedirects, false);
});

test("unknown keys inside tables are ignored with a warning, like upstream", () => {
  const { config: c, warnings } = parseConfig(
    withTables("", { "[database]\n": '[database]\nurll = "x"\n', "[chunking]\n": "[chunking]\nextra = 1\n" }).replace(
      'path = "/var/lib/attic/storage"',
      'path = "/var/lib/attic/storage"\nbucket = "ignored"',
    ),
    { source: SOURCE, env: {} },
  );
  assert.equal(c.storage.type, "local");
  assert.deepEqual(warnings, [
    `${SOURCE}: database.urll: unknown key, ignored`,
    `${SOURCE}: chunking.extra: unknown key, ignored`,
    `${SOURCE}: storage.bucket: ignored for storage type "local"`,
  ]);
});

test("the deprecated top-level token-hs256-secret-base64 is an error with migration text", () => {
  const problems = problemsOf(`token-hs256-secret-base64 = "${SECRET}"\n${MINIMAL}`);
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.key, "token-hs256-secret-base64");
  assert.match(problems[0]!.message, /moved to \[jwt\.signing\]/);
  assert.match(problems[0]!.message, /\[jwt\.signing\]\n\s+token-hs256-secret-base64 = "your token"/);
});

test("all problems are collected and reported together", () => {
  const text = `
listen = "localhost:8080"
api-endpoint = "https://cache.example"
max-nar-info-size = "big"
bogus = true
[storage]
type = "s3"
[chunking]
nar-size-threshold = 65536
min-size = 32
avg-size = 65536
max-size = 4096
[garbage-collection]
interval = "12 fortnights"
max-size = "lots"
[jwt.signing]
`;
  const problems = problemsOf(text);
  assert.deepEqual(
    problems.map((p) => p.key),
    [
      "bogus",
      "database",
      "listen",
      "api-endpoint",
      "max-nar-info-size",
      "storage.region",
      "storage.bucket",
      "chunking.min-size",
      "chunking.avg-size",
      "garbage-collection.interval",
      "garbage-collection.max-size",
      "jwt.signing",
    ],
  );
  const byKey = new Map(problems.map((p) => [p.key, p.message]));
  assert.match(byKey.get("listen")!, /socket address/);
  assert.match(byKey.get("api-endpoint")!, /must end with "\/"/);
  assert.match(byKey.get("chunking.min-size")!, /at least 64/);
  assert.match(byKey.get("chunking.avg-size")!, /must not exceed max-size \(65536 > 4096\)/);
  assert.match(byKey.get("garbage-collection.interval")!, /unknown time unit "fortnights"/);
  assert.match(byKey.get("jwt.signing")!, /exactly one of/);
  try {
    parse(text);
  } catch (error) {
    const lines = (error as Error).message.split("\n");
    assert.match(lines[0]!, /invalid server configuration \(12 problems\)/);
    for (const line of lines.slice(1).filter((l) => l.startsWith("  - "))) assert.ok(line.startsWith(`  - ${SOURCE}: `), line);
  }
});

test("chunk size limits and order", () => {
  const chunking = (min: number, avg: number, max: number) =>
    problemsOf(withTables("", { "min-size = 16384\navg-size = 65536\nmax-size = 262144": `min-size = ${min}\navg-size = ${avg}\nmax-size = ${max}` }))
      .map((p) => `${p.key}: ${p.message}`);
  assert.deepEqual(chunking(63, 256, 1024), ["chunking.min-size: must be at least 64, got 63"]);
  assert.deepEqual(chunking(64, 255, 1024), ["chunking.avg-size: must be at least 256, got 255"]);
  assert.deepEqual(chunking(64, 256, 1023), ["chunking.max-size: must be at least 1024, got 1023"]);
  assert.deepEqual(chunking(64, 256, 1024 ** 3 + 1), [`chunking.max-size: must be at most ${1024 ** 3}, got ${1024 ** 3 + 1}`]);
  assert.deepEqual(chunking(300, 256, 1024), ["chunking.min-size: must not exceed avg-size (300 > 256)"]);
  assert.deepEqual(chunking(64, 2048, 1024), ["chunking.avg-size: must not exceed max-size (2048 > 1024)"]);
  assert.deepEqual(
    problemsOf(withTables("", { "nar-size-threshold = 65536\n": "" })).map((p) => `${p.key}: ${p.message}`),
    ["chunking.nar-size-threshold: missing (required)"],
  );
});

test("required tables", () => {
  const problems = problemsOf(`[jwt.signing]\ntoken-hs256-secret-base64 = "${SECRET}"\n`);
  assert.deepEqual(problems.map((p) => `${p.key}: ${p.message}`), ["database: missing table [database]", "storage: missing table [storage]", "chunking: missing table [chunking]"]);
  assert.deepEqual(problemsOf(`database = "x"\n${MINIMAL.replace("[database]\n", "[db]\n")}`).map((p) => p.key), ["database", "db"]);
});

test("database url: file, then ATTIC_SERVER_DATABASE_URL, else a clear error", () => {
  const noUrl = MINIMAL.replace('url = "sqlite:///var/lib/attic/server.db"\n', "");
  assert.equal(parse(noUrl, { env: { ATTIC_SERVER_DATABASE_URL: "postgres://h/db" } }).database.url, "postgres://h/db");
  assert.equal(parse(MINIMAL, { env: { ATTIC_SERVER_DATABASE_URL: "postgres://h/db" } }).database.url, "sqlite:///var/lib/attic/server.db");
  assert.deepEqual(problemsOf(noUrl, { env: { ATTIC_SERVER_DATABASE_URL: "" } }).map((p) => `${p.key}: ${p.message}`), [
    "database.url: missing: set database.url or the ATTIC_SERVER_DATABASE_URL environment variable",
  ]);
  const bad = problemsOf(noUrl, { env: { ATTIC_SERVER_DATABASE_URL: "mysql://x" } });
  assert.deepEqual(bad.map((p) => [p.source, p.key]), [["ATTIC_SERVER_DATABASE_URL", "database.url"]]);
});

test("JWT signing: exactly one key in [jwt.signing], else the env in upstream's order", () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const rsaSecret = Buffer.from(privateKey.export({ type: "pkcs1", format: "pem" })).toString("base64");
  const rsaPub = Buffer.from(publicKey.export({ type: "spki", format: "pem" })).toString("base64");
  const noSigning = MINIMAL.replace(`[jwt.signing]\ntoken-hs256-secret-base64 = "${SECRET}"\n`, "");

  const env = {
    ATTIC_SERVER_TOKEN_RS256_PUBKEY_BASE64: rsaPub,
    ATTIC_SERVER_TOKEN_RS256_SECRET_BASE64: rsaSecret,
    ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64: SECRET,
  };
  const pubOnly = parse(noSigning, { env }).jwt.signing;
  assert.ok(pubOnly.alg === "RS256" && pubOnly.privateKey === undefined);
  const rsa = parse(noSigning, { env: { ...env, ATTIC_SERVER_TOKEN_RS256_PUBKEY_BASE64: "" } }).jwt.signing;
  assert.ok(rsa.alg === "RS256" && rsa.privateKey !== undefined);
  assert.equal(parse(noSigning, { env: { ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64: SECRET } }).jwt.signing.alg, "HS256");
  // [jwt] without [jwt.signing] also falls back to the env
  assert.equal(parse(`${noSigning}\n[jwt]\ntoken-bound-issuer = "i"\n`, { env }).jwt.signing.alg, "RS256");
  // the file wins over the env
  assert.equal(parse(MINIMAL, { env }).jwt.signing.alg, "HS256");

  const none = problemsOf(noSigning);
  assert.equal(none[0]!.key, "jwt.signing");
  assert.match(none[0]!.message, /ATTIC_SERVER_TOKEN_RS256_PUBKEY_BASE64, ATTIC_SERVER_TOKEN_RS256_SECRET_BASE64, ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64/);

  const two = problemsOf(`${noSigning}\n[jwt.signing]\ntoken-hs256-secret-base64 = "${SECRET}"\ntoken-rs256-secret-base64 = "${rsaSecret}"\n`);
  assert.match(two[0]!.message, /exactly one of .* \(found token-rs256-secret-base64 and token-hs256-secret-base64\)/);

  const badFile = problemsOf(`${noSigning}\n[jwt.signing]\ntoken-rs256-secret-base64 = "${SECRET}"\n`);
  assert.deepEqual(badFile.map((p) => [p.source, p.key]), [[SOURCE, "jwt.signing.token-rs256-secret-base64"]]);
  const badEnv = problemsOf(noSigning, { env: { ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64: "%%%" } });
  assert.deepEqual(badEnv.map((p) => [p.source, p.key, p.message]), [
    ["ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64", "jwt.signing.token-hs256-secret-base64", "not valid base64 (standard alphabet with padding)"],
  ]);
  assert.match(problemsOf(`${noSigning}\n[jwt.signing]\ntoken-hs256-secret-base64 = 5\n`)[0]!.message, /expected a base64 string/);
});

test("value kinds: listen addresses, endpoints, sizes, lists, booleans", () => {
  const top = (line: string) => parse(`${line}\n${MINIMAL}`);
  const bad = (line: string) => problemsOf(`${line}\n${MINIMAL}`).map((p) => `${p.key}: ${p.message}`);
  assert.equal(top('listen = "[::1]:0"').listen, "[::1]:0");
  assert.equal(top('listen = "0.0.0.0:80"').listen, "0.0.0.0:80");
  for (const v of ["localhost:8080", "[::]", ":8080", "1.2.3.4:70000", "[zz]:1", "1.2.3:80"]) {
    assert.match(bad(`listen = "${v}"`)[0]!, /^listen: expected a socket address/, v);
  }
  assert.match(bad("listen = 8080")[0]!, /expected a string, got an integer/);
  assert.match(bad('api-endpoint = "ftp://x/"')[0]!, /http\(s\) URL/);
  assert.match(bad('substituter-endpoint = "http://x/cache"')[0]!, /substituter-endpoint: must end with "\/"/);
  assert.match(bad('allowed-hosts = "x"')[0]!, /array of strings/);
  assert.match(bad("soft-delete-caches = 1")[0]!, /expected true or false/);
  assert.match(bad("max-nar-info-size = 0")[0]!, /at least 1/);

  const gc = (line: string) => parse(`${MINIMAL}\n[garbage-collection]\n${line}\n`).garbageCollection;
  assert.equal(gc("max-size = 1000").maxSize, 1000);
  assert.equal(gc('max-size = "500 GiB"').maxSize, 500 * 1024 ** 3);
  assert.equal(gc('max-size = "2TB"').maxSize, 2e12);
  assert.equal(gc('max-size = "750M"').maxSize, 750 * 1024 ** 2);
  assert.equal(gc('interval = "0"').interval, 0);
  assert.equal(gc('default-retention-period = "1y"').defaultRetentionPeriod, 31_557_600);
  const gcBad = (line: string) => problemsOf(`${MINIMAL}\n[garbage-collection]\n${line}\n`).map((p) => `${p.key}: ${p.message}`);
  assert.match(gcBad('max-size = "5 parsecs"')[0]!, /invalid size "5 parsecs"/);
  assert.match(gcBad("interval = 60")[0]!, /expected a duration string/);
  assert.match(gcBad('stale-grace-period = "0"')[0]!, /longer than 0/);
});

test("TOML syntax errors name the source", () => {
  const problems = problemsOf("listen = \n");
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.source, SOURCE);
  assert.match(problems[0]!.message, /^not valid TOML: /);
});
