// .narinfo files: `Key: value` lines. Hash fields stay the strings they were given (Nix writes
// nix32, Attic writes base16), so a parsed file re-renders byte for byte; `narInfoHashes` turns
// them into NixHash values.
//
// Field order: Nix (2.8) writes `… References, Deriver, System, Sig…, CA`; upstream Attic writes
// `… References, System, Deriver, Sig, CA`. They differ only when both Deriver and System are
// present. `renderNarInfo` uses Attic's order unless `{ order: "nix" }` is asked for.
import { NixHash } from "./hash.ts";
import { parseStorePathBaseName, storeDirOf } from "./store-path.ts";

export interface NarInfo {
  /** full store path, e.g. /nix/store/<hash>-hello-2.10 */
  storePath: string;
  url: string;
  compression?: string;
  fileHash?: string;
  fileSize?: number;
  narHash: string;
  narSize: number;
  /** base names (`<hash>-<name>`), in file order */
  references: string[];
  /** base name of the .drv; `unknown-deriver` parses as undefined */
  deriver?: string;
  system?: string;
  sigs: string[];
  ca?: string;
}

export class NarInfoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NarInfoError";
  }
}

export type NarInfoOrder = "attic" | "nix";

function parseSize(key: string, value: string, line: number): number {
  if (!/^[0-9]+$/.test(value)) throw new NarInfoError(`line ${line}: ${key} '${value}' is not a non-negative integer`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new NarInfoError(`line ${line}: ${key} ${value} is too large`);
  return n;
}

function checkHash(key: string, value: string, line: number): string {
  try {
    NixHash.parse(value);
  } catch (e) {
    throw new NarInfoError(`line ${line}: bad ${key}: ${(e as Error).message}`);
  }
  return value;
}

function checkBaseName(key: string, value: string, line: number): string {
  try {
    parseStorePathBaseName(value);
  } catch (e) {
    throw new NarInfoError(`line ${line}: bad ${key}: ${(e as Error).message}`);
  }
  return value;
}

/**
 * Parses a narinfo. Blank lines and unknown keys are ignored; StorePath, URL, NarHash and a
 * non-zero NarSize are required, as Nix requires them.
 */
export function parseNarInfo(text: string): NarInfo {
  const fields: Partial<NarInfo> & { sigs: string[] } = { sigs: [] };
  const seen = new Set<string>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const lineNo = i + 1;
    if (raw.trim() === "") continue;
    const colon = raw.indexOf(":");
    if (colon < 0) throw new NarInfoError(`line ${lineNo}: expected 'Key: value', got '${raw}'`);
    const key = raw.slice(0, colon);
    // CRLF files parse too; every trailing CR goes, so a value never ends in one and renders back the same
    const value = raw.slice(colon + 1).replace(/^ /, "").replace(/\r+$/, "");
    if (key !== "Sig" && seen.has(key)) throw new NarInfoError(`line ${lineNo}: duplicate ${key}`);
    seen.add(key);
    switch (key) {
      case "StorePath":
        storeDirOfChecked(value, lineNo);
        fields.storePath = value;
        break;
      case "URL":
        fields.url = value;
        break;
      case "Compression":
        fields.compression = value;
        break;
      case "FileHash":
        fields.fileHash = checkHash(key, value, lineNo);
        break;
      case "FileSize":
        fields.fileSize = parseSize(key, value, lineNo);
        break;
      case "NarHash":
        fields.narHash = checkHash(key, value, lineNo);
        break;
      case "NarSize":
        fields.narSize = parseSize(key, value, lineNo);
        break;
      case "References":
        fields.references = value.split(" ").filter((r) => r !== "").map((r) => checkBaseName(key, r, lineNo));
        break;
      case "Deriver":
        if (value !== "unknown-deriver") fields.deriver = checkBaseName(key, value, lineNo);
        break;
      case "System":
        fields.system = value;
        break;
      case "Sig":
        fields.sigs.push(value);
        break;
      case "CA":
        fields.ca = value;
        break;
    }
  }
  if (fields.storePath === undefined) throw new NarInfoError("StorePath missing");
  if (fields.narHash === undefined) throw new NarInfoError("NarHash missing");
  if (fields.url === undefined || fields.url === "") throw new NarInfoError("URL missing");
  if (fields.narSize === undefined || fields.narSize === 0) throw new NarInfoError("NarSize missing or zero");
  return {
    storePath: fields.storePath,
    url: fields.url,
    ...(fields.compression !== undefined && { compression: fields.compression }),
    ...(fields.fileHash !== undefined && { fileHash: fields.fileHash }),
    ...(fields.fileSize !== undefined && { fileSize: fields.fileSize }),
    narHash: fields.narHash,
    narSize: fields.narSize,
    references: fields.references ?? [],
    ...(fields.deriver !== undefined && { deriver: fields.deriver }),
    ...(fields.system !== undefined && { system: fields.system }),
    sigs: fields.sigs,
    ...(fields.ca !== undefined && { ca: fields.ca }),
  };
}

function storeDirOfChecked(storePath: string, line: number): string {
  try {
    return storeDirOf(storePath);
  } catch (e) {
    throw new NarInfoError(`line ${line}: bad StorePath: ${(e as Error).message}`);
  }
}

/** Renders a narinfo; absent optional fields are left out, `References: ` is always written. */
export function renderNarInfo(info: NarInfo, options: { order?: NarInfoOrder } = {}): string {
  const lines: string[] = [`StorePath: ${info.storePath}`, `URL: ${info.url}`];
  if (info.compression !== undefined) lines.push(`Compression: ${info.compression}`);
  if (info.fileHash !== undefined) lines.push(`FileHash: ${info.fileHash}`);
  if (info.fileSize !== undefined) lines.push(`FileSize: ${info.fileSize}`);
  lines.push(`NarHash: ${info.narHash}`, `NarSize: ${info.narSize}`, `References: ${info.references.join(" ")}`);
  const deriver = info.deriver !== undefined ? [`Deriver: ${info.deriver}`] : [];
  const system = info.system !== undefined ? [`System: ${info.system}`] : [];
  if (options.order === "nix") lines.push(...deriver, ...system);
  else lines.push(...system, ...deriver);
  for (const sig of info.sigs) lines.push(`Sig: ${sig}`);
  if (info.ca !== undefined) lines.push(`CA: ${info.ca}`);
  return lines.map((l) => `${l}\n`).join("");
}

/** The narinfo's store directory (the StorePath's parent). */
export function narInfoStoreDir(info: NarInfo): string {
  return storeDirOf(info.storePath);
}

export function narInfoHashes(info: NarInfo): { narHash: NixHash; fileHash: NixHash | undefined } {
  return {
    narHash: NixHash.parse(info.narHash),
    fileHash: info.fileHash === undefined ? undefined : NixHash.parse(info.fileHash),
  };
}
