// The tables whose keys depend on each other: storage (by type), chunking (size order),
// compression (level range by type) and JWT signing (exactly one key, else the environment).
import { decodeSigningConfig, SigningKeyError, type JwtSigning, type SigningKind } from "../../token/keys.ts";
import type { ConfigReader } from "./reader.ts";
import { KEYS, SIGNING_KEYS, splitKey } from "./schema.ts";
import { LEVEL_RANGE, narinfoCompressionName } from "../../compression/index.ts";
import type { CompressionType, Config, StorageConfig } from "./types.ts";
import { readValue, ValueProblem } from "./values.ts";


const NO_SIGNING_MESSAGE = `no JWT signing key is configured. Set exactly one of these in the [jwt.signing] table:
  token-rs256-pubkey-base64, token-rs256-secret-base64, token-hs256-secret-base64
or one of these environment variables (tried in this order):
  ATTIC_SERVER_TOKEN_RS256_PUBKEY_BASE64, ATTIC_SERVER_TOKEN_RS256_SECRET_BASE64, ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64
An RS256 public key only verifies tokens; an RS256 private key or an HS256 secret also signs them.`;

export function readStorage(r: ConfigReader): StorageConfig | undefined {
  const type = r.read<"local" | "s3">("storage.type", { required: true });
  if (type === undefined) return undefined;
  for (const spec of KEYS) {
    if (spec.storageType && spec.storageType !== type && r.raw.has(spec.key)) r.warn(spec.key, `ignored for storage type "${type}"`);
  }
  const packing = { packs: r.read<boolean>("storage.packs") ?? true, packSize: r.read<number>("storage.pack-size") ?? 64 * 1024 * 1024 };
  if (type === "local") {
    const path = r.read<string>("storage.path", { required: true });
    return path === undefined ? undefined : { type, path, ...packing };
  }
  const region = r.read<string>("storage.region", { required: true });
  const bucket = r.read<string>("storage.bucket", { required: true });
  const endpoint = r.read<string>("storage.endpoint");
  const publicEndpoint = r.read<string>("storage.public-endpoint");
  let credentials: { access_key_id: string; secret_access_key: string } | undefined;
  if (r.tables.has("storage.credentials")) {
    const accessKeyId = r.read<string>("storage.credentials.access_key_id", { required: true });
    const secretAccessKey = r.read<string>("storage.credentials.secret_access_key", { required: true });
    if (accessKeyId !== undefined && secretAccessKey !== undefined) credentials = { access_key_id: accessKeyId, secret_access_key: secretAccessKey };
  }
  if (region === undefined || bucket === undefined) return undefined;
  return {
    type,
    region,
    bucket,
    ...packing,
    ...(endpoint !== undefined && { endpoint }),
    ...(publicEndpoint !== undefined && { publicEndpoint }),
    ...(credentials && { credentials }),
  };
}

export function readChunking(r: ConfigReader): Config["chunking"] | undefined {
  const narSizeThreshold = r.read<number>("chunking.nar-size-threshold", { required: true });
  const minSize = r.read<number>("chunking.min-size", { required: true });
  const avgSize = r.read<number>("chunking.avg-size", { required: true });
  const maxSize = r.read<number>("chunking.max-size", { required: true });
  if (minSize !== undefined && avgSize !== undefined && minSize > avgSize) {
    r.problem("chunking.min-size", `must not exceed avg-size (${minSize} > ${avgSize})`);
  }
  if (avgSize !== undefined && maxSize !== undefined && avgSize > maxSize) {
    r.problem("chunking.avg-size", `must not exceed max-size (${avgSize} > ${maxSize})`);
  }
  if (narSizeThreshold === undefined || minSize === undefined || avgSize === undefined || maxSize === undefined) return undefined;
  return { narSizeThreshold, minSize, avgSize, maxSize };
}

export function readCompression(r: ConfigReader): Config["compression"] | undefined {
  const type = r.read<CompressionType>("compression.type", { required: r.tables.has("compression") });
  if (type === undefined) return undefined;
  const spec = LEVEL_RANGE[type];
  const level = r.read<number>("compression.level") ?? spec.default;
  if (type !== "none" && (level < spec.min || level > spec.max)) {
    r.problem("compression.level", `must be between ${spec.min} and ${spec.max} for ${type}, got ${level}`);
    return undefined;
  }
  return { type, level, narinfoName: narinfoCompressionName(type) };
}

export function readSigning(r: ConfigReader): JwtSigning | undefined {
  const decode = (key: string, value: unknown, from: string): JwtSigning | undefined => {
    try {
      return decodeSigningConfig(splitKey(key).name as SigningKind, readValue("secret", value) as string);
    } catch (error) {
      if (!(error instanceof SigningKeyError) && !(error instanceof ValueProblem)) throw error;
      r.problem(key, error.message, from);
      return undefined;
    }
  };
  if (r.tables.has("jwt.signing")) {
    const given = SIGNING_KEYS.filter((k) => r.raw.has(k.key));
    if (given.length !== 1) {
      const names = SIGNING_KEYS.map((k) => splitKey(k.key).name).join(", ");
      const found = given.length ? ` (found ${given.map((k) => splitKey(k.key).name).join(" and ")})` : "";
      r.problem("jwt.signing", `set exactly one of ${names}${found}`);
      return undefined;
    }
    return decode(given[0]!.key, r.raw.get(given[0]!.key), r.source);
  }
  // upstream's order: pubkey, then RSA secret, then HMAC secret; empty values count as unset
  for (const spec of SIGNING_KEYS) {
    const value = r.env[spec.env!];
    if (value) return decode(spec.key, value, spec.env!);
  }
  r.problem("jwt.signing", NO_SIGNING_MESSAGE);
  return undefined;
}
