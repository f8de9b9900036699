// Real Nix pulls paths from a test server into a fresh store, and each path's `share/random.bin`
// must equal the original's (the e2e tests of compaction and of an atticd killed mid-push).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nix, NIX_OPTS } from "./nix.ts";
import type { TestServer } from "./server.ts";

export async function pullIntact(s: TestServer, cache: string, paths: string[]): Promise<void> {
  const key = ((await (await s.fetch(`/_api/v1/cache-config/${cache}`, { token: s.rootToken() })).json()) as { public_key: string }).public_key;
  const store = mkdtempSync(join(tmpdir(), "attic-e2e-store-"));
  try {
    await nix("nix-store", [
      "--store", store, "-r", ...paths, ...NIX_OPTS,
      "--option", "substituters", `${s.url}/${cache}`,
      "--option", "trusted-public-keys", key,
      "--option", "require-sigs", "true",
    ]);
    for (const p of paths) assert.ok(readFileSync(join(store, p, "share/random.bin")).equals(readFileSync(join(p, "share/random.bin"))), p);
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
}
