import assert from "node:assert/strict";
import { mkdir, mkdtemp, realpath, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { resolveStorePath } from "../../../src/client/resolve-path.ts";

const HASH = "r5d7217c0rjd5iiz1g2nhvd15frck9x2";
const HASH2 = "v660wl07i1lcrrgpr1yspn2va5d1xgjr";

async function fakeStore(): Promise<{ root: string; store: string }> {
  const root = await realpath(await mkdtemp(join(tmpdir(), "attic-resolve-")));
  const store = join(root, "store");
  await mkdir(join(store, `${HASH}-attic-0.1.0`, "bin"), { recursive: true });
  await writeFile(join(store, `${HASH}-attic-0.1.0`, "bin", "attic"), "");
  await mkdir(join(store, `${HASH2}-system`), { recursive: true });
  // a symlink inside the store pointing to another store path (like `…-system/sw`)
  await symlink(join(store, `${HASH}-attic-0.1.0`), join(store, `${HASH2}-system`, "sw"));
  return { root, store };
}

test("a path inside a store path maps to that store path without following symlinks", async () => {
  const { root, store } = await fakeStore();
  const p = await resolveStorePath(join(store, `${HASH}-attic-0.1.0`, "bin", "attic"), store, root);
  assert.equal(p.path, join(store, `${HASH}-attic-0.1.0`));
  const sw = await resolveStorePath(join(store, `${HASH2}-system`, "sw"), store, root);
  assert.equal(sw.baseName, `${HASH2}-system`);
  // not even required to exist: upstream parses it
  const missing = await resolveStorePath(`${store}/${HASH2}-gone/x`, store, root);
  assert.equal(missing.name, "gone");
});

test("./result symlinks and symlink chains are canonicalised", async () => {
  const { root, store } = await fakeStore();
  const work = join(root, "work");
  await mkdir(work);
  await symlink(join(store, `${HASH}-attic-0.1.0`), join(work, "result"));
  await symlink(join(store, `${HASH}-attic-0.1.0`, "bin", "attic"), join(root, "attic-link"));
  await symlink(join(root, "attic-link"), join(work, "which-attic"));
  assert.equal((await resolveStorePath("./result", store, work)).path, join(store, `${HASH}-attic-0.1.0`));
  assert.equal((await resolveStorePath("result", store, work)).baseName, `${HASH}-attic-0.1.0`);
  assert.equal((await resolveStorePath(join(work, "which-attic"), store, "/")).baseName, `${HASH}-attic-0.1.0`);
});

test("paths outside the store or with bad names are refused clearly", async () => {
  const { root, store } = await fakeStore();
  await writeFile(join(root, "plain"), "");
  await assert.rejects(resolveStorePath(join(root, "plain"), store, root), /is not in the Nix store/);
  await assert.rejects(resolveStorePath("./nope", store, root), /Cannot resolve "\.\/nope": no such file or directory/);
  await assert.rejects(resolveStorePath(`${store}/tooshort-x`, store, root), /is not a valid store path/);
  await assert.rejects(resolveStorePath(`${store}/${"e".repeat(32)}-x`, store, root), /is not a valid store path/);
  await assert.rejects(resolveStorePath("", store, root), /empty path/);
});
