// Local storage on a disk that fills up mid-upload: a small tmpfs as the storage folder and an
// incompressible NAR larger than it. The server answers 507 StorageFull (Attic's JSON shape),
// logs one line that names the storage, keeps serving, leaves nothing visible or held and frees
// what the failed upload wrote, so the next upload that fits works. `attic push` gets the 507
// once, does not retry it, and exits 1 with the server's message. A full SQLite database is a 507
// as well. Needs root (mount -t tmpfs).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statfsSync } from "node:fs";
import { mkdtemp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { sql } from "kysely";
import { hashNarStream, narFixture, randomStorePathHash, seededBytes, syntheticNar, uploadNar } from "../helpers/nar.ts";
import { nixBuild, nixEnv, nixStore } from "../helpers/nix.ts";
import { createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { runAttic } from "../unit/client/run-attic.ts";

const TMPFS_MB = 24;
const MIB = 1024 * 1024;
const FULL_MESSAGE = "The server's storage is full, so nothing was stored. Try again once space has been freed on the server.";

interface Tmpfs {
  path: string;
  /** bytes in use */
  used(): number;
  unmount(): void;
}

/** A fresh tmpfs of `sizeMb` MiB; fails the test (never skips) when it cannot be mounted. */
function mountTmpfs(sizeMb: number): Tmpfs {
  const path = mkdtempSync(join(tmpdir(), "attic-full-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMb}m`, "tmpfs", path]);
  return {
    path,
    used() {
      const s = statfsSync(path);
      return (s.blocks - s.bfree) * s.bsize;
    },
    unmount() {
      execFileSync("umount", [path]);
      rmSync(path, { recursive: true, force: true });
    },
  };
}

/** Files under the storage folder other than VERSION (chunks and leftover temp files). */
async function storedFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name !== "VERSION").map((e) => e.name);
}

interface LogLine {
  level: number;
  msg: string;
  storage?: string;
  reason?: string;
}

function storageFullLines(lines: string[]): LogLine[] {
  return lines.map((l) => JSON.parse(l) as LogLine).filter((l) => l.level >= 50);
}

describe("local storage on a full disk", () => {
  let disk: Tmpfs;
  let s: TestServer;
  const logLines: string[] = [];

  before(async () => {
    disk = mountTmpfs(TMPFS_MB);
    // one file per chunk (packs = false): with packs, what a failed upload appended to a pack that
    // other uploads then filled stays as dead bytes until compaction drops them (docs/packs.md)
    s = await startServer({
      storagePath: join(disk.path, "storage"),
      storageExtra: "packs = false",
      compression: { type: "zstd", level: 1 },
      logger: { level: "warn", stream: { write: (line: string) => void logLines.push(line) } },
    });
    await createCacheViaApi(s, "c");
  });
  after(async () => {
    // The failed upload's connection is left with its body unread, and app.close() would wait out
    // the keep-alive timeout (72 s) for it; that is not what these tests are about.
    s?.app.server.closeAllConnections();
    await s?.stop();
    disk?.unmount();
  });

  test("a NAR larger than the disk: 507 StorageFull, one log line, nothing visible or left behind; the server keeps serving and a small upload works", async () => {
    const fileSize = 2 * TMPFS_MB * MIB;
    const { narHash, narSize } = await hashNarStream(syntheticNar(fileSize));
    const storePathHash = randomStorePathHash();
    const fx = { nar: Buffer.alloc(0), narHash, narSize, storePathHash, storePath: `/nix/store/${storePathHash}-too-big` };
    const res = await uploadNar(s, fx, { cache: "c", token: s.rootToken(), body: syntheticNar(fileSize) });
    const text = await res.text();
    assert.equal(res.status, 507, text);
    assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
    assert.deepEqual(JSON.parse(text), { code: 507, error: "StorageFull", message: FULL_MESSAGE });

    // logged once, as storage full (not as an internal error), naming the storage folder
    const errors = storageFullLines(logLines);
    assert.equal(errors.length, 1, logLines.join("\n"));
    assert.match(errors[0]!.msg, /^storage full: local:\/.* has no room left \(ENOSPC\)/);
    assert.equal(errors[0]!.storage, `local:${join(disk.path, "storage")}`);
    assert.equal(errors[0]!.reason, "ENOSPC");

    // nothing of it is visible, nothing is held or pending, and its files are gone
    assert.equal((await s.fetch("/healthz")).status, 200);
    assert.equal((await s.fetch(`/c/${storePathHash}.narinfo`, { token: s.rootToken() })).status, 404);
    assert.equal((await s.db.kysely.selectFrom("object").select("id").execute()).length, 0);
    assert.equal((await s.db.kysely.selectFrom("nar").select("id").execute()).length, 0);
    assert.equal((await s.db.kysely.selectFrom("chunk").select("id").where("holders_count", ">", 0).execute()).length, 0);
    assert.equal((await s.db.kysely.selectFrom("chunk").select("id").where("state", "=", "P").execute()).length, 0);
    assert.deepEqual(await storedFiles(join(disk.path, "storage")), []);
    assert.ok(disk.used() < MIB, `the failed upload's space is freed (${disk.used()} bytes in use)`);

    // an upload that fits goes through and is served
    const small = narFixture(seededBytes(2 * MIB, 61), "fits");
    const ok = await uploadNar(s, small, { cache: "c", token: s.rootToken() });
    assert.equal(ok.status, 200, await ok.text());
    const narinfo = await s.fetch(`/c/${small.storePathHash}.narinfo`, { token: s.rootToken() });
    assert.equal(narinfo.status, 200, await narinfo.text());
  });
});

describe("attic push to a server whose disk is full", () => {
  let disk: Tmpfs;
  let s: TestServer;
  let big: string;
  const logLines: string[] = [];

  before(async () => {
    disk = mountTmpfs(TMPFS_MB);
    s = await startServer({
      storagePath: join(disk.path, "storage"),
      logger: { level: "warn", stream: { write: (line: string) => void logLines.push(line) } },
    });
    await createCacheViaApi(s, "c");
    const tag = `attic-full-${process.pid}-${Date.now().toString(36)}`;
    [big] = await nixBuild(
      `derivation { name = "${tag}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" "head -c ${2 * TMPFS_MB * MIB} /dev/urandom > $out" ]; }`,
    ) as [string];
  });
  after(async () => {
    // The failed upload's connection is left with its body unread, and app.close() would wait out
    // the keep-alive timeout (72 s) for it; that is not what these tests are about.
    s?.app.server.closeAllConnections();
    await s?.stop();
    disk?.unmount();
    if (big) await nixStore(["--delete", big]).catch(() => {});
  });

  test("the 507 is not retried: one attempt, the server's message printed once, exit 1", async (t) => {
    const home = await mkdtemp(join(tmpdir(), "attic-full-home-"));
    t.after(() => rmSync(home, { recursive: true, force: true }));
    const env = nixEnv({ HOME: home, XDG_CONFIG_HOME: join(home, "config") });
    assert.equal((await runAttic(["login", "local", s.url, s.rootToken()], { env })).code, 0);
    const r = await runAttic(["push", "c", big], { env });
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trimEnd().split("\n");
    const failed = lines.filter((l) => l.includes(FULL_MESSAGE));
    assert.deepEqual(failed, [`❌ ${big.slice("/nix/store/".length)}: StorageFull: ${FULL_MESSAGE}`], r.stderr);
    assert.equal(lines.at(-1), "Error: Failed to push 1 path");
    assert.equal(storageFullLines(logLines).length, 1, `one upload attempt reached the server:\n${logLines.join("\n")}`);
  });
});

describe("the SQLite database on a full disk", () => {
  let s: TestServer;
  const logLines: string[] = [];

  before(async () => {
    s = await startServer({ logger: { level: "warn", stream: { write: (line: string) => void logLines.push(line) } } });
    await createCacheViaApi(s, "c");
  });
  after(async () => {
    s?.app.server.closeAllConnections();
    await s?.stop();
  });

  test("SQLITE_FULL is a 507 StorageFull too, logged as the database being full", async () => {
    // SQLite answers SQLITE_FULL once the file may not grow, as on a full disk
    const { rows } = await sql<{ page_count: number }>`PRAGMA page_count`.execute(s.db.kysely);
    await sql.raw(`PRAGMA max_page_count = ${rows[0]!.page_count}`).execute(s.db.kysely);
    const fx = narFixture(seededBytes(3 * MIB, 62), "db-full");
    const res = await uploadNar(s, fx, { cache: "c", token: s.rootToken() });
    const text = await res.text();
    assert.equal(res.status, 507, text);
    assert.deepEqual(JSON.parse(text), { code: 507, error: "StorageFull", message: FULL_MESSAGE });
    const errors = storageFullLines(logLines);
    assert.equal(errors.length, 1, logLines.join("\n"));
    assert.equal(errors[0]!.reason, "SQLITE_FULL");
    assert.match(errors[0]!.msg, /^storage full: the database sqlite:\/\/.*server\.db has no room left \(SQLITE_FULL\)/);

    await sql.raw("PRAGMA max_page_count = 1073741823").execute(s.db.kysely);
    const ok = await uploadNar(s, fx, { cache: "c", token: s.rootToken() });
    assert.equal(ok.status, 200, await ok.text());
  });
});
