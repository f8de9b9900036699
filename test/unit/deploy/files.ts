// Readers for the files under deploy/, shared by the deploy tests. No Docker engine or systemd
// runs on the build machine, so these parse the files the way those tools read them and the
// tests check what the tools would act on.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseDocument } from "yaml";

export const REPO = join(import.meta.dirname, "..", "..", "..");
export const DEPLOY = join(REPO, "deploy");

export function readDeploy(name: string): string {
  return readFileSync(join(DEPLOY, name), "utf8");
}

/**
 * An env file as Compose (and systemd's EnvironmentFile) reads it: `KEY=VALUE` lines, `#`
 * comments, and one pair of surrounding quotes removed from the value.
 */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new Error(`env file line ${i + 1} is not KEY=VALUE: ${raw}`);
    const value = m[2]!;
    const quoted = /^"(.*)"$/.exec(value) ?? /^'(.*)'$/.exec(value);
    env[m[1]!] = quoted ? quoted[1]! : value;
  }
  return env;
}

/** The committed template of an env file that compose references (`prod.env` → `prod.env.example`). */
export function readEnvTemplate(name: string): Record<string, string> {
  return parseEnvFile(readDeploy(`${name}.example`));
}

export type Unit = Map<string, Map<string, string[]>>;

/** A systemd unit file: sections of keys, each key with every value given (in order). */
export function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  const lines = text.replace(/\\\n/g, " ").split("\n");
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      if (unit.has(header[1]!)) throw new Error(`section [${header[1]}] appears twice`);
      section = new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const m = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    if (!m || !section) throw new Error(`unit line ${i + 1} is not Key=Value inside a section: ${raw}`);
    section.set(m[1]!, [...(section.get(m[1]!) ?? []), m[2]!.trim()]);
  }
  return unit;
}

/** The last value of a key (systemd: a later assignment wins for single-valued keys). */
export function unitValue(unit: Unit, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1);
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  networks?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: string[];
  ports?: string[];
  networks?: Record<string, unknown> | string[];
  volumes?: string[];
  env_file?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[]; interval?: string; timeout?: string; retries?: number; start_period?: string; disable?: boolean };
  restart?: string;
  deploy?: { replicas?: number; resources?: unknown };
  [key: string]: unknown;
}

/** A compose file parsed as Compose does (YAML 1.2 with `<<` merge keys); any YAML problem throws. */
export function loadCompose(name: string): ComposeFile {
  const doc = parseDocument(readDeploy(name), { merge: true, uniqueKeys: true });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) throw new Error(`${name}: ${problems.map(String).join("\n")}`);
  return doc.toJS() as ComposeFile;
}

/** `./server.toml:/attic/server.toml:ro` → its parts; a source without `.` or `/` is a named volume. */
export function parseVolume(spec: string): { source: string; target: string; named: boolean; readOnly: boolean } {
  const [source = "", target = "", mode = ""] = spec.split(":");
  return { source, target, named: !/^[./~]/.test(source), readOnly: mode.split(",").includes("ro") };
}

export function deployFileExists(relative: string): boolean {
  return existsSync(join(DEPLOY, relative));
}
