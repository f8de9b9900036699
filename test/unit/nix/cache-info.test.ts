import { test } from "node:test";
import assert from "node:assert/strict";
import { NixCacheInfoError, parseNixCacheInfo, renderNixCacheInfo } from "../../../src/nix/cache-info.ts";

test("renders upstream Attic's nix-cache-info", () => {
  assert.equal(
    renderNixCacheInfo({ wantMassQuery: true, storeDir: "/nix/store", priority: 41 }),
    "WantMassQuery: 1\nStoreDir: /nix/store\nPriority: 41\n",
  );
  assert.equal(renderNixCacheInfo({ wantMassQuery: false, storeDir: "/s", priority: 0 }), "WantMassQuery: 0\nStoreDir: /s\nPriority: 0\n");
});

test("parses what it renders and what Nix writes", () => {
  const info = { wantMassQuery: true, storeDir: "/nix/store", priority: 41 };
  assert.deepEqual(parseNixCacheInfo(renderNixCacheInfo(info)), info);
  // `nix copy --to file://…` writes just the store dir.
  assert.deepEqual(parseNixCacheInfo("StoreDir: /nix/store\n"), { storeDir: "/nix/store" });
  assert.deepEqual(parseNixCacheInfo("StoreDir: /nix/store\r\nOther: 1\n\n"), { storeDir: "/nix/store" });
});

test("rejects malformed values", () => {
  assert.throws(() => parseNixCacheInfo("WantMassQuery: yes\n"), NixCacheInfoError);
  assert.throws(() => parseNixCacheInfo("Priority: -1\n"), NixCacheInfoError);
  assert.throws(() => parseNixCacheInfo("no colon here\n"), NixCacheInfoError);
});
