// The Nix formats library: pure encodings and stream transforms, no I/O of its own beyond
// reading the tree the NAR serializer is asked to dump.
export { NIX32_ALPHABET, Nix32Error, isNix32, nix32Decode, nix32Encode, nix32EncodedLength } from "./base32.ts";
export { HASH_SIZES, HashError, NixHash, isHashAlgo } from "./hash.ts";
export type { HashAlgo, HashErrorKind } from "./hash.ts";
export {
  DEFAULT_STORE_DIR,
  STORE_PATH_HASH_LENGTH,
  STORE_PATH_HASH_RE,
  STORE_PATH_NAME_MAX,
  StorePathError,
  checkStoreDir,
  isValidStorePathHash,
  isValidStorePathName,
  parseStorePath,
  parseStorePathBaseName,
  storeDirOf,
  storePathFromBaseName,
  storePathOfPath,
} from "./store-path.ts";
export type { StorePath } from "./store-path.ts";
export { NAR_MAGIC, NAR_MAX_DEPTH, NAR_MAX_NAME, NAR_MAX_TARGET } from "./nar/format.ts";
export { NarSerializeError, narChunks, narSerialize } from "./nar/serialize.ts";
export { NarError, NarParser } from "./nar/parser.ts";
export type { NarEvent } from "./nar/parser.ts";
export { NarValidator, validateNar } from "./nar/parse.ts";
export type { NarResult, NarValidatorOptions } from "./nar/parse.ts";
export { NarInfoError, narInfoHashes, narInfoStoreDir, parseNarInfo, renderNarInfo } from "./narinfo.ts";
export type { NarInfo, NarInfoOrder } from "./narinfo.ts";
export { PublicKey, SigningError, SigningKeypair, fingerprint, fingerprintFromBaseNames } from "./signing.ts";
export type { SigningErrorKind } from "./signing.ts";
export { NixCacheInfoError, parseNixCacheInfo, renderNixCacheInfo } from "./cache-info.ts";
export type { NixCacheInfo } from "./cache-info.ts";
