// `/`: the caches the viewer may pull from, one row each with its size and how full it is.
import type { CacheListEntry } from "../../db/queries/dashboard.ts";
import { count, humanBytes, percent, ratio } from "./format.ts";
import { html, type Html } from "./html.ts";
import { viewerLine, type Viewer } from "./layout.ts";

export function overviewView(viewer: Viewer, caches: readonly CacheListEntry[]): Html {
  const rows = caches.map(
    (c) => html`<tr data-cache="${c.name}">
<th scope="row"><a href="/_dashboard/cache/${c.name}">${c.name}</a></th>
<td>${c.isPublic ? "public" : "private"}</td>
<td class="num" data-value="${c.objects}">${count(c.objects)}</td>
<td class="num" data-value="${c.logicalBytes}">${humanBytes(c.logicalBytes)}</td>
<td class="num" data-value="${c.storedBytes}">${humanBytes(c.storedBytes)}</td>
<td class="num">${ratio(c.logicalBytes, c.storedBytes)}</td>
<td class="num">${c.maxSize === null ? "no quota" : html`<meter min="0" max="${c.maxSize}" value="${Math.min(c.logicalBytes, c.maxSize)}" aria-label="Quota of ${c.name} used">${percent(c.logicalBytes, c.maxSize)}</meter> ${percent(c.logicalBytes, c.maxSize)}`}</td>
</tr>`,
  );
  return html`${viewerLine(viewer)}
<h1>Caches</h1>
${caches.length === 0
  ? html`<p>No cache to show${viewer.subject === null ? ": none is public. Enter a token to see private caches." : " for this token."}</p>`
  : html`<div class="scroll"><table id="caches">
<caption>${count(caches.length)} ${caches.length === 1 ? "cache" : "caches"} you may pull from</caption>
<thead><tr><th scope="col">Cache</th><th scope="col">Access</th><th scope="col">Objects</th><th scope="col">Logical size</th><th scope="col">Stored</th><th scope="col">Compression</th><th scope="col">Quota used</th></tr></thead>
<tbody>${rows}</tbody>
</table></div>`}
<p class="help">Logical size: the NARs of the cache's paths, uncompressed. Stored: the same NARs compressed (chunks shared with other paths counted with each). Pull from a cache with <code>attic use &lt;cache&gt;</code>.</p>`;
}
