// Editing Nix's netrc (`$XDG_CONFIG_HOME/nix/netrc`, mode 0600): set `password <token>` for a
// machine and keep every other entry and token (upstream client/src/nix_netrc.rs). Entries keep
// their file order; `default` is stored under the empty name.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { PRIVATE_FILE_MODE, writeFileAtomic } from "./atomic-write.ts";
import { UserError } from "./errors.ts";
import { configHome } from "./xdg.ts";

export interface NetrcMachine {
  password: string | null;
  /** other tokens (`login x`, `account y`, ...), written back in pairs */
  other: string[];
}

export type Netrc = Map<string, NetrcMachine>;

const WS = new Set(["\n", " ", "\t"]);

export function stripLeadingWhitespace(s: string): string {
  let i = 0;
  while (i < s.length && WS.has(s[i]!)) i++;
  return s.slice(i);
}

/** The next token and the rest (leading whitespace removed from both). */
export function nextToken(s: string): [string, string] {
  const t = stripLeadingWhitespace(s);
  for (let i = 0; i < t.length; i++) {
    if (WS.has(t[i]!)) return [t.slice(0, i), stripLeadingWhitespace(t.slice(i + 1))];
  }
  return [t, ""];
}

export function parseNetrc(text: string): Netrc {
  const machines: Netrc = new Map();
  let current: [string, NetrcMachine] | null = null;
  const flush = (): void => {
    if (current !== null) machines.set(current[0], current[1]);
  };
  let rest = text;
  while (rest !== "") {
    let tok: string;
    [tok, rest] = nextToken(rest);
    if (tok === "") break;
    if (tok === "default" || tok === "machine") {
      let name = "";
      if (tok === "machine") [name, rest] = nextToken(rest);
      flush();
      current = [name, { password: null, other: [] }];
    } else if (tok === "password") {
      let password: string;
      [password, rest] = nextToken(rest);
      if (current === null) throw new UserError("Invalid netrc: password field outside a machine block");
      current[1].password = password;
    } else {
      if (current === null) throw new UserError(`Invalid netrc: unknown token ${tok} outside a machine block`);
      current[1].other.push(tok);
    }
  }
  flush();
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

export function addToken(machines: Netrc, machine: string, token: string): void {
  const m = machines.get(machine);
  if (m === undefined) machines.set(machine, { password: token, other: [] });
  else m.password = token;
}

export function netrcPath(env: NodeJS.ProcessEnv): string {
  return join(configHome(env), "nix", "netrc");
}

export async function loadNetrc(path: string): Promise<Netrc> {
  try {
    return parseNetrc(await readFile(path, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return new Map();
    throw err;
  }
}

export async function saveNetrc(path: string, machines: Netrc): Promise<void> {
  await writeFileAtomic(path, serializeNetrc(machines), PRIVATE_FILE_MODE);
}
