// Names and bodies of Nix's small binary-cache files (build logs, realisations, listings, narinfo),
// checked before they reach a query: hostile names never do.
import type { IncomingMessage } from "node:http";
import { isValidStorePathName, STORE_PATH_HASH_RE } from "../../nix/store-path.ts";
import { requestError } from "../errors.ts";

/** `<hash>-<name>.drv`, what `nix store copy-log` names a log */
export function drvParam(drv: string): string {
  const hash = drv.slice(0, 32);
  const name = drv.slice(33);
  if (!STORE_PATH_HASH_RE.test(hash) || drv[32] !== "-" || !name.endsWith(".drv") || !isValidStorePathName(name)) {
    throw requestError(`Invalid derivation name "${drv.slice(0, 80)}"`);
  }
  return drv;
}

/** `sha256:<hash>!<output>.doi` → the realisation id `sha256:<hash>!<output>` */
const REALISATION_RE = /^sha256:[0-9a-z]{52,64}![A-Za-z0-9+\-_?=][A-Za-z0-9+\-._?=]*$/;
export function realisationParam(file: string): string {
  const id = file.endsWith(".doi") ? file.slice(0, -4) : "";
  if (id.length > 300 || !REALISATION_RE.test(id)) throw requestError(`Invalid realisation id "${file.slice(0, 80)}"`);
  return id;
}

/** Checks that a realisation body is the JSON document Nix writes for `id`. */
export function checkRealisation(id: string, text: string): void {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw requestError("A realisation must be a JSON object");
  }
  const o = doc as { id?: unknown; outPath?: unknown };
  if (typeof o !== "object" || o === null || Array.isArray(o) || o.id !== id || typeof o.outPath !== "string") {
    throw requestError("A realisation must be a JSON object with the `id` of its URL and an `outPath`");
  }
}

/**
 * The whole body of a small PUT, at most `limit` bytes. A Content-Encoding (Nix's
 * `narinfo-compression`, `ls-compression`, `log-compression` store settings) is refused: we
 * store what we can read.
 */
export async function readSmallBody(raw: IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const encoding = raw.headers["content-encoding"];
  if (encoding !== undefined && encoding !== "identity") {
    throw requestError(`Content-Encoding ${encoding.slice(0, 20)} is not supported: push ${what} uncompressed`);
  }
  const declared = Number(raw.headers["content-length"] ?? 0);
  if (declared > limit) throw requestError(`The ${what} is over ${limit} bytes`);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const piece of raw as AsyncIterable<Buffer>) {
    size += piece.length;
    if (size > limit) throw requestError(`The ${what} is over ${limit} bytes`);
    parts.push(piece);
  }
  return Buffer.concat(parts, size);
}
