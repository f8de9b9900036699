// Lint: typescript-eslint's recommended rules plus the import direction between rooms
// (see docs/architecture.md). A room may only import the rooms listed for it.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const rooms = ["nix", "chunking", "compression", "api", "storage", "db", "token", "server", "gc", "client", "admin", "bin", "cli", "util", "workers"];
/** room -> rooms it may import (besides itself and util/, the small helpers every room may use) */
const allowed = {
  nix: [],
  chunking: ["nix"],
  compression: ["workers"],
  // the CPU worker pool and what runs on it (the NAR pass): per-byte work off the main thread
  workers: ["nix", "chunking"],
  api: ["nix"],
  // storage/local-reader.ts reads chunk files whole on the CPU worker pool
  storage: ["nix", "workers"],
  db: [],
  token: [],
  server: ["nix", "chunking", "compression", "api", "storage", "db", "token", "gc", "cli", "workers"],
  gc: ["db", "storage", "nix"],
  client: ["nix", "api", "token", "cli"],
  // atticadm also works on the store itself (admin/repair: verify, unpack)
  admin: ["token", "server", "api", "db", "cli", "storage", "gc", "compression", "nix"],
  bin: ["server", "client", "admin", "cli"],
  // what the three tools share: error reporting, exit codes, version, help examples
  cli: [],
  // one home for each small utility (bounded concurrency, XDG paths, sizes): imports nothing of ours
  util: [],
};

const restrictions = Object.entries(allowed).map(([room, may]) => ({
  files: [`src/${room}/**/*.ts`],
  rules: {
    "no-restricted-imports": [
      "error",
      {
        patterns: rooms
          .filter((r) => r !== room && r !== "util" && !may.includes(r))
          .map((r) => ({
            regex: `^(\\.\\./)+${r}(/|$)`,
            message: `src/${room} may not import src/${r} (import direction, see docs/architecture.md)`,
          })),
      },
    ],
  },
}));

// Only db/ knows which database engine runs (docs/architecture.md): elsewhere no literal may name an
// engine's error code (a SQLSTATE, a SQLite result code) and nothing reads node:sqlite's `errcode`;
// code asks db/ (`classifyDatabaseError`) what an error means.
const ENGINE_CODE = "/^(ERR_SQLITE|SQLITE_[A-Z]|(08|22|23|40|53|57)[0-9P][0-9A-Z]{2}$)/";
const engineRule = {
  files: ["src/**/*.ts"],
  ignores: ["src/db/**"],
  rules: {
    "no-restricted-syntax": [
      "error",
      { selector: `Literal[value=${ENGINE_CODE}]`, message: "an engine's error code outside src/db: ask db/ (classifyDatabaseError) instead (docs/architecture.md)" },
      { selector: "Identifier[name='errcode']", message: "node:sqlite's errcode outside src/db: ask db/ (classifyDatabaseError) instead (docs/architecture.md)" },
    ],
  },
};

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", ".bench/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2024, sourceType: "module", globals: { process: "readonly", console: "readonly", Buffer: "readonly", setTimeout: "readonly", clearTimeout: "readonly", setInterval: "readonly", clearInterval: "readonly", URL: "readonly", AbortController: "readonly", AbortSignal: "readonly", TextEncoder: "readonly", TextDecoder: "readonly", fetch: "readonly", Response: "readonly", Headers: "readonly", setImmediate: "readonly", queueMicrotask: "readonly", structuredClone: "readonly", performance: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
  ...restrictions,
  engineRule,
  {
    // the dashboard's browser script (type-checked by tsconfig.browser.json)
    files: ["src/server/dashboard/assets/*.js"],
    languageOptions: { globals: { document: "readonly", sessionStorage: "readonly", location: "readonly", window: "readonly" } },
  },
);
