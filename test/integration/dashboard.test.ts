// The dashboard in a real headless chromium (issue 19): after a known sequence of pushes,
// downloads and a GC run, the public view lists the public cache and not the private one, a
// token entered in the page shows the private one, and every figure shown equals what the
// database holds (counted here with our own SQL, not the dashboard's queries). A screenshot of
// each page goes to test-artifacts/dashboard/.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { sql } from "kysely";
import type { Browser, Page } from "puppeteer-core";
import { runGarbageCollectionOnce } from "../../src/gc/index.ts";
import type { GcReport } from "../../src/gc/report.ts";
import { artifactPath, launchBrowser } from "../helpers/browser.ts";
import { narFixture, seededBytes, uploadNar, type NarFixture } from "../helpers/nar.ts";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";

const BACKENDS = backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "s3" },
]);

let browser: Browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** Text of the figure `name` on the page, and its raw value. */
async function figure(page: Page, name: string): Promise<string> {
  const value = await page.$eval(`[data-figure="${name}"]`, (el) => el.getAttribute("data-value"));
  return value ?? "";
}

async function enterToken(page: Page, token: string): Promise<void> {
  await page.waitForSelector("#token-form:not([hidden])");
  // a JWT is long: set it at once, then submit from the keyboard as a person would
  await page.$eval("#token-input", (el, value) => ((el as { value: string }).value = value), token);
  await page.focus("#token-input");
  await page.keyboard.press("Enter");
  await page.waitForSelector('[data-viewer="token"]');
}

for (const backend of BACKENDS) {
  describe(`dashboard (${backendName(backend)})`, () => {
    let s: TestServer;
    let gc: GcReport;
    const fx: Record<"small" | "big" | "other", NarFixture> = {
      small: narFixture(seededBytes(2_000, 1), "small"),
      // above the 64 KiB chunking threshold: several chunks
      big: narFixture(seededBytes(300_000, 2), "big"),
      other: narFixture(seededBytes(150_000, 3), "other"),
    };
    const tag = backendName(backend).replace("+", "-");

    before(async () => {
      s = await startServer({ backend });
      await createCacheViaApi(s, "pub", { is_public: true });
      await createCacheViaApi(s, "priv");
      const token = s.rootToken();
      const push = async (f: NarFixture, cache: string) => {
        const res = await uploadNar(s, f, { cache, token });
        assert.equal(res.status, 200, await res.text());
      };
      await push(fx.small, "pub");
      await push(fx.big, "pub");
      await push(fx.big, "priv"); // the same NAR in a second cache: deduplicated
      await push(fx.other, "priv");
      for (const [f, cache, times] of [[fx.small, "pub", 2], [fx.big, "pub", 1], [fx.other, "priv", 1]] as const) {
        for (let i = 0; i < times; i++) {
          const res = await s.fetch(`/${cache}/nar/${f.storePathHash}.nar`, { token });
          assert.equal(res.status, 200);
          await res.arrayBuffer();
        }
      }
      // priv's objects expire; GC then frees the chunks only `other` used
      const patch = await s.fetch("/_api/v1/cache-config/priv", {
        method: "PATCH",
        token,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ retention_period: { Period: 1 } }),
      });
      assert.equal(patch.status, 200, await patch.text());
      gc = await runGarbageCollectionOnce({
        db: s.db,
        storage: s.storage,
        config: { ...s.config.garbageCollection, staleGracePeriod: 3600 },
        now: () => new Date(Date.now() + 5_000),
      });
      assert.ok(gc.ran && gc.bytesFreed > 0 && gc.objectsExpired === 2, JSON.stringify(gc));
    });
    after(async () => {
      await s?.stop();
    });

    test("the public view lists the public cache and not the private one; a token in the page shows the private one", async () => {
      const page = await browser.newPage();
      try {
        await page.goto(`${s.url}/`);
        await page.waitForSelector('html[data-ready="1"]');
        assert.deepEqual(await page.$$eval("#caches tbody tr", (rows) => rows.map((r) => r.getAttribute("data-cache"))), ["pub"]);
        await page.screenshot({ path: artifactPath("dashboard", `${tag}-1-public.png`), fullPage: true });
        // keyboard and screen readers: the first Tab reaches the skip link; every field has a label; one h1, landmarks
        await page.keyboard.press("Tab");
        assert.equal(await page.evaluate("document.activeElement.textContent"), "Skip to the figures");
        assert.equal(await page.evaluate("[...document.querySelectorAll('input')].filter((i) => i.labels.length === 0).length"), 0);
        assert.equal(await page.evaluate("document.querySelectorAll('h1').length + ':' + document.querySelectorAll('header nav, main').length"), "1:2");

        await enterToken(page, s.token({ priv: { r: 1 } }));
        assert.deepEqual(await page.$$eval("#caches tbody tr", (rows) => rows.map((r) => r.getAttribute("data-cache"))), ["priv", "pub"]);
        assert.equal(await page.evaluate("location.search + location.hash"), "", "the token is never put in the URL");
        assert.deepEqual(await page.cookies(), [], "nor in a cookie");
        await page.screenshot({ path: artifactPath("dashboard", `${tag}-2-with-token.png`), fullPage: true });

        // the token stays in this tab: the private cache's page opens with it
        await page.click('a[href="/_dashboard/cache/priv"]');
        await page.waitForSelector('[data-viewer="token"]');
        assert.equal(await figure(page, "objects"), "0", "priv's objects expired");
        // a phone: nothing wider than the screen
        await page.setViewport({ width: 375, height: 740, isMobile: true });
        await page.goto(`${s.url}/`);
        await page.waitForSelector('[data-viewer="token"]');
        assert.ok(await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "no horizontal scrolling on a phone");
        await page.screenshot({ path: artifactPath("dashboard", `${tag}-3-phone.png`), fullPage: true });
        await page.click("#token-forget");
        await page.waitForSelector('[data-viewer="public"]');
      } finally {
        await page.close();
      }
    });

    test("the cache page's figures are what the database holds after the pushes, downloads and GC", async () => {
      const db = s.db.kysely;
      const cacheId = (await db.selectFrom("cache").select("id").where("name", "=", "pub").executeTakeFirstOrThrow()).id;
      const { rows } = await sql<{ objects: unknown; logical: unknown }>`
        SELECT count(*) AS objects, sum(n.nar_size) AS logical FROM object o JOIN nar n ON n.id = o.nar_id WHERE o.cache_id = ${cacheId}`.execute(db);
      const stored = await sql<{ bytes: unknown }>`
        SELECT sum(c.file_size) AS bytes FROM object o JOIN chunkref r ON r.nar_id = o.nar_id JOIN chunk c ON c.id = r.chunk_id WHERE o.cache_id = ${cacheId}`.execute(db);
      const page = await browser.newPage();
      try {
        await page.goto(`${s.url}/_dashboard/cache/pub`);
        assert.equal(await figure(page, "objects"), String(rows[0]!.objects));
        assert.equal(await figure(page, "objects"), "2");
        assert.equal(await figure(page, "logical-bytes"), String(rows[0]!.logical));
        assert.equal(Number(await figure(page, "logical-bytes")), fx.small.narSize + fx.big.narSize);
        assert.equal(await figure(page, "stored-bytes"), String(stored.rows[0]!.bytes));
        assert.equal(await figure(page, "pushes"), "2");
        assert.equal(await figure(page, "downloads"), "3");
        assert.equal(await figure(page, "quota"), "");
        // most downloaded: the small path twice, then the big one once
        const downloaded = await page.$$eval("#most-downloaded tbody tr", (trs) => trs.map((tr) => [tr.cells[0]!.textContent, tr.cells[1]!.getAttribute("data-value")]));
        assert.deepEqual(downloaded, [[fx.small.storePath, "2"], [fx.big.storePath, "1"]]);
        const pushes = await page.$$eval("#recent-pushes tbody tr", (trs) => trs.map((tr) => [tr.cells[0]!.textContent, tr.cells[2]!.textContent]));
        assert.deepEqual(pushes.map((p) => p[0]).sort(), [fx.big.storePath, fx.small.storePath].sort());
        assert.ok(pushes.every((p) => p[1] === "root"), "who pushed: the token's subject");
        assert.equal(await page.$$eval("figure.chart svg[role=img]", (svgs) => svgs.length), 2, "two charts, drawn as SVG");
        await page.screenshot({ path: artifactPath("dashboard", `${tag}-4-cache.png`), fullPage: true });
      } finally {
        await page.close();
      }
    });

    test("the server page needs a token that may pull every cache; its figures are the database's and the GC run's", async () => {
      const db = s.db.kysely;
      const { rows } = await sql<{ n: unknown; stored: unknown; bytes: unknown }>`
        SELECT count(*) AS n, sum(file_size) AS stored, sum(chunk_size) AS bytes FROM chunk WHERE state = 'V'`.execute(db);
      const page = await browser.newPage();
      try {
        await page.goto(`${s.url}/_dashboard/server`);
        await page.waitForSelector("[data-hidden-server]");
        await enterToken(page, s.token({ pub: { r: 1 } }));
        assert.ok(await page.$("[data-hidden-server]"), "a token for one cache does not see the server");
        await page.click("#token-forget");
        await page.waitForSelector('[data-viewer="public"]');
        await enterToken(page, s.rootToken());
        assert.equal(await figure(page, "chunks"), String(rows[0]!.n));
        assert.equal(await figure(page, "stored-bytes"), String(rows[0]!.stored));
        assert.equal(await figure(page, "chunk-bytes"), String(rows[0]!.bytes));
        assert.equal(await figure(page, "objects-now"), "2");
        assert.equal(await figure(page, "database-health"), "ok");
        assert.equal(await figure(page, "storage-health"), "ok");
        const runs = await page.$$eval("#gc-runs tbody tr", (trs) => trs.map((tr) => tr.cells[4]!.getAttribute("data-value")));
        assert.deepEqual(runs, [String(gc.bytesFreed)]);
        assert.ok(Number(await figure(page, "requests")) > 0);
        await page.screenshot({ path: artifactPath("dashboard", `${tag}-5-server.png`), fullPage: true });
        // the same figures for Prometheus
        const metrics = await (await s.fetch("/metrics")).text();
        const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
        assert.equal(value("attic_storage_chunks"), Number(rows[0]!.n));
        assert.equal(value("attic_storage_stored_bytes"), Number(rows[0]!.stored));
        assert.equal(value("attic_gc_last_run_freed_bytes"), gc.bytesFreed);
        assert.equal(value("attic_objects"), 2);
        assert.equal(value("attic_nar_downloads_total"), 4);
        assert.match(metrics, /^attic_http_request_duration_seconds_count\{route="\/:cache\/nar\/:file",method="GET",status="200"\} 4$/m);
      } finally {
        await page.close();
      }
    });
  });
}

describe("dashboard answers", () => {
  test("a cache page lists the cache's pins (name, path, paths kept, who)", async () => {
    const s = await startServer();
    try {
      await createCacheViaApi(s, "pinned", { is_public: true });
      const none = await (await s.fetch("/_dashboard/cache/pinned")).text();
      assert.match(none, /No pins/);
      const fx = narFixture(Buffer.from("a deployed system"), "deployed-system");
      assert.equal((await uploadNar(s, fx, { cache: "pinned", token: s.rootToken() })).status, 200);
      const pinned = await s.fetch("/_api/v1/pins/pinned/production", {
        method: "PUT",
        token: s.rootToken(),
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ store_path: fx.storePath }),
      });
      assert.equal(pinned.status, 200, await pinned.text());
      const page = await (await s.fetch("/_dashboard/cache/pinned")).text();
      const table = /<table id="pins">[\s\S]*?<\/table>/.exec(page)?.[0] ?? "";
      assert.match(table, /<td>production<\/td>/);
      assert.ok(table.includes(fx.storePath), "the pinned store path is listed");
      assert.match(table, /data-value="1"/);
    } finally {
      await s.stop();
    }
  });

  test("a private or missing cache look the same to an outsider; values are escaped; views are not cached", async () => {
    const s = await startServer();
    try {
      await createCacheViaApi(s, "hidden");
      const missing = await s.fetch("/_dashboard/cache/nothing-here");
      const hidden = await s.fetch("/_dashboard/cache/hidden");
      assert.equal(missing.status, 404);
      assert.equal(hidden.status, 404);
      assert.equal(await missing.text(), await hidden.text());
      assert.equal((await s.fetch("/_dashboard/cache/bad%20name")).status, 400);
      const home = await s.fetch("/");
      assert.equal(home.headers.get("cache-control"), "no-store");
      assert.match(home.headers.get("content-security-policy")!, /script-src 'self'/);
      const fragment = await s.fetch("/?fragment=1", { token: s.token({ hidden: { r: 1 } }, { sub: "<img src=x onerror=alert(1)>" }) });
      const text = await fragment.text();
      assert.ok(!text.includes("<img"), "the token's subject is escaped");
      assert.match(text, /&lt;img src=x/);
      const script = await s.fetch("/_dashboard/app.js");
      assert.match(script.headers.get("content-type")!, /javascript/);
    } finally {
      await s.stop();
    }
  });
});
