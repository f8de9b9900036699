// In-place edits of the client's config.toml: the table or key being set has its lines replaced
// (or is appended), and every other line (comments, blank lines, other servers, unknown keys)
// stays byte for byte. Each edit returns null when the file's shape is one it cannot edit line
// by line (a multi-line string, a value that is not a string); the caller then rewrites the
// whole file, and checks that whatever it writes parses back to the config it meant.
import { parse, stringify } from "smol-toml";

interface Line {
  content: string;
  /** "\n", "\r\n", or "" for a last line without one */
  eol: string;
}

/** What a line below a table header may hold: `key = value`, the key bare or quoted. */
const KEY_LINE = /^(\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)(\s*=\s*)(.*)$/u;
const BARE_KEY = /^[A-Za-z0-9_-]+$/u;

export function tomlString(value: string): string {
  return stringify({ v: value }).slice("v = ".length, -1);
}

function splitLines(text: string): Line[] {
  return (text.match(/[^\n]*\n|[^\n]+$/gu) ?? []).map((raw) => {
    const eol = raw.endsWith("\r\n") ? "\r\n" : raw.endsWith("\n") ? "\n" : "";
    return { content: raw.slice(0, raw.length - eol.length), eol };
  });
}

function joinLines(lines: Line[], eol: string): string {
  const last = lines[lines.length - 1];
  if (last !== undefined && last.eol === "") last.eol = eol;
  return lines.map((l) => l.content + l.eol).join("");
}

const isBlankOrComment = (l: Line): boolean => /^\s*(#.*)?$/u.test(l.content);

/** The dotted path of a `[table]` header; "other" for `[[array]]` headers (not ours to edit),
 * null for a line that is not a header. */
function headerPath(content: string): string[] | null | "other" {
  if (!content.trimStart().startsWith("[")) return null;
  let node: unknown;
  try {
    node = parse(content);
  } catch {
    return null; // e.g. a line of a multi-line array
  }
  const path: string[] = [];
  while (typeof node === "object" && node !== null && !Array.isArray(node)) {
    const keys = Object.keys(node);
    if (keys.length === 0) return path;
    if (keys.length > 1) return "other";
    path.push(keys[0]!);
    node = (node as Record<string, unknown>)[keys[0]!];
  }
  return "other";
}

function keyOf(quotedOrBare: string): string {
  if (quotedOrBare.startsWith("'")) return quotedOrBare.slice(1, -1);
  if (quotedOrBare.startsWith('"')) return Object.keys(parse(`${quotedOrBare} = 0`))[0]!;
  return quotedOrBare;
}

/** Lines [start, end) below the header of `path` ([] for the root keys), or null if absent. */
function findTable(lines: Line[], path: string[]): { start: number; end: number } | null {
  let start = path.length === 0 ? 0 : -1;
  for (let i = 0; i < lines.length; i++) {
    const p = headerPath(lines[i]!.content);
    if (p === null) continue;
    if (start !== -1) return { start, end: i };
    if (p !== "other" && p.length === path.length && p.every((k, j) => k === path[j])) start = i + 1;
  }
  return start === -1 ? null : { start, end: lines.length };
}

function findKey(lines: Line[], table: { start: number; end: number }, key: string): number {
  for (let i = table.start; i < table.end; i++) {
    const m = KEY_LINE.exec(lines[i]!.content);
    if (m !== null && keyOf(m[2]!) === key) return i;
  }
  return -1;
}

/** The line with its string value replaced, its comment kept; null for any other value. */
function replaceValue(content: string, value: string): string | null {
  const m = KEY_LINE.exec(content)!;
  const old = m[4]!;
  let end: number;
  if (old.startsWith('"""') || old.startsWith("'''")) return null;
  if (old.startsWith("'")) end = old.indexOf("'", 1) + 1;
  else if (old.startsWith('"')) {
    end = 1;
    while (end < old.length && old[end] !== '"') end += old[end] === "\\" ? 2 : 1;
    end++;
  } else return null;
  if (end <= 0 || end > old.length) return null;
  return `${m[1]}${m[2]}${m[3]}${tomlString(value)}${old.slice(end)}`;
}

/** The value of a one-line `key = value`; undefined when it does not stand alone (a multi-line
 * string or array). */
function valueOf(content: string): unknown {
  try {
    return Object.values(parse(content))[0];
  } catch {
    return undefined;
  }
}

/** Sets `key` to `value` in the table, or, when absent, adds it after the table's last key. */
function setKey(lines: Line[], path: string[], key: string, value: string, eol: string): boolean {
  const table = findTable(lines, path)!;
  const at = findKey(lines, table, key);
  if (at !== -1) {
    if (valueOf(lines[at]!.content) === value) return true; // as written, quotes and all
    const content = replaceValue(lines[at]!.content, value);
    if (content === null) return false;
    lines[at]!.content = content;
    return true;
  }
  let after = table.end;
  while (after > table.start && isBlankOrComment(lines[after - 1]!)) after--;
  const line = { content: `${BARE_KEY.test(key) ? key : tomlString(key)} = ${tomlString(value)}`, eol };
  if (after === table.start && path.length === 0) {
    // no root keys yet: above the comment block that belongs to the first table, and a blank
    // line between them
    after = table.end;
    while (after > 0 && !/^\s*$/u.test(lines[after - 1]!.content)) after--;
    lines.splice(after, 0, line, ...(after < lines.length ? [{ content: "", eol }] : []));
    return true;
  }
  const previous = lines[after - 1];
  if (previous !== undefined && previous.eol === "") previous.eol = eol;
  lines.splice(after, 0, line);
  return true;
}

function removeKey(lines: Line[], path: string[], key: string): void {
  const at = findKey(lines, findTable(lines, path)!, key);
  if (at !== -1) lines.splice(at, 1);
}

function eolOf(text: string): string {
  return text.includes("\r\n") ? "\r\n" : "\n";
}

export function setDefaultServer(text: string, name: string): string | null {
  const lines = splitLines(text);
  const eol = eolOf(text);
  return setKey(lines, [], "default-server", name, eol) ? joinLines(lines, eol) : null;
}

export interface ServerEntry {
  endpoint: string;
  token?: string;
  tokenFile?: string;
}

/** `[servers.NAME]` set to `server`: its other keys stay; a new table goes at the end. A server
 * written another way (an inline table, dotted keys) is not found here and the appended table
 * makes the file invalid, which the caller's parse-back check turns into a full rewrite. */
export function setServer(text: string, name: string, server: ServerEntry): string | null {
  const lines = splitLines(text);
  const eol = eolOf(text);
  const path = ["servers", name];
  if (findTable(lines, path) === null) {
    const last = lines[lines.length - 1];
    if (last !== undefined) {
      if (last.eol === "") last.eol = eol;
      if (!/^\s*$/u.test(last.content)) lines.push({ content: "", eol });
    }
    lines.push({ content: `[servers.${BARE_KEY.test(name) ? name : tomlString(name)}]`, eol });
  }
  if (!setKey(lines, path, "endpoint", server.endpoint, eol)) return null;
  if (server.token !== undefined) {
    // a token taking the place of token-file takes its line too (but not its comment)
    const table = findTable(lines, path)!;
    const file = findKey(lines, table, "token-file");
    if (file !== -1 && findKey(lines, table, "token") === -1) {
      lines[file]!.content = `${KEY_LINE.exec(lines[file]!.content)![1]}token = ${tomlString(server.token)}`;
    }
    if (!setKey(lines, path, "token", server.token, eol)) return null;
    removeKey(lines, path, "token-file");
  } else {
    removeKey(lines, path, "token");
    if (server.tokenFile === undefined) removeKey(lines, path, "token-file");
    else if (!setKey(lines, path, "token-file", server.tokenFile, eol)) return null;
  }
  return joinLines(lines, eol);
}
