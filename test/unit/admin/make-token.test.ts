import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHmac, generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeHs256SecretBase64, decodeRs256PubkeyBase64, verifyToken } from "../../../src/token/jwt.ts";

const BIN = join(import.meta.dirname, "..", "..", "..", "src", "bin", "atticadm.ts");
const SECRET = randomBytes(64);
const work = mkdtempSync(join(tmpdir(), "atticadm-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

function configWith(signing: string, extra = ""): string {
  return `${extra}
[database]
url = "sqlite:///tmp/unused.db"
[storage]
type = "local"
path = "/tmp/unused"
[chunking]
nar-size-threshold = 65536
min-size = 16384
avg-size = 65536
max-size = 262144
${signing}
`;
}

let n = 0;
function writeConfig(text: string): string {
  const path = join(work, `server-${n++}.toml`);
  writeFileSync(path, text);
  return path;
}

const HS256_CONFIG = writeConfig(configWith(`[jwt.signing]\ntoken-hs256-secret-base64 = "${SECRET.toString("base64")}"`));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function atticadm(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { PATH: process.env.PATH, HOME: work, XDG_CONFIG_HOME: join(work, "no-xdg"), ...env }, timeout: 20_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const decode = (segment: string): string => Buffer.from(segment, "base64url").toString("utf8");

/** The seed's `atticadm make-token --sub alice --validity '3 months' --pull hello --push hello` payload. */
const SEED_PAYLOAD = JSON.parse(decode("eyJzdWIiOiJhbGljZSIsImV4cCI6MTY4MDI5MzMzOSwiaHR0cHM6Ly9qd3QuYXR0aWMucnMvdjEiOnsiY2FjaGVzIjp7ImhlbGxvIjp7InIiOjEsInciOjF9fX19"));

test("make-token prints one signed HS256 JWT with upstream's header and claim order", async () => {
  const before = Math.floor(Date.now() / 1000);
  const r = await atticadm(["-f", HS256_CONFIG, "make-token", "--sub", "alice", "--validity", "3 months", "--pull", "hello", "--push", "hello"]);
  const after = Math.floor(Date.now() / 1000);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  assert.match(r.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  const token = r.stdout.trim();
  const [header, payload, signature] = token.split(".") as [string, string, string];
  assert.equal(decode(header), '{"alg":"HS256","typ":"JWT"}');
  const json = decode(payload);
  const claims = JSON.parse(json) as Record<string, unknown>;
  // upstream's claims in upstream's order, plus our jti (the handle of revoke-token) where upstream's serializer puts it
  assert.deepEqual(Object.keys(claims), ["exp", "nbf", "sub", "jti", "https://jwt.attic.rs/v1"]);
  assert.match(claims.jti as string, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  // the same claims as the seed's token (which predates nbf), byte for byte in the attic claim
  assert.equal(claims.sub, SEED_PAYLOAD.sub);
  assert.ok(json.endsWith(`"https://jwt.attic.rs/v1":${JSON.stringify(SEED_PAYLOAD["https://jwt.attic.rs/v1"])}}`), json);
  const nbf = claims.nbf as number;
  assert.ok(nbf >= before && nbf <= after);
  assert.equal((claims.exp as number) - nbf, 3 * 2_630_016);
  // signed with the configured secret: an independent HMAC agrees, and the server accepts it
  assert.equal(signature, createHmac("sha256", SECRET).update(`${header}.${payload}`).digest("base64url"));
  const verified = await verifyToken(token, decodeHs256SecretBase64(SECRET.toString("base64")));
  assert.equal(verified?.caches.get("hello")?.push, true);
});

test("permission map: flag groups in upstream order, a pattern keeps its first position", async () => {
  const r = await atticadm([
    "-f", HS256_CONFIG, "make-token", "--sub", "bob", "--validity", "1d", "--dump-claims",
    "--destroy-cache", "z", "--push", "b", "--create-cache", "team-*", "--pull", "a", "--pull", "b", "--pull", "*",
    "--configure-cache-retention", "a", "--delete", "b", "--configure-cache", "team-*",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const caches = JSON.stringify(JSON.parse(r.stdout)["https://jwt.attic.rs/v1"].caches);
  assert.equal(caches, '{"a":{"r":1,"cq":1},"b":{"r":1,"w":1,"d":1},"*":{"r":1},"team-*":{"cc":1,"cr":1},"z":{"cd":1}}');
});

test("--dump-claims prints the claims without iss/aud; the signed token carries them", async () => {
  const bound = writeConfig(
    configWith(`[jwt.signing]\ntoken-hs256-secret-base64 = "${SECRET.toString("base64")}"`).replace(
      "[database]",
      '[jwt]\ntoken-bound-issuer = "https://issuer.example"\ntoken-bound-audiences = ["aud-1"]\n\n[database]',
    ),
  );
  const dump = await atticadm(["-f", bound, "make-token", "--sub", "alice", "--validity", "2y", "--pull", "dev-*", "--push", "dev-*", "--pull", "prod", "--dump-claims"]);
  assert.equal(dump.code, 0, dump.stderr);
  assert.match(dump.stdout, /^\{"exp":\d+,"nbf":\d+,"sub":"alice","jti":"[0-9a-f-]{36}","https:\/\/jwt\.attic\.rs\/v1":\{"caches":\{"dev-\*":\{"r":1,"w":1\},"prod":\{"r":1\}\}\}\}\n$/);
  const claims = JSON.parse(dump.stdout);
  assert.equal(claims.exp - claims.nbf, 2 * 31_557_600);

  const signed = await atticadm(["-f", bound, "make-token", "--sub", "alice", "--validity", "1h", "--pull", "prod"]);
  assert.equal(signed.code, 0, signed.stderr);
  const payload = decode(signed.stdout.trim().split(".")[1]!);
  assert.match(payload, /^\{"exp":\d+,"nbf":\d+,"iss":"https:\/\/issuer\.example","sub":"alice","aud":\["aud-1"\],"jti":"[0-9a-f-]{36}","https:\/\/jwt\.attic\.rs\/v1":/);
  const signing = decodeHs256SecretBase64(SECRET.toString("base64"));
  assert.ok(await verifyToken(signed.stdout.trim(), signing, { boundIssuer: "https://issuer.example", boundAudiences: ["aud-1"] }));
});

test("RS256 keys sign; a pubkey-only config cannot mint", async () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64");
  const rsa = writeConfig(configWith(`[jwt.signing]\ntoken-rs256-secret-base64 = "${b64(privateKey.export({ type: "pkcs8", format: "pem" }))}"`));
  const pubB64 = b64(publicKey.export({ type: "spki", format: "pem" }));
  const r = await atticadm(["-f", rsa, "make-token", "--sub", "r", "--validity", "1h", "--pull", "x"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(decode(r.stdout.split(".")[0]!), '{"alg":"RS256","typ":"JWT"}');
  assert.equal((await verifyToken(r.stdout.trim(), decodeRs256PubkeyBase64(pubB64)))?.sub, "r");

  // pubkey-only from the environment ([jwt.signing] absent)
  const envOnly = writeConfig(configWith(""));
  const p = await atticadm(["-f", envOnly, "make-token", "--sub", "r", "--validity", "1h"], { ATTIC_SERVER_TOKEN_RS256_PUBKEY_BASE64: pubB64 });
  assert.equal(p.code, 1);
  assert.equal(p.stdout, "");
  assert.equal(p.stderr, "Error: Pubkey-only JWT authentication cannot create signed JWTs\n");
});

test("config from ATTIC_SERVER_CONFIG_BASE64; never a first run", async () => {
  const text = configWith(`[jwt.signing]\ntoken-hs256-secret-base64 = "${SECRET.toString("base64")}"`);
  const fromEnv = await atticadm(["make-token", "--sub", "e", "--validity", "1h", "--dump-claims"], { ATTIC_SERVER_CONFIG_BASE64: Buffer.from(text).toString("base64") });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  assert.equal(JSON.parse(fromEnv.stdout).sub, "e");

  const xdg = join(work, "empty-xdg");
  const none = await atticadm(["make-token", "--sub", "e", "--validity", "1h"], { XDG_CONFIG_HOME: xdg });
  assert.equal(none.code, 1);
  assert.match(none.stderr, /^Error: no server configuration found: pass -f PATH, set ATTIC_SERVER_CONFIG_BASE64, or create .*empty-xdg\/attic\/server\.toml/);
  assert.equal(existsSync(join(xdg, "attic", "server.toml")), false);
});

test("user errors: `Error: <message>`, exit 1 (2 for usage errors), no stack trace", async () => {
  const noStack = (r: Run, code = 1): void => {
    assert.equal(r.code, code, r.stderr);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^Error: /);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  };
  const validity = await atticadm(["-f", HS256_CONFIG, "make-token", "--sub", "a", "--validity", "2 fortnights"]);
  noStack(validity, 2);
  assert.match(validity.stderr, /--validity.*invalid duration "2 fortnights": unknown time unit "fortnights"/);

  const pattern = await atticadm(["-f", HS256_CONFIG, "make-token", "--sub", "a", "--validity", "1d", "--pull", "bad/name"]);
  noStack(pattern, 2);
  assert.match(pattern.stderr, /--pull <pattern>.*'bad\/name' is invalid/);

  const missingSub = await atticadm(["-f", HS256_CONFIG, "make-token", "--validity", "1d"]);
  noStack(missingSub, 2);
  assert.match(missingSub.stderr, /required option '--sub <sub>'/);

  const badConfig = writeConfig(`listn = "x"\n${configWith(`[jwt.signing]\ntoken-hs256-secret-base64 = "${SECRET.toString("base64")}"`)}`);
  const config = await atticadm(["-f", badConfig, "make-token", "--sub", "a", "--validity", "1d"]);
  noStack(config);
  assert.ok(config.stderr.includes(`${badConfig}: listn: unknown key`), config.stderr);
});
