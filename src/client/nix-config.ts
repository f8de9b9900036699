// Editing the user's `nix.conf` (`$XDG_CONFIG_HOME/nix/nix.conf`) while keeping its formatting:
// comments, indentation and the whitespace around `=` survive a round trip (upstream
// client/src/nix_config.rs). Unlike upstream we also accept `key=value` without spaces
// (decision 8), and keep lines we do not understand (`include ...`) verbatim instead of failing.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { existingMode, writeFileAtomic } from "./atomic-write.ts";
import { configHome } from "../util/xdg.ts";

export const CACHE_NIXOS_ORG_SUBSTITUTER = "https://cache.nixos.org";
export const CACHE_NIXOS_ORG_KEY = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

export type NixConfLine =
  | { kind: "verbatim"; text: string }
  | { kind: "kv"; indent: string; key: string; before: string; after: string; value: string; comment: string };

const COMMENT_LINE = /^\s*(#.*)?$/;
// Upstream's form: whitespace on both sides of `=`, so the key itself may contain `=`.
const KV_SPACED = /^(\s*)(\S+)(\s+)=(\s+)([^#]+)(#.*)?$/u;
// Ours in addition: `key=value`, `key= value`, `key =` (the key ends at the first `=`).
const KV_LOOSE = /^(\s*)([^\s=#]+)(\s*)=(\s*)([^#]*)(#.*)?$/u;

export function parseNixConfLine(line: string): NixConfLine {
  if (COMMENT_LINE.test(line)) return { kind: "verbatim", text: line };
  const m = KV_SPACED.exec(line) ?? KV_LOOSE.exec(line);
  if (m === null) return { kind: "verbatim", text: line };
  return { kind: "kv", indent: m[1]!, key: m[2]!, before: m[3]!, after: m[4]!, value: m[5]!, comment: m[6] ?? "" };
}

export function formatNixConfLine(line: NixConfLine): string {
  if (line.kind === "verbatim") return line.text;
  return `${line.indent}${line.key}${line.before}=${line.after}${line.value}${line.comment}`;
}

/** Lines as Rust's `str::lines()` sees them: no final empty line, `\r\n` accepted. */
export function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
}

export class NixConfig {
  readonly lines: NixConfLine[];

  constructor(text = "") {
    this.lines = splitLines(text).map(parseNixConfLine);
  }

  /** One line each, ending with a newline (upstream leaves the last line unterminated, which
   * the next tool to append a line to nix.conf then joins to ours). */
  toString(): string {
    return this.lines.map((l) => `${formatNixConfLine(l)}\n`).join("");
  }

  addSubstituter(substituter: string): void {
    this.#prependToList("substituters", substituter, CACHE_NIXOS_ORG_SUBSTITUTER);
  }

  addTrustedPublicKey(key: string): void {
    this.#prependToList("trusted-public-keys", key, CACHE_NIXOS_ORG_KEY);
  }

  setNetrcFile(path: string): void {
    const line = this.#find("netrc-file");
    if (line === undefined) {
      this.lines.push(kv("netrc-file", path));
    } else {
      // Keep the whitespace that separated the old value from a trailing comment.
      line.value = path + (/\s*$/.exec(line.value)?.[0] ?? "");
    }
  }

  #prependToList(key: string, value: string, defaultTail: string): void {
    const line = this.#find(key);
    if (line === undefined) {
      this.lines.push(kv(key, `${value} ${defaultTail}`));
      return;
    }
    if (line.value.split(/\s+/).includes(value)) return;
    line.value = line.value.trim() === "" ? value + line.value : `${value} ${line.value}`;
  }

  #find(key: string): Extract<NixConfLine, { kind: "kv" }> | undefined {
    for (const line of this.lines) if (line.kind === "kv" && line.key === key) return line;
    return undefined;
  }
}

function kv(key: string, value: string): NixConfLine {
  return { kind: "kv", indent: "", key, before: " ", after: " ", value, comment: "" };
}

export function nixConfPath(env: NodeJS.ProcessEnv): string {
  return join(configHome(env), "nix", "nix.conf");
}

export async function loadNixConfig(path: string): Promise<NixConfig> {
  try {
    return new NixConfig(await readFile(path, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return new NixConfig();
    throw err;
  }
}

export async function saveNixConfig(path: string, config: NixConfig): Promise<void> {
  await writeFileAtomic(path, config.toString(), await existingMode(path, 0o644));
}
