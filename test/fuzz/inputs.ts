// Generators shared by the fuzz targets and the fuzz test: NARs (valid, then mutated), narinfo
// text, upload-info JSON, tokens, cache names, store-path hashes and hostile strings. NARs are
// built here from the format alone (not with src/nix), so a serializer bug cannot hide a parser bug.
import { createHash, createHmac } from "node:crypto";
import type { Rng } from "./rng.ts";

export const NIX32 = "0123456789abcdfghijklmnpqrsvwxyz";
export const CLAIM = "https://jwt.attic.rs/v1";

// ---- strings -------------------------------------------------------------------------------

/** Strings that have broken parsers and routers before. */
const NASTY = [
  "", " ", ".", "..", "../", "../../../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e", "%2e%2e%2f", "%2F", "%252F", "%00",
  "\u0000", "\r\n", "\n", "\t", "a\nb", "a\r\nX-Injected: 1", "/", "//", "\\", "..\\..\\", "~", "*", "?", "#", "%", "%zz", "%",
  "null", "true", "0", "-1", "1e309", "NaN", "constructor", "__proto__", "prototype", "toString", "hasOwnProperty",
  "é", "\u202e", "\ud800", "\uffff", "😀", "ﬀ", "İ", "sha256:", "sha256-", "sha512:", "md5:", "nix-archive-1",
  "a".repeat(51), "a".repeat(256), "x".repeat(5000),
];

export function nastyString(rng: Rng): string {
  const r = rng.int(4);
  if (r === 0) return rng.pick(NASTY);
  if (r === 1) return rng.pick(NASTY) + rng.pick(NASTY);
  if (r === 2) return rng.string("abcz09-_+.%/\\*?#:;@ \u00e9\u0000\n", 0, 40);
  // unpaired surrogates, astral characters, control bytes
  let s = "";
  const n = rng.size(64);
  for (let i = 0; i < n; i++) s += String.fromCharCode(rng.chance(0.7) ? rng.range(32, 126) : rng.int(0x10000));
  return s;
}

/** encodeURIComponent that also takes lone surrogates (as their UTF-8 replacement). */
export function encodeSegment(s: string): string {
  return encodeURIComponent(s.toWellFormed());
}

export function validStorePathHash(rng: Rng): string {
  return rng.string(NIX32, 32, 32);
}

export function storePathHash(rng: Rng): string {
  if (rng.chance(0.5)) return validStorePathHash(rng);
  const valid = validStorePathHash(rng);
  switch (rng.int(6)) {
    case 0:
      return valid.slice(0, rng.int(32)); // too short
    case 1:
      return valid + rng.string(NIX32, 1, 40); // too long
    case 2:
      return valid.slice(0, 31) + rng.pick(["e", "o", "u", "t", "A", "Z", ".", "/", "%", "\u00e9"]); // not nix32
    case 3:
      return valid.toUpperCase();
    case 4:
      return rng.pick(["..", "../" + valid, valid + "/..", encodeSegment("../" + valid)]);
    default:
      return nastyString(rng);
  }
}

export function validCacheName(rng: Rng): string {
  return rng.string("abcdefghijklmnopqrstuvwxyzABCZ0189", 1, 1) + rng.string("abcz09-_+", 0, rng.pick([3, 10, 49]));
}

export function cacheName(rng: Rng, known: readonly string[] = []): string {
  const r = rng.int(10);
  if (r < 4 && known.length > 0) return rng.pick(known);
  if (r < 7) return validCacheName(rng);
  switch (rng.int(5)) {
    case 0:
      return rng.pick(["-a", "_a", "+a", "*", "a*", "a.b", "a/b", "a b", "ä"]);
    case 1:
      return "a".repeat(rng.pick([50, 51, 100, 600]));
    default:
      return nastyString(rng);
  }
}

// ---- JSON ------------------------------------------------------------------------------------

export function randomJson(rng: Rng, depth = 0): unknown {
  const r = rng.int(depth > 2 ? 7 : 9);
  switch (r) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, 1, -1, 0.5, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, -(2 ** 63), 1e308, Number.MIN_VALUE]);
    case 3:
      return rng.int(1000);
    case 4:
    case 5:
      return nastyString(rng);
    case 6:
      return validStorePathHash(rng);
    case 7:
      return Array.from({ length: rng.int(4) }, () => randomJson(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(4); i > 0; i--) o[rng.pick(["cache", "a", "__proto__", "Period", "Keypair", nastyString(rng)])] = randomJson(rng, depth + 1);
      return o;
    }
  }
}

/** Replaces, deletes or adds fields of a JSON object (in place), a few times. */
export function mutateObject(rng: Rng, o: Record<string, unknown>, fieldNames: readonly string[]): void {
  for (let n = rng.range(1, 3); n > 0; n--) {
    const key = rng.chance(0.9) ? rng.pick(fieldNames) : nastyString(rng);
    const r = rng.int(4);
    if (r === 0) delete o[key];
    else o[key] = randomJson(rng);
  }
}

/** Text-level damage to JSON or any other text: truncation, a changed character, insertion. */
export function mutateText(rng: Rng, s: string): string {
  for (let n = rng.range(1, 3); n > 0; n--) {
    const at = rng.int(s.length + 1);
    switch (rng.int(5)) {
      case 0:
        s = s.slice(0, at);
        break;
      case 1:
        s = s.slice(0, at) + s.slice(at + rng.range(1, 8));
        break;
      case 2:
        s = s.slice(0, at) + nastyString(rng) + s.slice(at);
        break;
      case 3:
        s = s.slice(0, at) + rng.pick(["\n", "\r", ":", " ", "\u0000", "{", "}", '"', ",", "]"]) + s.slice(at + 1);
        break;
      default: {
        const from = rng.int(s.length + 1);
        s = s.slice(0, at) + s.slice(from, from + rng.range(1, 40)) + s.slice(at);
      }
    }
  }
  return s;
}

// ---- NARs ----------------------------------------------------------------------------------

export type Tree =
  | { type: "regular"; executable: boolean; contents: Buffer }
  | { type: "symlink"; target: Buffer }
  | { type: "directory"; entries: [Buffer, Tree][] };

function str(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s) : s;
  const head = Buffer.alloc(8);
  head.writeUInt32LE(b.length, 0);
  return Buffer.concat([head, b, Buffer.alloc((8 - (b.length % 8)) % 8)]);
}

function nodeParts(t: Tree, out: Buffer[]): void {
  out.push(str("("), str("type"));
  if (t.type === "regular") {
    out.push(str("regular"));
    if (t.executable) out.push(str("executable"), str(""));
    out.push(str("contents"), str(t.contents));
  } else if (t.type === "symlink") out.push(str("symlink"), str("target"), str(t.target));
  else {
    out.push(str("directory"));
    for (const [name, child] of t.entries) {
      out.push(str("entry"), str("("), str("name"), str(name), str("node"));
      nodeParts(child, out);
      out.push(str(")"));
    }
  }
  out.push(str(")"));
}

export function narOf(t: Tree): Buffer {
  const out = [str("nix-archive-1")];
  nodeParts(t, out);
  return Buffer.concat(out);
}

const NAME_BYTES = "abcxyzABC019._-~ \u00e9";

export function randomTree(rng: Rng, depth = 0): Tree {
  const r = rng.int(depth >= 3 ? 2 : 3);
  if (r === 0) return { type: "regular", executable: rng.chance(0.3), contents: rng.bytes(rng.size(3000)) };
  if (r === 1) return { type: "symlink", target: Buffer.from(rng.string("abc/.._-", 1, 30)) };
  const names = new Map<string, Buffer>();
  for (let i = rng.int(5); i > 0; i--) {
    const name = Buffer.from(rng.string(NAME_BYTES, 1, 12));
    const s = name.toString("latin1");
    if (s !== "." && s !== "..") names.set(s, name);
  }
  const sorted = [...names.values()].sort(Buffer.compare);
  return { type: "directory", entries: sorted.map((n) => [n, randomTree(rng, depth + 1)]) };
}

/** Lengths that sit on the parser's limits. */
const EDGE_LENGTHS = [0n, 1n, 7n, 8n, 13n, 64n, 65n, 255n, 256n, 4095n, 4096n, 4097n, 2n ** 31n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n];

/** One to four byte-level mutations of a NAR: flips, truncation, splices, edge-case length fields. */
export function mutateNar(rng: Rng, nar: Buffer): Buffer {
  let b = Buffer.from(nar);
  for (let n = rng.range(1, 4); n > 0; n--) {
    const at = rng.int(b.length + 1);
    switch (rng.int(7)) {
      case 0:
        if (b.length > 0) b[Math.min(at, b.length - 1)]! ^= 1 << rng.int(8);
        break;
      case 1:
        b = b.subarray(0, at);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), rng.bytes(rng.size(64)), b.subarray(at)]);
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + rng.range(1, 24))]);
        break;
      case 4: {
        // an 8-aligned length field set to a limit value
        const pos = at - (at % 8);
        if (pos + 8 <= b.length) {
          b.writeBigUInt64LE(rng.pick(EDGE_LENGTHS), pos);
        }
        break;
      }
      case 5: {
        const from = rng.int(b.length + 1);
        b = Buffer.concat([b.subarray(0, at), b.subarray(from, from + rng.range(8, 96)), b.subarray(at)]);
        break;
      }
      default:
        b = Buffer.concat([b, rng.bytes(rng.size(32))]);
    }
  }
  return b;
}

/** `buf` cut into random pieces (some empty), as a network would deliver it. */
export function splitRandomly(rng: Rng, buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const n = rng.chance(0.05) ? 0 : rng.range(1, rng.pick([1, 7, 64, 4096]));
    out.push(buf.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

export function sha256Hex(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

// ---- narinfo ---------------------------------------------------------------------------------

export function narinfoText(rng: Rng): string {
  const hash = validStorePathHash(rng);
  const lines = [
    `StorePath: /nix/store/${hash}-${rng.string("abc-.+_", 1, 20).replace(/^\./, "x")}`,
    `URL: nar/${hash}.nar`,
    `Compression: ${rng.pick(["zstd", "xz", "none", "br"])}`,
    `NarHash: sha256:${sha256Hex(rng.bytes(8))}`,
    `NarSize: ${rng.range(1, 10_000_000)}`,
    `References: ${Array.from({ length: rng.int(3) }, () => `${validStorePathHash(rng)}-dep`).join(" ")}`,
  ];
  if (rng.chance(0.3)) lines.push(`Deriver: ${validStorePathHash(rng)}-x.drv`);
  if (rng.chance(0.3)) lines.push("System: x86_64-linux");
  if (rng.chance(0.5)) lines.push(`Sig: cache-1:${rng.bytes(64).toString("base64")}`);
  if (rng.chance(0.2)) lines.push("CA: fixed:r:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s");
  if (rng.chance(0.2)) lines.push(`FileHash: sha256:${sha256Hex(rng.bytes(8))}`, `FileSize: ${rng.int(1000)}`);
  return lines.map((l) => `${l}\n`).join("");
}

export function mutateNarinfo(rng: Rng, text: string): string {
  let lines = text.split("\n");
  for (let n = rng.range(1, 3); n > 0; n--) {
    const i = rng.int(lines.length);
    switch (rng.int(5)) {
      case 0:
        lines.splice(i, 1);
        break;
      case 1:
        lines.splice(i, 0, lines[rng.int(lines.length)] ?? "");
        break;
      case 2: {
        const line = lines[i] ?? "";
        const colon = line.indexOf(":");
        lines[i] = `${colon < 0 ? line : line.slice(0, colon)}: ${String(nastyString(rng))}`;
        break;
      }
      case 3:
        lines = [mutateText(rng, lines.join("\n"))];
        break;
      default:
        lines[i] = `${lines[i] ?? ""}${rng.pick(["\r", "\r\r", " ", "\u0000", ":", " x"])}`;
    }
  }
  return lines.join("\n");
}

// ---- upload info ---------------------------------------------------------------------------

export const UPLOAD_INFO_FIELDS = ["cache", "store_path_hash", "store_path", "references", "system", "deriver", "sigs", "ca", "nar_hash", "nar_size"];

export function uploadInfoFor(cache: string, nar: Buffer, hash: string, name = "fuzz"): Record<string, unknown> {
  return {
    cache,
    store_path_hash: hash,
    store_path: `/nix/store/${hash}-${name}`,
    references: [],
    system: null,
    deriver: null,
    sigs: [],
    ca: null,
    nar_hash: `sha256:${sha256Hex(nar)}`,
    nar_size: nar.length,
  };
}

// ---- tokens ----------------------------------------------------------------------------------

const b64url = (v: string | Buffer): string => Buffer.from(v).toString("base64url");

export function hs256(secret: Buffer, claims: unknown, header: unknown = { alg: "HS256", typ: "JWT" }): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

/** A token that should NOT verify: forged, expired, not yet valid, malformed, wrong alg. */
export function badToken(rng: Rng, secret: Buffer): string {
  const now = Math.floor(Date.now() / 1000);
  const caches = { [rng.pick(["*", "a*", "fuzz-a"])]: { r: 1, w: 1, d: 1, cc: 1, cr: 1, cq: 1, cd: 1 } };
  const good = { exp: now + 3600, sub: "fuzz", [CLAIM]: { caches } };
  switch (rng.int(9)) {
    case 0:
      return hs256(rng.bytes(32), good); // wrong secret
    case 1:
      return hs256(secret, { ...good, exp: now - rng.range(1, 100_000) }); // expired
    case 2:
      return hs256(secret, { ...good, nbf: now + rng.range(60, 100_000) });
    case 3:
      return hs256(secret, good, { alg: rng.pick(["none", "HS512", "RS256", "hs256", ""]), typ: "JWT" });
    case 4:
      return `${b64url(JSON.stringify({ alg: "none" }))}.${b64url(JSON.stringify(good))}.`;
    case 5: {
      // signed with the right secret but the claims are malformed
      const bad = { ...good, [CLAIM]: rng.chance(0.5) ? randomJson(rng) : { caches: { [nastyString(rng)]: randomJson(rng) } } };
      return hs256(secret, rng.chance(0.3) ? randomJson(rng) : bad, rng.chance(0.2) ? randomJson(rng) : undefined);
    }
    case 6: {
      const t = hs256(secret, good);
      const i = rng.int(t.length);
      return t.slice(0, i) + rng.pick(["A", "_", "-", ".", "=", "+", "/", " ", "\u00e9"]) + t.slice(i + 1);
    }
    case 7:
      return nastyString(rng);
    default:
      return rng.pick(["", ".", "..", "a.b.c", "a.b", "a.b.c.d"]) + rng.string("ABCabc012_-=.", 0, 60);
  }
}
