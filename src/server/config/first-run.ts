// First run ("OOBE"): with no configuration anywhere, atticd in monolithic mode writes a working
// server.toml (SQLite and local storage under $XDG_DATA_HOME/attic) and mints a root token.
// Unlike upstream (RSA-4096) we generate an HS256 secret: tokens stay short, like the seed's.
import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseDuration } from "../../api/duration.ts";
import { grant, type Claims } from "../../token/claims.ts";
import { signToken } from "../../token/jwt.ts";
import { PERMISSION_NAMES } from "../../token/permissions.ts";
import { parseConfig } from "./parse.ts";
import type { Config } from "./types.ts";
import { dataDir, defaultConfigPath } from "./xdg.ts";

export { defaultConfigPath } from "./xdg.ts";

function template(databaseUrl: string, storagePath: string, secretBase64: string): string {
  return `# Attic server configuration, written on first start.
# Reference of every key: docs/config-reference.md

# Socket address to listen on
listen = "[::]:8080"

# Allowed \`Host\` headers; empty allows all. Set this in production.
allowed-hosts = []

# The canonical API endpoint of this server, ending with "/".
# Unset, it is synthesised from the request's Host header (unsafe in production).
#api-endpoint = "https://your.domain.tld/"

[database]
# sqlite:///absolute/path or postgres://user:password@host/db
url = ${JSON.stringify(databaseUrl)}

[storage]
type = "local"
path = ${JSON.stringify(storagePath)}

# S3-compatible storage instead:
#type = "s3"
#region = "us-east-1"
#bucket = "attic"
#endpoint = "https://s3.example.com"
#[storage.credentials]
#access_key_id = ""
#secret_access_key = ""

# Content-defined chunking. Changing these later hurts deduplication for a while.
[chunking]
# NARs at least this large are chunked (0 disables chunking)
nar-size-threshold = 65536 # 64 KiB
min-size = 16384           # 16 KiB
avg-size = 65536           # 64 KiB
max-size = 262144          # 256 KiB

[compression]
# none, brotli, zstd or xz
type = "zstd"
#level = 8

[garbage-collection]
# How often garbage collection runs; "0" disables the periodic run
interval = "12 hours"
# Objects not accessed for this long are collected; "0" (default) disables it
#default-retention-period = "6 months"

[jwt.signing]
# Base64 of the HMAC secret that signs and verifies tokens. Keep it secret.
token-hs256-secret-base64 = ${JSON.stringify(secretBase64)}
`;
}

export interface FirstRun {
  path: string;
  config: Config;
}

/**
 * Write $XDG_CONFIG_HOME/attic/server.toml (mode 0600) and create the data folders. Never
 * overwrites: throws EEXIST if a config appeared meanwhile.
 */
export function writeFirstRunConfig(env: NodeJS.ProcessEnv = process.env): FirstRun {
  const path = defaultConfigPath(env);
  const data = dataDir(env);
  const storagePath = join(data, "storage");
  mkdirSync(storagePath, { recursive: true, mode: 0o700 });
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });

  const text = template(`sqlite://${join(data, "server.db")}`, storagePath, randomBytes(64).toString("base64"));
  const { config } = parseConfig(text, { source: path, env: {} });

  // temp file + hard link: the config appears complete, with its mode, and never clobbers one
  const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(temp, text, { mode: 0o600, flag: "wx" });
  try {
    linkSync(temp, path);
  } finally {
    unlinkSync(temp);
  }
  return { path, config };
}

/** The root token's claims: sub "root", every permission on `*`, valid for two years. */
export function rootTokenClaims(now: number = Date.now()): Claims {
  const nowSecs = Math.floor(now / 1000);
  const claims: Claims = { exp: nowSecs + parseDuration("2y"), nbf: nowSecs, sub: "root", caches: new Map() };
  for (const permission of PERMISSION_NAMES) grant(claims, "*", permission);
  return claims;
}

/** Mint the root token with the configured key (and bound issuer/audiences). */
export function mintRootToken(config: Config, now: number = Date.now()): Promise<string> {
  return signToken(rootTokenClaims(now), config.jwt.signing, {
    issuer: config.jwt.tokenBoundIssuer,
    audiences: config.jwt.tokenBoundAudiences,
  });
}
