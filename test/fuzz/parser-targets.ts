// Fuzz targets over the pure parsers: each case builds one input from its own Rng and checks a
// property. A target fails a case by throwing; parsers may throw only their own typed errors.
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { isValidCacheName } from "../../src/api/v1.ts";
import { HashError, NixHash } from "../../src/nix/hash.ts";
import { NarError, NarParser } from "../../src/nix/nar/parser.ts";
import { NarValidator } from "../../src/nix/nar/parse.ts";
import { validateNar } from "../helpers/validate-nar.ts";
import { NarInfoError, parseNarInfo, renderNarInfo } from "../../src/nix/narinfo.ts";
import { isValidStorePathHash, parseStorePath, parseStorePathBaseName, storeDirOf, StorePathError } from "../../src/nix/store-path.ts";
import { PlainRejection, ServerError } from "../../src/server/errors.ts";
import { cacheNameParam, storePathHashParam } from "../../src/server/params.ts";
import { BodyReader } from "../../src/server/upload/body.ts";
import { parseUploadInfo, readUploadInfo } from "../../src/server/upload/info.ts";
import { parseClaims } from "../../src/token/claims.ts";
import { parseAuthorizationHeader, verifyToken } from "../../src/token/jwt.ts";
import { matchPattern } from "../../src/token/permissions.ts";
import {
  badToken, CLAIM, hs256, mutateNar, mutateNarinfo, mutateObject, mutateText, narinfoText, narOf, nastyString, NIX32, randomJson,
  randomTree, sha256Hex, splitRandomly, storePathHash, cacheName, UPLOAD_INFO_FIELDS, uploadInfoFor, validStorePathHash,
} from "./inputs.ts";
import type { Rng } from "./rng.ts";

export interface Target {
  name: string;
  run(rng: Rng): void | Promise<void>;
}

/** A property that did not hold; `detail` says what the input was. */
export class Finding extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "Finding";
  }
}

type ErrorClass = abstract new (...args: never[]) => Error;

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message.slice(0, 300)}` : String(e);
}

/** Runs `fn`; an error that is none of `allowed` is a finding. Returns the error thrown, if any. */
async function typed<T>(what: string, fn: () => T | Promise<T>, allowed: ErrorClass[]): Promise<{ ok: T } | { error: Error }> {
  try {
    return { ok: await fn() };
  } catch (e) {
    if (allowed.some((c) => e instanceof c)) return { error: e as Error };
    throw new Finding(`${what} threw ${describe(e)}`, { cause: e });
  }
}

function outcome(r: { ok: unknown } | { error: Error }): string {
  return "error" in r ? `error ${r.error.message}` : `ok ${JSON.stringify(r.ok)}`;
}

const narTarget: Target = {
  name: "nar",
  async run(rng) {
    const tree = randomTree(rng);
    const valid = narOf(tree);
    const mutated = rng.chance(0.85);
    const nar = mutated ? mutateNar(rng, valid) : valid;
    const pieces = splitRandomly(rng, nar);

    const whole = await typed("NarParser", () => {
      const p = new NarParser(() => undefined);
      p.update(nar);
      p.end();
      return p.bytesSeen;
    }, [NarError]);
    const split = await typed("validateNar", () => validateNar(pieces), [NarError]);
    const streamed = await typed("NarValidator", async () => {
      const v = new NarValidator();
      await pipeline(Readable.from(pieces, { objectMode: false }), v, new Writable({ write: (_c, _e, cb) => cb() }));
      return v.result();
    }, [NarError]);

    if ("error" in whole !== "error" in split || "error" in split !== "error" in streamed) {
      throw new Finding(`outcome depends on how the NAR is split: whole ${outcome(whole)}, split ${outcome(split)}, stream ${outcome(streamed)}`);
    }
    if ("error" in whole && "error" in split && whole.error.message !== split.error.message) {
      throw new Finding(`error depends on the split: ${whole.error.message} vs ${split.error.message}`);
    }
    if ("error" in whole) {
      const offset = (whole.error as NarError).offset;
      if (!(offset >= 0 && offset <= nar.length)) throw new Finding(`NarError offset ${offset} outside the ${nar.length}-byte input`);
    }
    if (!mutated && "error" in whole) throw new Finding(`a valid NAR was rejected: ${whole.error.message}`);
    if ("ok" in split) {
      if (split.ok.narSize !== nar.length || split.ok.narHash.toBase16() !== sha256Hex(nar)) throw new Finding("validateNar: wrong hash or size");
    }
  },
};

const narinfoTarget: Target = {
  name: "narinfo",
  run(rng) {
    const text = rng.chance(0.15) ? narinfoText(rng) : rng.chance(0.1) ? nastyString(rng) : mutateNarinfo(rng, narinfoText(rng));
    return typed("parseNarInfo", () => parseNarInfo(text), [NarInfoError]).then(async (r) => {
      if ("error" in r) return;
      // what we accept, we can render; and the rendering means the same
      const again = await typed("parseNarInfo(renderNarInfo(…))", () => parseNarInfo(renderNarInfo(r.ok)), [NarInfoError]);
      if ("error" in again) throw new Finding(`an accepted narinfo does not survive a round trip: ${again.error.message}; input ${JSON.stringify(text)}`);
      if (JSON.stringify(again.ok) !== JSON.stringify(r.ok)) {
        throw new Finding(`round trip changed the narinfo: ${JSON.stringify(r.ok)} -> ${JSON.stringify(again.ok)}`);
      }
    });
  },
};

const uploadInfoTarget: Target = {
  name: "upload-info",
  async run(rng) {
    const nar = narOf(randomTree(rng));
    const info = uploadInfoFor(cacheName(rng, ["fuzz"]), nar, storePathHash(rng));
    if (rng.chance(0.7)) mutateObject(rng, info, UPLOAD_INFO_FIELDS);
    let json = JSON.stringify(info);
    if (rng.chance(0.2)) json = mutateText(rng, json);
    if (rng.chance(0.05)) json = JSON.stringify(randomJson(rng));
    const isRequestError = (e: Error) => e instanceof ServerError && e.kind === "RequestError" && e.status === 400;

    const r = await typed("parseUploadInfo", () => parseUploadInfo(json), [ServerError]);
    if ("error" in r && !isRequestError(r.error)) throw new Finding(`parseUploadInfo threw ${describe(r.error)}`);
    if ("ok" in r) {
      const o = r.ok;
      if (!isValidCacheName(o.cache) || !isValidStorePathHash(o.store_path_hash) || !Number.isSafeInteger(o.nar_size) || o.nar_size < 0) {
        throw new Finding(`parseUploadInfo accepted ${json}`);
      }
      const lines = [o.store_path, ...o.references, ...o.sigs, o.system ?? "", o.deriver ?? "", o.ca ?? ""];
      if (lines.some((l) => /[\r\n\0]/.test(l))) throw new Finding(`parseUploadInfo accepted a line break that would end up in the narinfo: ${json}`);
    }

    // through the headers: the X-Attic-Nar-Info header or a preamble of a claimed size
    const bytes = Buffer.from(json);
    const headers: Record<string, string | string[]> = {};
    const preamble = rng.chance(0.5);
    if (preamble) headers["x-attic-nar-info-preamble-size"] = rng.chance(0.8) ? String(bytes.length + rng.pick([0, 0, 0, -1, 1, 1000])) : nastyString(rng);
    else if (rng.chance(0.9)) headers["x-attic-nar-info"] = json;
    if (rng.chance(0.05)) headers["x-attic-nar-info"] = [json, json];
    const body = new BodyReader(Readable.from(splitRandomly(rng, preamble ? Buffer.concat([bytes, nar]) : nar)));
    const h = await typed("readUploadInfo", () => readUploadInfo(headers, body, rng.pick([1024, 1 << 20])), [ServerError]);
    if ("error" in h && !isRequestError(h.error)) throw new Finding(`readUploadInfo threw ${describe(h.error)}`);
  },
};

const TOKEN_SECRET = Buffer.from("fuzz-secret-fuzz-secret-fuzz-secret");

const tokenTarget: Target = {
  name: "token",
  async run(rng) {
    const now = Math.floor(Date.now() / 1000);
    const signing = { alg: "HS256" as const, secret: new Uint8Array(TOKEN_SECRET) };
    let token: string;
    let mustFail = false;
    switch (rng.int(4)) {
      case 0: {
        // a well-formed token that must verify
        token = hs256(TOKEN_SECRET, { exp: now + 600, sub: "s", [CLAIM]: { caches: { [rng.pick(["a", "b*", "*"])]: { r: 1 } } } });
        const claims = await verifyToken(token, signing);
        if (!claims) throw new Finding(`a valid token did not verify: ${token}`);
        break;
      }
      case 1:
        // the classes of bad token that must never verify
        token = rng.pick([
          hs256(rng.bytes(16), { exp: now + 600, [CLAIM]: { caches: {} } }),
          hs256(TOKEN_SECRET, { exp: now - 10, [CLAIM]: { caches: {} } }),
          hs256(TOKEN_SECRET, { nbf: now + 600, [CLAIM]: { caches: {} } }),
          hs256(TOKEN_SECRET, { [CLAIM]: { caches: {} } }, { alg: "none" }),
        ]);
        mustFail = true;
        break;
      default:
        token = badToken(rng, TOKEN_SECRET);
    }
    const v = await typed("verifyToken", () => verifyToken(token, signing, { boundIssuer: rng.chance(0.1) ? "iss" : null }), []);
    if (mustFail && "ok" in v && v.ok !== null) throw new Finding(`a bad token verified: ${token}`);

    const header = rng.pick(["Bearer ", "bearer ", "Basic ", "BASIC ", "Bearer  ", "Token ", ""]) +
      (rng.chance(0.5) ? token : Buffer.from(`${nastyString(rng)}:${token}`).toString(rng.pick(["base64", "latin1"])));
    await typed("parseAuthorizationHeader", () => parseAuthorizationHeader(header), []);
    await typed("parseClaims", () => parseClaims(randomJson(rng)), []);
    await typed("parseClaims", () => parseClaims({ [CLAIM]: { caches: { [nastyString(rng)]: randomJson(rng) } } }), []);

    // wildcard matching agrees with a regex oracle
    const pattern = rng.string("ab*", 1, 8);
    const name = rng.string("ab", 0, 10);
    const oracle = new RegExp(`^${pattern.replace(/\*/g, ".*")}$`).test(name);
    if (matchPattern(pattern, name) !== oracle) throw new Finding(`matchPattern(${pattern}, ${name}) disagrees with the regex oracle`);
  },
};

const STORE_NAME_RE = /^[A-Za-z0-9+\-._?=]+$/;

const namesTarget: Target = {
  name: "names",
  async run(rng) {
    const name = cacheName(rng);
    const c = await typed("cacheNameParam", () => cacheNameParam({ cache: name }), [PlainRejection]);
    if (("ok" in c) !== /^[A-Za-z0-9][A-Za-z0-9\-_+]{0,49}$/.test(name)) throw new Finding(`cacheNameParam(${JSON.stringify(name)}): ${outcome(c)}`);

    const hash = storePathHash(rng);
    const file = `${hash}${rng.pick([".narinfo", ".nar", ".narinfo.x", "", ".", ".NARINFO", `.${nastyString(rng)}`])}`;
    const h = await typed("storePathHashParam", () => storePathHashParam(file, rng.pick(["narinfo", "nar"] as const)), [ServerError]);
    if ("error" in h && !["NotFound", "RequestError"].includes((h.error as ServerError).kind)) throw new Finding(`storePathHashParam: ${describe(h.error)}`);
    if ("ok" in h && !new RegExp(`^[${NIX32}]{32}$`).test(h.ok)) throw new Finding(`storePathHashParam accepted ${JSON.stringify(file)}`);

    const base = rng.chance(0.5) ? `${validStorePathHash(rng)}-${rng.chance(0.5) ? "hello-2.10" : nastyString(rng)}` : `${hash}-${nastyString(rng)}`;
    const b = await typed("parseStorePathBaseName", () => parseStorePathBaseName(base), [StorePathError]);
    if ("ok" in b && (!isValidStorePathHash(b.ok.hash) || !STORE_NAME_RE.test(b.ok.name) || b.ok.name.length > 211 || b.ok.name.startsWith("."))) {
      throw new Finding(`parseStorePathBaseName accepted ${JSON.stringify(base)}`);
    }
    const dir = rng.pick(["/nix/store", "/nix/store/", "nix/store", "/", "/a/../b", "/a//b", `/${nastyString(rng)}`]);
    const full = `${dir}/${base}`;
    await typed("parseStorePath", () => parseStorePath(full, dir), [StorePathError]);
    await typed("storeDirOf", () => storeDirOf(rng.chance(0.5) ? full : nastyString(rng)), [StorePathError]);
    const hashText = rng.pick(["sha256:", "sha256-", "sha512:", "md5:", "", "sha1:"]) + rng.pick([sha256Hex(rng.bytes(4)), nastyString(rng), rng.string(NIX32, 52, 52), rng.bytes(32).toString("base64")]);
    await typed("NixHash.parse", () => NixHash.parse(hashText, rng.chance(0.3) ? "sha256" : undefined), [HashError]);
  },
};

export const PARSER_TARGETS: readonly Target[] = [narTarget, narinfoTarget, uploadInfoTarget, tokenTarget, namesTarget];
