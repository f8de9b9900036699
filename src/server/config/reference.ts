// Renders docs/config-reference.md from the schema, so the reference cannot drift from what the
// loader accepts (a unit test compares the committed file with this output).
// Regenerate: node src/server/config/reference.ts > docs/config-reference.md
import { ENV_CONFIG_BASE64, ENV_DATABASE_URL, KEYS, splitKey, TABLES, type KeySpec, type TomlDefault } from "./schema.ts";
import type { ValueKind } from "./values.ts";

const KIND_NAMES: Record<ValueKind, string> = {
  string: "string",
  secret: "string (base64)",
  boolean: "boolean",
  integer: "integer",
  "string-list": "array of strings",
  duration: "duration",
  size: "size",
  "socket-address": "socket address",
  endpoint: "URL ending with `/`",
  url: "http(s) URL",
  "database-url": "database URL",
  enum: "string",
  "string-table": "table of strings or arrays of strings",
};

const tomlLiteral = (value: TomlDefault): string =>
  Array.isArray(value) ? `[${value.map((v) => JSON.stringify(v)).join(", ")}]` : typeof value === "string" ? JSON.stringify(value) : String(value);

const cell = (text: string): string => text.replace(/\|/g, "\\|");

function defaultCell(spec: KeySpec): string {
  const parts: string[] = [];
  if (spec.required) parts.push(`**required** ${spec.required}`.replace("**required** always", "**required**"));
  if (spec.defaultNote) parts.push(spec.defaultNote);
  else if (spec.default !== undefined) parts.push(`\`${tomlLiteral(spec.default)}\``);
  if (spec.env) parts.push(`env \`${spec.env}\``);
  return parts.length ? parts.join("; ") : "unset";
}

function keyRow(spec: KeySpec): string {
  const name = splitKey(spec.key).name;
  const kind = spec.kind === "enum" && spec.values ? spec.values.map((v) => `\`"${v}"\``).join(" | ") : KIND_NAMES[spec.kind];
  const description = `${spec.ours ? "*(ours)* " : ""}${spec.storageType ? `*(${spec.storageType} only)* ` : ""}${spec.description}`;
  return `| \`${name}\` | ${cell(kind)} | ${cell(defaultCell(spec))} | ${cell(description)} |`;
}

export function renderConfigReference(): string {
  const out: string[] = [
    "# Server configuration reference",
    "",
    "<!-- Generated from src/server/config/schema.ts: node src/server/config/reference.ts > docs/config-reference.md -->",
    "",
    "`atticd` and `atticadm` read `server.toml` from the first of:",
    "",
    "1. `-f PATH` / `--config PATH`;",
    `2. the environment variable \`${ENV_CONFIG_BASE64}\`, holding the whole file base64-encoded;`,
    "3. `$XDG_CONFIG_HOME/attic/server.toml` (default `~/.config/attic/server.toml`). If it does not exist, `atticd` in monolithic mode writes one on first start (SQLite and local storage under `$XDG_DATA_HOME/attic/`, a fresh HS256 secret) and prints a root token; `atticadm` never does.",
    "",
    "The format and every upstream key, default and environment variable are those of upstream Attic, so an existing `server.toml` works unchanged. Keys marked *(ours)* are additions; upstream Attic rejects them at the top level and ignores them in tables.",
    "",
    "Validation happens once, at start, and reports every problem together with the file and key path. Unknown top-level keys are errors; unknown keys inside tables are ignored with a warning (as upstream ignores them). The legacy top-level `token-hs256-secret-base64` is an error explaining how to move it to `[jwt.signing]`.",
    "",
    "Durations use the humantime syntax of upstream: one or more `<integer><unit>` parts such as `12 hours`, `1h 30m`, `3 months`, `2y`; units `ns us ms s sec second(s) m min minute(s) h hr hour(s) d day(s) w week(s) M month(s) y year(s)` (a month is 30.44 days, a year 365.25 days; `m` is minutes, `M` months). `\"0\"` means zero.",
    "",
    'Sizes are integers in bytes or strings such as `"500 GiB"`, `"1.5 TB"`, `"750M"` (`KB`/`MB`/`GB`/`TB` are powers of 1000, `KiB`/`MiB`/`GiB`/`TiB` and bare `K`/`M`/`G`/`T` powers of 1024).',
  ];
  for (const table of TABLES) {
    const heading = table.array ? `## \`[[${table.table}]]\`` : table.table ? `## \`[${table.table}]\`` : "## Top level";
    out.push("", heading, "", table.description);
    const keys = KEYS.filter((k) => splitKey(k.key).table === table.table);
    if (keys.length > 0) out.push("", "| Key | Type | Default | Description |", "|---|---|---|---|", ...keys.map(keyRow));
  }
  out.push(
    "",
    "## Environment variables",
    "",
    "| Variable | Meaning |",
    "|---|---|",
    `| \`${ENV_CONFIG_BASE64}\` | The whole configuration, base64-encoded (used when no \`-f\` is given). |`,
    `| \`${ENV_DATABASE_URL}\` | The database URL when \`[database] url\` is not set. |`,
    ...KEYS.filter((k) => k.key.startsWith("jwt.signing.")).map(
      (k) => `| \`${k.env}\` | Like \`[jwt.signing] ${splitKey(k.key).name}\`, when the \`[jwt.signing]\` table is absent. |`,
    ),
    "| `XDG_CONFIG_HOME`, `XDG_DATA_HOME` | Base folders of the default configuration and of the first-run data. |",
    "| `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_PROFILE`, … | S3 credentials when `[storage.credentials]` is absent (AWS default chain). |",
    "",
  );
  return out.join("\n");
}

if (import.meta.main) process.stdout.write(renderConfigReference());
