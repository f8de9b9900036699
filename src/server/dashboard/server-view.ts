// `/_dashboard/server`: server-wide storage (as the last GC run measured it), deduplication,
// the last GC runs, this process's requests and the backends' health. Only for a token that may
// pull from every cache.
import type { DayEntry, GcRunEntry } from "../../db/queries/dashboard.ts";
import type { PackSpace } from "../../db/queries/pack-gc.ts";
import { chart } from "./charts.ts";
import { count, humanBytes, ratio, seconds, utcTime } from "./format.ts";
import { html, type Html } from "./html.ts";
import { figure, viewerLine, type Viewer } from "./layout.ts";

export interface RouteFigures {
  route: string;
  method: string;
  count: number;
  errors: number;
  meanMs: number;
}

export interface Health {
  ok: boolean;
  ms: number;
  detail: string;
}

export interface ServerModel {
  objects: number;
  logicalBytes: number;
  /** newest first */
  runs: readonly GcRunEntry[];
  days: readonly { day: string; entry: DayEntry | null }[];
  requests: { since: Date; total: number; clientErrors: number; serverErrors: number; routes: readonly RouteFigures[] };
  database: Health;
  storage: Health;
  /** packs now (docs/compaction.md) */
  packs: PackSpace;
  /** garbage-collection.compaction-threshold, 0..1 */
  compactionThreshold: number;
}

export function serverView(viewer: Viewer, m: ServerModel, now: Date): Html {
  const last = m.runs[0];
  const oldestFirst = [...m.runs].reverse();
  const runLabels = oldestFirst.map((r) => utcTime(r.finishedAt).slice(5, 16));
  const uptime = Math.max((now.getTime() - m.requests.since.getTime()) / 1000, 1);
  const dayLabels = m.days.map((d) => d.day.slice(5));
  return html`${viewerLine(viewer)}
<h1>Server</h1>
<section aria-labelledby="storage-h"><h2 id="storage-h">Storage</h2>
${last
  ? html`<p class="help">As measured by the last garbage-collection run, ${utcTime(last.finishedAt)}.</p>
<dl class="figures">
${figure("stored-bytes", "Storage used", humanBytes(last.storedBytes), last.storedBytes, "chunk files, compressed")}
${figure("chunks", "Chunks", count(last.chunks), last.chunks)}
${figure("chunk-bytes", "Unique data", humanBytes(last.chunkBytes), last.chunkBytes, "the chunks, uncompressed")}
${figure("nars", "NARs", count(last.nars), last.nars, humanBytes(last.narBytes))}
${figure("logical-bytes", "Logical size", humanBytes(last.logicalBytes), last.logicalBytes, "every cache's NARs, a NAR in two caches twice")}
${figure("dedup-ratio", "Deduplication", ratio(last.logicalBytes, last.chunkBytes), last.chunkBytes > 0 ? (last.logicalBytes / last.chunkBytes).toFixed(4) : "", "logical ÷ unique data")}
${figure("compression-ratio", "Compression", ratio(last.chunkBytes, last.storedBytes), last.storedBytes > 0 ? (last.chunkBytes / last.storedBytes).toFixed(4) : "", "unique data ÷ storage used")}
</dl>`
  : html`<p data-no-gc>No garbage-collection run yet: storage is measured by each run (<code>atticd --mode garbage-collector-once</code>, or the periodic run).</p>`}
<dl class="figures">
${figure("objects-now", "Objects now", count(m.objects), m.objects, "in all live caches")}
${figure("logical-now", "Logical size now", humanBytes(m.logicalBytes), m.logicalBytes)}
</dl>
</section>
<section aria-labelledby="packs-h"><h2 id="packs-h">Packs</h2>
${m.packs.packs + m.packs.openPacks + m.packs.retiredPacks === 0
  ? html`<p data-no-packs>No packs: every chunk is stored as an object of its own (upstream's layout).</p>`
  : html`<p class="help">Chunks are appended to packs; deleted chunks leave holes that compaction (each garbage-collection run) reclaims once a pack is ${Math.round(m.compactionThreshold * 100)} % dead. Figures at most a minute old.</p>
<dl class="figures">
${figure("packs", "Packs", count(m.packs.packs), m.packs.packs, `${humanBytes(m.packs.packBytes)} sealed; ${count(m.packs.openPacks)} being written`)}
${figure("pack-live-bytes", "Live data in packs", humanBytes(m.packs.liveBytes), m.packs.liveBytes)}
${figure("pack-free-bytes", "Free space in packs", humanBytes(m.packs.freeBytes), m.packs.freeBytes, m.packs.packBytes > 0 ? `holes left by deleted chunks: ${((m.packs.freeBytes / m.packs.packBytes) * 100).toFixed(1)} % of the packs` : "holes left by deleted chunks")}
${figure("pack-reclaimable-bytes", "Reclaimable", humanBytes(m.packs.reclaimableBytes), m.packs.reclaimableBytes, "freed by the next compaction and when retired packs pass their grace period")}
${figure("retired-packs", "Retired packs", count(m.packs.retiredPacks), m.packs.retiredPacks, `${humanBytes(m.packs.retiredBytes)}, deleted after garbage-collection.pack-retire-grace`)}
</dl>`}
</section>
<section aria-labelledby="charts-h"><h2 id="charts-h">Over time</h2>
<div class="charts">
${chart({
  id: "storage",
  title: "Storage at each GC run",
  kind: "line",
  labels: runLabels,
  format: humanBytes,
  series: [
    { name: "logical", cls: "s1", values: oldestFirst.map((r) => r.logicalBytes) },
    { name: "stored", cls: "s2", values: oldestFirst.map((r) => r.storedBytes) },
  ],
})}
${chart({ id: "freed", title: "Freed by each GC run", kind: "bars", labels: runLabels, format: humanBytes, series: [{ name: "freed", cls: "s2", values: oldestFirst.map((r) => r.bytesFreed) }] })}
${chart({
  id: "activity",
  title: "Pushes and downloads per day, all caches",
  kind: "bars",
  labels: dayLabels,
  format: (n) => count(Math.round(n)),
  integer: true,
  series: [
    { name: "pushes", cls: "s1", values: m.days.map((d) => d.entry?.pushes ?? 0) },
    { name: "downloads", cls: "s2", values: m.days.map((d) => d.entry?.downloads ?? 0) },
  ],
})}
</div></section>
<section aria-labelledby="gc-h"><h2 id="gc-h">Last garbage-collection runs</h2>
${m.runs.length === 0 ? html`<p>None yet.</p>` : html`<div class="scroll"><table id="gc-runs"><thead><tr><th scope="col">Finished</th><th scope="col">Took</th><th scope="col">Objects removed</th><th scope="col">Chunks removed</th><th scope="col">Freed</th></tr></thead>
<tbody>${m.runs.slice(0, 10).map((r) => html`<tr><td><time datetime="${r.finishedAt.toISOString()}">${utcTime(r.finishedAt)}</time></td><td class="num">${seconds(r.durationMs)}</td><td class="num">${count(r.objectsRemoved)}</td><td class="num">${count(r.chunksRemoved)}</td><td class="num" data-value="${r.bytesFreed}">${humanBytes(r.bytesFreed)}</td></tr>`)}</tbody></table></div>`}
</section>
<section aria-labelledby="requests-h"><h2 id="requests-h">Requests to this server process</h2>
<p class="help">Since it started, ${utcTime(m.requests.since)} (each replica counts its own; /metrics has them all).</p>
<dl class="figures">
${figure("requests", "Requests", count(m.requests.total), m.requests.total, `${(m.requests.total / uptime).toFixed(2)} per second on average`)}
${figure("client-errors", "Refused (4xx)", count(m.requests.clientErrors), m.requests.clientErrors)}
${figure("server-errors", "Failed (5xx)", count(m.requests.serverErrors), m.requests.serverErrors)}
</dl>
${m.requests.routes.length === 0 ? "" : html`<div class="scroll"><table id="routes"><thead><tr><th scope="col">Route</th><th scope="col">Method</th><th scope="col">Requests</th><th scope="col">5xx</th><th scope="col">Mean time</th></tr></thead>
<tbody>${m.requests.routes.map((r) => html`<tr><td class="path">${r.route}</td><td>${r.method}</td><td class="num">${count(r.count)}</td><td class="num">${count(r.errors)}</td><td class="num">${r.meanMs.toFixed(2)} ms</td></tr>`)}</tbody></table></div>`}
</section>
<section aria-labelledby="health-h"><h2 id="health-h">Backends</h2>
<dl class="figures">
${healthFigure("database", "Database", m.database)}
${healthFigure("storage", "Storage", m.storage)}
</dl></section>`;
}

function healthFigure(name: string, label: string, h: Health): Html {
  return figure(`${name}-health`, label, h.ok ? `answering (${h.ms.toFixed(1)} ms)` : `failing: ${h.detail}`, h.ok ? "ok" : "failing", h.ok ? h.detail : undefined);
}

export function serverHiddenView(viewer: Viewer): Html {
  return html`${viewerLine(viewer)}
<h1>Server</h1>
<p data-hidden-server>The server-wide figures need a token that may pull from every cache (for example one made with <code>atticadm make-token --pull '*'</code>).</p>`;
}
