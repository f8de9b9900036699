// Per-cache Ed25519 keypairs: generated with the cache's name as key name, or imported from
// `{"Keypair": "name:base64"}` (a Nix secret key), as upstream.
import type { KeypairConfig } from "../api/v1.ts";
import { SigningKeypair } from "../nix/signing.ts";
import { requestError } from "./errors.ts";

export function keypairFromConfig(config: KeypairConfig, cacheName: string): SigningKeypair {
  if (config === "Generate") return SigningKeypair.generate(cacheName);
  try {
    return SigningKeypair.parse(config.Keypair);
  } catch (err) {
    throw requestError(`Invalid keypair: ${(err as Error).message}`, err);
  }
}

export function isKeypairConfig(v: unknown): v is KeypairConfig {
  if (v === "Generate") return true;
  return (
    typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 &&
    typeof (v as { Keypair?: unknown }).Keypair === "string"
  );
}
