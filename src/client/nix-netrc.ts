// Editing Nix's netrc (`$XDG_CONFIG_HOME/nix/netrc`, mode 0600): set `password <token>` for a
// machine and keep every other entry and token (upstream client/src/nix_netrc.rs). Entries keep
// their file order; `default` is stored under the empty name.
//
// Unlike upstream, a save edits the file's text in place: only the password that changed is
// replaced (or a new entry inserted), so the user's comments, layout and other entries stay
// byte for byte. `#` in place of a keyword starts a comment to the end of the line, as curl
// (which Nix uses to read this file) treats it.
import { readFile } from "node:fs/promises";
import { isDeepStrictEqual } from "node:util";
import { join } from "node:path";
import { PRIVATE_FILE_MODE, writeFileAtomic } from "./atomic-write.ts";
import { UserError } from "./errors.ts";
import { configHome } from "../util/xdg.ts";

export interface NetrcMachine {
  password: string | null;
  /** other tokens (`login x`, `account y`, ...), written back in pairs */
  other: string[];
}

export type Netrc = Map<string, NetrcMachine>;

export interface NetrcToken {
  text: string;
  start: number;
  end: number;
}

const WS = new Set(["\n", "\r", " ", "\t"]);

/** Whitespace-separated tokens with their offsets, comments left out. */
export function tokenizeNetrc(text: string): NetrcToken[] {
  const tokens: NetrcToken[] = [];
  let i = 0;
  let valueNext = false;
  while (i < text.length) {
    if (WS.has(text[i]!)) {
      i++;
      continue;
    }
    const start = i;
    while (i < text.length && !WS.has(text[i]!)) i++;
    const tok = text.slice(start, i);
    if (!valueNext && tok.startsWith("#")) {
      const eol = text.indexOf("\n", start);
      i = eol === -1 ? text.length : eol;
      continue;
    }
    tokens.push({ text: tok, start, end: i });
    // the token after these is a value (`password #x` is a password, not a comment)
    valueNext = !valueNext && tok !== "default";
  }
  return tokens;
}

interface Entry {
  name: string;
  /** the `machine`/`default` keyword, and the token after which new tokens go */
  keyword: NetrcToken;
  head: NetrcToken;
  password: NetrcToken | null;
}

function parseEntries(text: string): Entry[] {
  const entries: Entry[] = [];
  const tokens = tokenizeNetrc(text);
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]!;
    const current = entries[entries.length - 1];
    if (tok.text === "default") {
      entries.push({ name: "", keyword: tok, head: tok, password: null });
    } else if (tok.text === "machine") {
      const name = tokens[++i] ?? { text: "", start: tok.end, end: tok.end };
      entries.push({ name: name.text, keyword: tok, head: name, password: null });
    } else if (tok.text === "password") {
      if (current === undefined) throw new UserError("Invalid netrc: password field outside a machine block");
      current.password = tokens[++i] ?? { text: "", start: tok.end, end: tok.end };
    } else if (current === undefined) {
      throw new UserError(`Invalid netrc: unknown token ${tok.text} outside a machine block`);
    }
  }
  return entries;
}

export function parseNetrc(text: string): Netrc {
  const machines: Netrc = new Map();
  let current: NetrcMachine | null = null;
  const tokens = tokenizeNetrc(text);
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]!.text;
    if (tok === "default" || tok === "machine") {
      const name = tok === "machine" ? (tokens[++i]?.text ?? "") : "";
      current = { password: null, other: [] };
      machines.set(name, current);
    } else if (tok === "password") {
      if (current === null) throw new UserError("Invalid netrc: password field outside a machine block");
      current.password = tokens[++i]?.text ?? "";
    } else {
      if (current === null) throw new UserError(`Invalid netrc: unknown token ${tok} outside a machine block`);
      current.other.push(tok);
    }
  }
  return machines;
}

export function serializeNetrc(machines: Netrc): string {
  let out = "";
  for (const [name, m] of machines) {
    out += name === "" ? "default\n" : `machine ${name}\n`;
    if (m.password !== null) out += `password ${m.password}\n`;
    for (let i = 0; i < m.other.length; i += 2) out += `${m.other.slice(i, i + 2).join(" ")}\n`;
  }
  return out;
}

/** `text` with `password` of `machine` (every entry of that name) set to `password`. A new
 * entry goes before `default`, which must come last (curl stops looking at `default`). */
export function setNetrcPassword(text: string, machine: string, password: string): string {
  if (password === "" || [...password].some((c) => WS.has(c))) throw new UserError("A netrc password cannot be empty or contain whitespace");
  const eol = text.includes("\r\n") ? "\r\n" : "\n";
  const entries = parseEntries(text);
  const edits: [number, number, string][] = [];
  for (const e of entries.filter((e) => e.name === machine)) {
    if (e.password !== null) edits.push([e.password.start, e.password.end, password]);
    else edits.push([e.head.end, e.head.end, ` password ${password}`]);
  }
  if (edits.length === 0) {
    const entry = `machine ${machine}${eol}password ${password}${eol}`;
    const fallback = entries.find((e) => e.name === "");
    if (fallback !== undefined) {
      // at the start of its line when only indentation comes before it
      const lineStart = text.lastIndexOf("\n", fallback.keyword.start - 1) + 1;
      const at = /^[ \t]*$/.test(text.slice(lineStart, fallback.keyword.start)) ? lineStart : fallback.keyword.start;
      edits.push([at, at, entry]);
    }
    else edits.push([text.length, text.length, text === "" || text.endsWith("\n") ? entry : eol + entry]);
  }
  let out = text;
  for (const [start, end, insert] of edits.sort((a, b) => b[0] - a[0])) out = out.slice(0, start) + insert + out.slice(end);
  return out === "" || out.endsWith("\n") ? out : out + eol;
}

/** `text` edited to hold `machines`: changed passwords in place; anything else (a removed
 * entry, changed `login`) cannot be done in place and rewrites the file from `machines`. */
export function editNetrc(text: string, machines: Netrc): string {
  let before: Netrc;
  try {
    before = parseNetrc(text);
  } catch {
    return serializeNetrc(machines);
  }
  let out = text;
  for (const [name, m] of machines) {
    if (name !== "" && m.password !== null && before.get(name)?.password !== m.password) out = setNetrcPassword(out, name, m.password);
  }
  return isDeepStrictEqual(parseNetrc(out), machines) ? out : serializeNetrc(machines);
}

export function addToken(machines: Netrc, machine: string, token: string): void {
  const m = machines.get(machine);
  if (m === undefined) machines.set(machine, { password: token, other: [] });
  else m.password = token;
}

export function netrcPath(env: NodeJS.ProcessEnv): string {
  return join(configHome(env), "nix", "netrc");
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw err;
  }
}

export async function loadNetrc(path: string): Promise<Netrc> {
  return parseNetrc(await readText(path));
}

export async function saveNetrc(path: string, machines: Netrc): Promise<void> {
  await writeFileAtomic(path, editNetrc(await readText(path), machines), PRIVATE_FILE_MODE);
}
