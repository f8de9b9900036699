// `[jwt] time-tolerance` and `[[oidc.issuers]]` / `[[oidc.issuers.rules]]` (ours, issue 18):
// defaults, what is read, and every problem named with the entry it is in.
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { ConfigError, parseConfig } from "../../../src/server/config/load.ts";

const BASE = (signing: string) => `
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
${signing}
`;
const HS256 = `token-hs256-secret-base64 = "${randomBytes(32).toString("base64")}"`;
const parse = (text: string) => parseConfig(text, { source: "server.toml", env: {} });
function problems(text: string): string[] {
  try {
    parse(text);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems.map((p) => `${p.key}: ${p.message}`);
  }
  assert.fail("expected a ConfigError");
}

const ISSUER = `
[[oidc.issuers]]
name = "github"
issuer = "https://token.actions.githubusercontent.com"
jwks-url = "https://token.actions.githubusercontent.com/.well-known/jwks"
audience = "https://cache.example.com"
[[oidc.issuers.rules]]
claims = { repository = "org/*", ref = ["refs/heads/main", "refs/tags/*"] }
push = ["org-*"]
pull = ["org-*", "shared"]
`;

test("jwt.time-tolerance defaults to 10 s; 0 is upstream's exact check", () => {
  assert.equal(parse(BASE(HS256)).config.jwt.timeTolerance, 10);
  assert.equal(parse(BASE(HS256).replace("[jwt.signing]", '[jwt]\ntime-tolerance = "0"\n[jwt.signing]')).config.jwt.timeTolerance, 0);
  assert.equal(parse(BASE(HS256).replace("[jwt.signing]", '[jwt]\ntime-tolerance = "2m"\n[jwt.signing]')).config.jwt.timeTolerance, 120);
  assert.equal(parse(BASE(HS256)).config.oidc.issuers.length, 0);
});

test("an issuer with its rules is read; token-validity defaults to 1 hour", () => {
  const { config, warnings } = parse(BASE(HS256) + ISSUER);
  assert.deepEqual(warnings, []);
  const [issuer] = config.oidc.issuers;
  assert.equal(issuer?.name, "github");
  assert.equal(issuer?.tokenValidity, 3600);
  assert.deepEqual(issuer?.rules[0]?.claims, { repository: ["org/*"], ref: ["refs/heads/main", "refs/tags/*"] });
  assert.deepEqual(issuer?.rules[0]?.grants, [
    { pattern: "org-*", permission: "pull" },
    { pattern: "shared", permission: "pull" },
    { pattern: "org-*", permission: "push" },
  ]);
});

test("problems name the entry: missing keys, bad patterns, empty claims, duplicate names, a key that cannot sign", () => {
  const text =
    BASE(HS256) +
    ISSUER +
    `
[[oidc.issuers]]
name = "github"
issuer = "https://gitlab.com"
jwks-url = "ftp://gitlab.com/keys"
[[oidc.issuers.rules]]
claims = {}
push = ["bad pattern!"]
[[oidc.issuers.rules]]
claims = { project_path = 3 }
`;
  assert.deepEqual(problems(text).sort(), [
    "oidc.issuers[1].audience: missing (required)",
    'oidc.issuers[1].jwks-url: expected an http(s) URL, got "ftp://gitlab.com/keys"',
    'oidc.issuers[1].name: another issuer is named "github"',
    "oidc.issuers[1].rules[0].claims: name at least one claim (a rule without conditions would admit every token of the issuer)",
    'oidc.issuers[1].rules[0].push: invalid cache name pattern "bad pattern!"',
    "oidc.issuers[1].rules[1].claims: project_path: expected a string or a non-empty array of strings, got an integer",
  ]);
  const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pubkey = `token-rs256-pubkey-base64 = "${Buffer.from(publicKey.export({ type: "spki", format: "pem" })).toString("base64")}"`;
  assert.match(problems(BASE(pubkey) + ISSUER).join("\n"), /oidc\.issuers: the OIDC exchange mints tokens, but the JWT key is an RS256 public key/);
});
