// The JWT signing configuration and its three upstream encodings:
//   token-hs256-secret-base64  base64 of arbitrary bytes (HMAC secret)
//   token-rs256-secret-base64  base64 of a PEM RSA private key, PKCS#1 or PKCS#8 (sign + verify)
//   token-rs256-pubkey-base64  base64 of a PEM RSA public key, SPKI or PKCS#1 (verify only)
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";

export type JwtSigning =
  | { alg: "HS256"; secret: Uint8Array }
  | { alg: "RS256"; privateKey: KeyObject; publicKey: KeyObject }
  /** verify-only: tokens cannot be minted */
  | { alg: "RS256"; publicKey: KeyObject; privateKey?: undefined };

export type SigningKind = "token-hs256-secret-base64" | "token-rs256-secret-base64" | "token-rs256-pubkey-base64";

export const SIGNING_KINDS: readonly SigningKind[] = [
  "token-rs256-pubkey-base64",
  "token-rs256-secret-base64",
  "token-hs256-secret-base64",
];

/** A key that cannot be decoded; the message says what is wrong, never the key itself. */
export class SigningKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SigningKeyError";
  }
}

/** Minimum RSA modulus; jose refuses to sign or verify RS256 with smaller keys. */
const MIN_RSA_BITS = 2048;

/**
 * Strict standard base64 (with padding). ASCII whitespace is ignored so that the output of
 * `base64` without `-w0` (wrapped lines) is accepted too.
 */
export function decodeBase64Strict(value: string): Buffer {
  const compact = value.replace(/[ \t\r\n]/g, "");
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) {
    throw new SigningKeyError("not valid base64 (standard alphabet with padding)");
  }
  return Buffer.from(compact, "base64");
}

export function decodeHs256SecretBase64(value: string): JwtSigning {
  const secret = decodeBase64Strict(value);
  if (secret.length === 0) throw new SigningKeyError("the HS256 secret is empty");
  return { alg: "HS256", secret: new Uint8Array(secret) };
}

function pemOf(value: string): string {
  const text = decodeBase64Strict(value).toString("utf8");
  if (!text.includes("-----BEGIN ")) throw new SigningKeyError("the base64 does not decode to a PEM key");
  return text;
}

function checkRsa(key: KeyObject): void {
  if (key.asymmetricKeyType !== "rsa") {
    throw new SigningKeyError(`expected an RSA key, got ${key.asymmetricKeyType ?? "an unknown key type"}`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) throw new SigningKeyError(`the RSA key has ${bits} bits; RS256 needs at least ${MIN_RSA_BITS}`);
}

export function decodeRs256SecretBase64(value: string): JwtSigning {
  const pem = pemOf(value);
  if (!/-----BEGIN (RSA )?PRIVATE KEY-----/.test(pem)) {
    throw new SigningKeyError("expected a PEM private key (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)");
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: "pem" });
  } catch (error) {
    throw new SigningKeyError(`cannot read the RSA private key: ${(error as Error).message}`);
  }
  checkRsa(privateKey);
  return { alg: "RS256", privateKey, publicKey: createPublicKey(privateKey) };
}

export function decodeRs256PubkeyBase64(value: string): JwtSigning {
  const pem = pemOf(value);
  if (!/-----BEGIN (RSA )?PUBLIC KEY-----/.test(pem)) {
    throw new SigningKeyError("expected a PEM public key (BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY)");
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: pem, format: "pem" });
  } catch (error) {
    throw new SigningKeyError(`cannot read the RSA public key: ${(error as Error).message}`);
  }
  checkRsa(publicKey);
  return { alg: "RS256", publicKey };
}

/** Decode one of the three config/env encodings; throws SigningKeyError. */
export function decodeSigningConfig(kind: SigningKind, value: string): JwtSigning {
  switch (kind) {
    case "token-hs256-secret-base64":
      return decodeHs256SecretBase64(value);
    case "token-rs256-secret-base64":
      return decodeRs256SecretBase64(value);
    case "token-rs256-pubkey-base64":
      return decodeRs256PubkeyBase64(value);
  }
}

export function canSign(signing: JwtSigning): boolean {
  return signing.alg === "HS256" || signing.privateKey !== undefined;
}
