// Pull-through (issue 27): what the binary-cache routes call when a cache does not have a path.
//
// narinfo miss: the cache's upstreams are asked in order (each behind its circuit breaker, with a
// deadline); the first narinfo signed by a trusted key of its upstream is remembered in the
// database (any replica may then serve its NAR) and answered as our narinfo. A path no upstream
// has is remembered as missing for `negative-ttl`.
//
// NAR miss: one fetch per path across replicas (a database lease per cache and path; others wait
// and then serve it from the store). The upstream's file is decoded to the NAR, which goes through
// the shared Uploader (the pipeline of a push: verified against NarHash/NarSize, chunked,
// deduplicated) and at the same time to the client, compressed as our narinfo announced. The
// last piece is sent only once the upload is verified and stored: a mismatch or a cut upstream
// stores nothing and the client sees a broken transfer, never a complete wrong NAR.
import { randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import type { FastifyBaseLogger } from "fastify";
import { createCompressor, type CompressionType } from "../../compression/index.ts";
import { decodeNixFile } from "../../compression/nix-file.ts";
import type { Db } from "../../db/connect.ts";
import { releaseLease, renewLease, tryAcquireLease } from "../../db/queries/leases.ts";
import { getCacheById } from "../../db/queries/caches.ts";
import { getObject } from "../../db/queries/objects.ts";
import {
  bumpPullStats,
  deleteUpstreamNarinfo,
  getUpstreamNarinfo,
  listUpstreams,
  putUpstreamNarinfo,
  type UpstreamEntry,
} from "../../db/queries/upstreams.ts";
import type { ServedCache } from "../../db/queries/objects.ts";
import { setTimeout as sleep } from "node:timers/promises";
import type { Config } from "../config/types.ts";
import type { Metrics } from "../metrics.ts";
import { LruCache } from "../lru.ts";
import { BodyReader } from "../upload/body.ts";
import { uploadInfoFromNarInfo } from "../upload/info.ts";
import type { Uploader } from "../upload/pipeline.ts";
import { Breakers } from "./breaker.ts";
import { readLimited, upstreamGet, UpstreamError } from "./http.ts";
import { ClientSink, passThroughTo, relay } from "./relay.ts";
import { announcedCompression, renderOurNarInfo, UntrustedNarInfo, verifyUpstreamNarInfo, type TrustedNarInfo } from "./narinfo.ts";

const MAX_NARINFO_BYTES = 64 * 1024;
const LEASE_TTL_MS = 30_000;
const WAIT_POLL_MS = 200;
/** how long the store waits for the first client to take its NAR before it starts */
const CLIENT_WAIT_MS = 30_000;
/** an upstream narinfo remembered longer than this is asked for again */
const NARINFO_MAX_AGE_MS = 24 * 3600_000;

export type NarMiss = { kind: "absent" } | { kind: "stored" } | { kind: "stream"; stream: Readable };

export class PullThrough {
  private readonly db: Db;
  private readonly config: Config;
  private readonly metrics: Metrics;
  private readonly uploader: Uploader;
  private readonly breakers: Breakers;
  /** `${cacheId}:${hash}` → when the negative answer expires */
  private readonly negative = new LruCache<string, number>(100_000);
  /** decoded NARs on their way from the upstream to the store */
  private readonly spoolDir: string;
  /** fetches running in this process, by `${cacheId}:${hash}` */
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(db: Db, config: Config, metrics: Metrics, uploader: Uploader) {
    this.db = db;
    this.config = config;
    this.metrics = metrics;
    this.uploader = uploader;
    this.spoolDir = join(config.nixProtocol.stagingPath, ".pull-through");
    this.breakers = new Breakers(config.pullThrough.breakerThreshold, config.pullThrough.breakerCooldown * 1000);
  }

  private get allowed(): readonly string[] {
    return this.config.pullThrough.allowedUpstreams;
  }

  private get timeoutMs(): number {
    return this.config.pullThrough.timeout * 1000;
  }

  /** Our narinfo for a path the cache does not have, from its upstreams; null when none has it. */
  async narinfo(cache: ServedCache, hash: string, log: FastifyBaseLogger): Promise<string | null> {
    if (this.allowed.length === 0) return null;
    const key = `${cache.id}:${hash}`;
    const until = this.negative.get(key);
    if (until !== undefined && until > Date.now()) return null;
    const upstreams = await listUpstreams(this.db, cache.id);
    if (upstreams.length === 0) return null;
    const known = await this.rememberedNarInfo(cache, hash, upstreams);
    if (known) return this.render(known.trusted, hash, cache);
    let anyDown = false;
    for (const upstream of upstreams) {
      const text = await this.askNarInfo(upstream, hash, log);
      if (text === "down") {
        anyDown = true;
        continue;
      }
      if (text === null) continue;
      let trusted: TrustedNarInfo;
      try {
        trusted = verifyUpstreamNarInfo(text, hash, cache.store_dir, upstream, this.config.nixProtocol.maxNarSize);
      } catch (err) {
        if (!(err instanceof UntrustedNarInfo)) throw err;
        log.warn({ upstream: upstream.url, hash, reason: err.message }, "pull-through: upstream narinfo refused");
        this.metrics.inc("attic_upstream_requests_total", 1, { kind: "narinfo", result: "untrusted" });
        continue;
      }
      await putUpstreamNarinfo(this.db, cache.id, hash, upstream.url, text);
      await bumpPullStats(this.db, cache.id, { upstream_found: 1 });
      return this.render(trusted, hash, cache);
    }
    // a path missing because an upstream is down is not remembered as missing
    if (!anyDown) this.negative.set(key, Date.now() + this.config.pullThrough.negativeTtl * 1000);
    await bumpPullStats(this.db, cache.id, { upstream_missed: 1 });
    return null;
  }

  private render(trusted: TrustedNarInfo, hash: string, cache: ServedCache): string {
    return renderOurNarInfo(trusted, hash, cache.keypair, cache.store_dir, announcedCompression(this.config, trusted.info.narSize));
  }

  /** The verified upstream narinfo remembered for this path, if its upstream is still configured and trusted. */
  private async rememberedNarInfo(cache: ServedCache, hash: string, upstreams: UpstreamEntry[]): Promise<{ trusted: TrustedNarInfo; upstream: UpstreamEntry } | null> {
    const row = await getUpstreamNarinfo(this.db, cache.id, hash);
    if (!row || Date.now() - row.createdAt.getTime() > NARINFO_MAX_AGE_MS) return null;
    const upstream = upstreams.find((u) => u.url === row.upstreamUrl);
    if (!upstream) return null;
    try {
      return { trusted: verifyUpstreamNarInfo(row.narinfo, hash, cache.store_dir, upstream, this.config.nixProtocol.maxNarSize), upstream };
    } catch {
      return null;
    }
  }

  /** The narinfo text, null when the upstream does not have it, "down" when it failed or its breaker is open. */
  private async askNarInfo(upstream: UpstreamEntry, hash: string, log: FastifyBaseLogger): Promise<string | null | "down"> {
    if (!this.breakers.allow(upstream.url)) {
      this.metrics.inc("attic_upstream_requests_total", 1, { kind: "narinfo", result: "breaker_open" });
      return "down";
    }
    const started = performance.now();
    try {
      const res = await upstreamGet(`${upstream.url}/${hash}.narinfo`, this.allowed, this.timeoutMs);
      this.metrics.observeUpstream("narinfo", (performance.now() - started) / 1000);
      this.breakers.success(upstream.url);
      if (!res.body) {
        this.metrics.inc("attic_upstream_requests_total", 1, { kind: "narinfo", result: "missing" });
        return null;
      }
      const text = (await readLimited(res.body, MAX_NARINFO_BYTES)).toString("utf8");
      this.metrics.inc("attic_upstream_bytes_total", Buffer.byteLength(text));
      this.metrics.inc("attic_upstream_requests_total", 1, { kind: "narinfo", result: "found" });
      return text;
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      this.upstreamFailed(upstream.url, err, "narinfo", log);
      return "down";
    }
  }

  private upstreamFailed(url: string, err: UpstreamError, kind: string, log: FastifyBaseLogger): void {
    const refused = err.kind === "refused";
    this.metrics.inc("attic_upstream_requests_total", 1, { kind, result: refused ? "refused" : "error" });
    // a 4xx other than "absent" is the upstream's answer, not an outage
    if (!refused && !(err.kind === "status" && err.status !== undefined && err.status < 500)) this.breakers.failure(url);
    const open = this.breakers.isOpen(url);
    log.warn({ upstream: url, reason: err.message, breakerOpen: open }, `pull-through: upstream ${kind} request failed`);
  }

  /**
   * A NAR the cache does not have: `stream` when this request fetches it (the body to send),
   * `stored` when another request stored it meanwhile (serve it from the store), `absent` when
   * no upstream narinfo was given out for it or its fetch failed.
   */
  async nar(cache: ServedCache, hash: string, log: FastifyBaseLogger, signal: AbortSignal): Promise<NarMiss> {
    if (this.allowed.length === 0) return { kind: "absent" };
    const upstreams = await listUpstreams(this.db, cache.id);
    if (upstreams.length === 0) return { kind: "absent" };
    const known = await this.rememberedNarInfo(cache, hash, upstreams);
    if (!known) return { kind: "absent" };
    const key = `${cache.id}:${hash}`;
    const leaseName = `pull-through:${key}`;
    const owner = randomUUID();
    for (;;) {
      if (signal.aborted) return { kind: "absent" };
      const running = this.inflight.get(key);
      if (running) {
        await running.catch(() => {});
        return (await getObject(this.db, cache.id, hash)) ? { kind: "stored" } : { kind: "absent" };
      }
      if (await tryAcquireLease(this.db, leaseName, owner, LEASE_TTL_MS)) {
        if (await getObject(this.db, cache.id, hash)) {
          await releaseLease(this.db, leaseName, owner);
          return { kind: "stored" };
        }
        return this.fetch(cache, hash, known.trusted, known.upstream, { leaseName, owner, key }, log);
      }
      // another process fetches it: serve it from the store once it is there
      if (await getObject(this.db, cache.id, hash)) return { kind: "stored" };
      await sleep(WAIT_POLL_MS, undefined, { signal }).catch(() => {});
    }
  }

  private async fetch(
    cache: ServedCache,
    hash: string,
    trusted: TrustedNarInfo,
    upstream: UpstreamEntry,
    lease: { leaseName: string; owner: string; key: string },
    log: FastifyBaseLogger,
  ): Promise<NarMiss> {
    const renew = setInterval(() => void renewLease(this.db, lease.leaseName, lease.owner, LEASE_TTL_MS).catch(() => {}), LEASE_TTL_MS / 3);
    const release = async () => {
      clearInterval(renew);
      await releaseLease(this.db, lease.leaseName, lease.owner).catch(() => {});
    };
    let finished!: () => void;
    this.inflight.set(lease.key, new Promise<void>((r) => (finished = r)));
    const done = async () => {
      await release();
      this.inflight.delete(lease.key);
      finished();
    };
    if (!this.breakers.allow(upstream.url)) {
      this.metrics.inc("attic_upstream_requests_total", 1, { kind: "nar", result: "breaker_open" });
      await done();
      return { kind: "absent" };
    }
    const narUrl = new URL(trusted.info.url, `${upstream.url}/`).toString();
    const started = performance.now();
    let body: Readable;
    let upstreamBytes = 0;
    const onBytes = (n: number) => {
      upstreamBytes += n;
      this.metrics.inc("attic_upstream_bytes_total", n);
    };
    try {
      const res = await upstreamGet(narUrl, this.allowed, this.timeoutMs, { onBytes });
      this.metrics.observeUpstream("nar", (performance.now() - started) / 1000);
      this.breakers.success(upstream.url);
      if (!res.body) {
        this.metrics.inc("attic_upstream_requests_total", 1, { kind: "nar", result: "missing" });
        await deleteUpstreamNarinfo(this.db, cache.id, hash).catch(() => {});
        await done();
        return { kind: "absent" };
      }
      body = res.body;
      this.metrics.inc("attic_upstream_requests_total", 1, { kind: "nar", result: "found" });
    } catch (err) {
      await done();
      if (!(err instanceof UpstreamError)) throw err;
      this.upstreamFailed(upstream.url, err, "nar", log);
      return { kind: "absent" };
    }

    const compression = announcedCompression(this.config, trusted.info.narSize);
    // the upstream's own bytes when they are what our narinfo announces, else the NAR recompressed
    const raw = trusted.compression === compression;
    const live = new PassThrough({ highWaterMark: 1024 * 1024 });
    const out = raw || compression === "none" ? live : live.pipe(liveCompressor(compression));
    if (out !== live) live.on("error", (e) => out.destroy(e));
    const sink = new ClientSink(live, out);
    const spoolPath = join(this.spoolDir, `${randomUUID()}.nar`);
    const failed = async (reason: string, cause?: unknown) => {
      body.destroy();
      // a client still waiting (the spool could not even be opened) sees its transfer cut
      if (!out.readableEnded) sink.fail();
      this.metrics.inc("attic_upstream_fetches_total", 1, { result: "failed" });
      if (cause instanceof UpstreamError) this.upstreamFailed(upstream.url, cause, "nar", log);
      else log.warn({ upstream: upstream.url, hash, reason, cause: (cause as Error | undefined)?.message }, "pull-through: upstream NAR refused, nothing stored");
    };
    const fetched = mkdir(this.spoolDir, { recursive: true }).then(() =>
      relay(
        decodeNixFile(trusted.compression, raw ? Readable.from(passThroughTo(sink, body)) : body),
        sink,
        raw,
        createWriteStream(spoolPath),
        { narHash: trusted.narHash, narSize: trusted.info.narSize },
      ),
    );
    void fetched
      .then(async (outcome) => {
        if (!outcome.ok) return failed(outcome.reason, outcome.cause);
        // now the store, at its own pace, from the spool file; once the client has taken its
        // NAR (chunking and compressing would take the CPU its Nix is unpacking with)
        await clientDone(out, CLIENT_WAIT_MS);
        const row = await getCacheById(this.db, cache.id);
        if (!row) return;
        try {
          await this.uploader.upload(uploadInfoFromNarInfo(cache.name, hash, trusted.info, trusted.narHash), row, new BodyReader(createReadStream(spoolPath)), `upstream:${new URL(upstream.url).host}`);
        } catch (err) {
          return failed("storing it failed", err);
        }
        await deleteUpstreamNarinfo(this.db, cache.id, hash).catch(() => {});
        await bumpPullStats(this.db, cache.id, { fetched_paths: 1, fetched_nar_bytes: trusted.info.narSize, upstream_bytes: upstreamBytes }).catch(() => {});
        this.metrics.inc("attic_upstream_fetches_total", 1, { result: "stored" });
        log.info({ upstream: upstream.url, hash, narSize: trusted.info.narSize, upstreamBytes }, "pull-through: path fetched and stored");
      })
      .catch((err: unknown) => failed("the fetch failed", err))
      .finally(async () => {
        await rm(spoolPath, { force: true }).catch(() => {});
        await done();
      });
    return { kind: "stream", stream: out };
  }
}

/** Resolves when `out` is consumed or closed, or after `ms`. */
function clientDone(out: Readable, ms: number): Promise<void> {
  if (out.destroyed || out.readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    out.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The first download's stream: fast settings (the stored chunks get the configured level). */
function liveCompressor(compression: "zstd" | "xz" | "br"): ReturnType<typeof createCompressor> {
  const type: CompressionType = compression === "br" ? "brotli" : compression;
  const level = compression === "zstd" ? 1 : compression === "xz" ? 0 : 1;
  return createCompressor(type, level);
}

