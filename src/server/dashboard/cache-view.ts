// `/_dashboard/cache/<name>`: one cache's figures, charts of its last 30 days, its recent pushes,
// its most downloaded paths and its pins.
import type { CacheListEntry, DayEntry, DownloadedEntry, PushEntry, PushTotals } from "../../db/queries/dashboard.ts";
import type { Pin } from "../../db/queries/pins.ts";
import type { PullStats } from "../../db/queries/upstreams.ts";
import { chart } from "./charts.ts";
import { count, humanBytes, percent, ratio, retention, utcTime } from "./format.ts";
import { html, type Html } from "./html.ts";
import { figure, viewerLine, type Viewer } from "./layout.ts";

export interface CacheModel {
  cache: CacheListEntry;
  /** seconds; the cache's own or the global default */
  retentionPeriod: number;
  retentionIsDefault: boolean;
  totals: PushTotals;
  days: readonly { day: string; entry: DayEntry | null }[];
  pushes: readonly PushEntry[];
  downloaded: readonly DownloadedEntry[];
  /** named pins, kept from retention and quota GC (attic pin) */
  pins: readonly Pin[];
  /** pull-through figures (issue 27); null when the cache never went upstream */
  pull: PullStats | null;
}

export function cacheView(viewer: Viewer, m: CacheModel): Html {
  const c = m.cache;
  const t = m.totals;
  const labels = m.days.map((d) => d.day.slice(5));
  const dedupShare = t.pushedBytes > 0 ? 1 - t.newChunkBytes / t.pushedBytes : 0;
  return html`${viewerLine(viewer)}
<h1>Cache <span class="name">${c.name}</span> <span class="badge">${c.isPublic ? "public" : "private"}</span></h1>
<section aria-labelledby="figures-h"><h2 id="figures-h">Figures</h2>
<dl class="figures">
${figure("objects", "Objects", count(c.objects), c.objects, "store paths in the cache")}
${figure("logical-bytes", "Logical size", humanBytes(c.logicalBytes), c.logicalBytes, "its NARs, uncompressed")}
${figure("stored-bytes", "Stored size", humanBytes(c.storedBytes), c.storedBytes, "its NARs as stored, compressed")}
${figure("compression-ratio", "Compression", ratio(c.logicalBytes, c.storedBytes), c.storedBytes > 0 ? (c.logicalBytes / c.storedBytes).toFixed(4) : "", "logical ÷ stored")}
${figure("dedup-ratio", "Deduplication on push", ratio(t.pushedBytes, t.newChunkBytes), t.newChunkBytes > 0 ? (t.pushedBytes / t.newChunkBytes).toFixed(4) : "", `pushed ÷ newly stored: ${percent(dedupShare * t.pushedBytes, t.pushedBytes)} of what was pushed was already stored`)}
${figure("pushes", "Pushes", count(t.pushes), t.pushes, `${humanBytes(t.pushedBytes)} pushed in all`)}
${figure("downloads", "NAR downloads", count(t.downloads), t.downloads)}
${figure("retention", "Retention", retention(m.retentionPeriod), m.retentionPeriod, m.retentionIsDefault ? "the server's default" : "set on this cache")}
${m.pull ? pullFigures(m.pull, t.pushes) : ""}
<div class="figure"><dt>Quota</dt>${c.maxSize === null
    ? html`<dd data-figure="quota" data-value="">none</dd>`
    : html`<dd data-figure="quota" data-value="${c.maxSize}"><meter min="0" max="${c.maxSize}" value="${Math.min(c.logicalBytes, c.maxSize)}" aria-label="Quota used">${percent(c.logicalBytes, c.maxSize)}</meter> ${percent(c.logicalBytes, c.maxSize)} of ${humanBytes(c.maxSize)}</dd>`}</div>
</dl></section>
<section aria-labelledby="charts-h"><h2 id="charts-h">Last 30 days</h2>
<div class="charts">
${chart({
  id: "size",
  title: "Size over time",
  kind: "line",
  labels,
  format: humanBytes,
  series: [
    { name: "logical", cls: "s1", values: m.days.map((d) => d.entry?.logicalBytes ?? null) },
    { name: "stored", cls: "s2", values: m.days.map((d) => d.entry?.storedBytes ?? null) },
  ],
})}
${chart({
  id: "activity",
  title: "Pushes and downloads per day",
  kind: "bars",
  labels,
  format: (n) => count(Math.round(n)),
  integer: true,
  series: [
    { name: "pushes", cls: "s1", values: m.days.map((d) => d.entry?.pushes ?? 0) },
    { name: "downloads", cls: "s2", values: m.days.map((d) => d.entry?.downloads ?? 0) },
  ],
})}
</div></section>
<section aria-labelledby="pushes-h"><h2 id="pushes-h">Recent pushes</h2>
${m.pushes.length === 0 ? html`<p>Nothing pushed yet.</p>` : html`<div class="scroll"><table id="recent-pushes"><thead><tr><th scope="col">Store path</th><th scope="col">NAR size</th><th scope="col">By</th><th scope="col">When</th></tr></thead>
<tbody>${m.pushes.map((p) => html`<tr><td class="path">${p.storePath}</td><td class="num" data-value="${p.narSize}">${humanBytes(p.narSize)}</td><td>${p.createdBy ?? "–"}</td><td><time datetime="${p.createdAt.toISOString()}">${utcTime(p.createdAt)}</time></td></tr>`)}</tbody></table></div>`}
</section>
<section aria-labelledby="downloaded-h"><h2 id="downloaded-h">Most downloaded</h2>
${m.downloaded.length === 0 ? html`<p>No NAR downloaded yet.</p>` : html`<div class="scroll"><table id="most-downloaded"><thead><tr><th scope="col">Store path</th><th scope="col">Downloads</th><th scope="col">NAR size</th></tr></thead>
<tbody>${m.downloaded.map((d) => html`<tr><td class="path">${d.storePath}</td><td class="num" data-value="${d.downloads}">${count(d.downloads)}</td><td class="num">${humanBytes(d.narSize)}</td></tr>`)}</tbody></table></div>`}
</section>
<section aria-labelledby="pins-h"><h2 id="pins-h">Pins</h2>
${m.pins.length === 0 ? html`<p>No pins: every path follows the retention period and the quota.</p>` : html`<p>Pinned paths and their closures are kept from retention and quota garbage collection.</p><div class="scroll"><table id="pins"><thead><tr><th scope="col">Pin</th><th scope="col">Store path</th><th scope="col">Paths kept</th><th scope="col">By</th><th scope="col">Since</th></tr></thead>
<tbody>${m.pins.map((p) => html`<tr><td>${p.name}</td><td class="path">${p.storePath}</td><td class="num" data-value="${p.paths}">${count(p.paths)}</td><td>${p.createdBy ?? "–"}</td><td><time datetime="${p.createdAt.toISOString()}">${utcTime(p.createdAt)}</time></td></tr>`)}</tbody></table></div>`}
</section>`;
}

/** Pull-through (issue 27): fetched vs pushed, bytes from upstreams, the upstream hit rate. */
function pullFigures(p: PullStats, pushes: number): Html {
  const asked = p.upstream_found + p.upstream_missed;
  return html`${figure("fetched", "Fetched from upstreams", count(p.fetched_paths), p.fetched_paths, `${humanBytes(p.fetched_nar_bytes)} of NARs; ${count(Math.max(0, pushes - p.fetched_paths))} paths pushed`)}
${figure("upstream-bytes", "Received from upstreams", humanBytes(p.upstream_bytes), p.upstream_bytes, "as sent, compressed")}
${figure("upstream-hit-rate", "Upstream hit rate", percent(p.upstream_found, asked), asked > 0 ? (p.upstream_found / asked).toFixed(4) : "", `narinfo misses found upstream: ${count(p.upstream_found)} of ${count(asked)}`)}`;
}

/** The same answer whether the cache does not exist or the viewer may not see it (decision 1). */
export function cacheHiddenView(viewer: Viewer): Html {
  return html`${viewerLine(viewer)}
<h1>Cache not found</h1>
<p data-hidden-cache>There is no such cache, or it is private: enter a token that may pull from it.</p>`;
}
