// Which URLs atticd may fetch on a tenant's word (issue 27, item 5): an upstream URL, a redirect
// target or a NAR URL is fetched only when it matches `[pull-through] allowed-upstreams`: the
// same scheme, host and port as an entry, and a path at or below the entry's path. Nothing is
// resolved or fetched to decide: a refused URL never gets a request.
import { PublicKey } from "../../nix/signing.ts";
import { requestError } from "../errors.ts";
import type { UpstreamEntry } from "../../db/queries/upstreams.ts";

export const ALLOWLIST_SETTING = "[pull-through] allowed-upstreams";
const MAX_UPSTREAMS = 8;
const MAX_KEYS = 8;

interface Parsed {
  origin: string;
  /** the path, ending with `/` */
  dir: string;
}

function parse(text: string): Parsed | null {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return null;
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") return null;
  if (u.username !== "" || u.password !== "") return null;
  const path = u.pathname.endsWith("/") ? u.pathname : `${u.pathname}/`;
  return { origin: u.origin, dir: path };
}

export function isAllowedUrl(url: string, allowed: readonly string[]): boolean {
  const target = parse(url);
  if (!target) return false;
  return allowed.some((entry) => {
    const a = parse(entry);
    return a !== null && a.origin === target.origin && target.dir.startsWith(a.dir);
  });
}

/** An upstream base URL as stored: no query, fragment or credentials, no trailing slash. */
export function normalizeUpstreamUrl(text: string): string | null {
  let u: URL;
  try {
    u = new URL(text.trim());
  } catch {
    return null;
  }
  if ((u.protocol !== "https:" && u.protocol !== "http:") || u.username || u.password || u.search || u.hash) return null;
  return `${u.origin}${u.pathname.replace(/\/+$/, "")}`;
}

/** Validate upstreams given by a client or server.toml: a 400 (RequestError) names what is wrong. */
export function checkUpstreams(list: readonly { url: string; keys: readonly string[] }[], allowed: readonly string[]): UpstreamEntry[] {
  if (list.length > MAX_UPSTREAMS) throw requestError(`At most ${MAX_UPSTREAMS} upstreams per cache`);
  const out: UpstreamEntry[] = [];
  for (const u of list) {
    const url = normalizeUpstreamUrl(u.url);
    // the URL is echoed only when it is well-formed; nothing is fetched to decide
    if (url === null) throw requestError(`Invalid upstream URL (expected http:// or https:// without credentials, query or fragment)`);
    if (!isAllowedUrl(url, allowed)) {
      throw requestError(`The upstream URL ${url} is not allowed by the server's ${ALLOWLIST_SETTING} setting (ask the operator to add it)`);
    }
    if (out.some((o) => o.url === url)) throw requestError(`The upstream ${url} is listed twice`);
    if (u.keys.length === 0) throw requestError(`The upstream ${url} needs at least one trusted key (--upstream-key name:base64)`);
    if (u.keys.length > MAX_KEYS) throw requestError(`At most ${MAX_KEYS} keys per upstream`);
    const keys = u.keys.map((k) => {
      try {
        return PublicKey.parse(k).toString();
      } catch (err) {
        throw requestError(`Invalid upstream key: ${(err as Error).message}`);
      }
    });
    out.push({ url, keys });
  }
  return out;
}
