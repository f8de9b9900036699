// Lint: typescript-eslint's recommended rules plus the import direction between rooms
// (see docs/architecture.md). A room may only import the rooms listed for it.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const rooms = ["nix", "chunking", "compression", "api", "storage", "db", "token", "server", "gc", "client", "admin", "bin", "cli", "util"];
/** room -> rooms it may import (besides itself and util/, the small helpers every room may use) */
const allowed = {
  nix: [],
  chunking: ["nix"],
  compression: [],
  api: ["nix"],
  storage: ["nix"],
  db: [],
  token: [],
  server: ["nix", "chunking", "compression", "api", "storage", "db", "token", "gc", "cli"],
  gc: ["db", "storage", "nix"],
  client: ["nix", "api", "token", "cli"],
  admin: ["token", "server", "api", "db", "cli"],
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
  {
    // the dashboard's browser script (type-checked by tsconfig.browser.json)
    files: ["src/server/dashboard/assets/*.js"],
    languageOptions: { globals: { document: "readonly", sessionStorage: "readonly", location: "readonly", window: "readonly" } },
  },
);
