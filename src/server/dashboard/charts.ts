// Charts as inline SVG drawn on the server: no script, no library, nothing fetched. Each chart is
// a <figure> whose SVG carries a title for screen readers, with a legend and the same figures in
// a table under <details> (what a screen reader or a keyboard user reads instead of the drawing).
import { html, type Html } from "./html.ts";

export interface Series {
  name: string;
  /** null: no figure that day (a line carries the previous one forward) */
  values: readonly (number | null)[];
  /** CSS class giving the colour: `s1` or `s2` */
  cls: "s1" | "s2";
}

export interface ChartSpec {
  id: string;
  title: string;
  /** one per point, oldest first (days, or GC runs) */
  labels: readonly string[];
  series: readonly Series[];
  format: (n: number) => string;
  kind: "line" | "bars";
  /** counts: the axis top is a multiple of 4, so that its five ticks are whole numbers */
  integer?: boolean;
}

const W = 640;
const H = 220;
const LEFT = 78;
const RIGHT = 10;
const TOP = 10;
const BOTTOM = 28;

/** 1, 2, 5 × 10^k at or above `n`: the top of the axis. */
function niceCeiling(n: number): number {
  if (n <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= n) return m * power;
  return 10 * power;
}

function carriedForward(values: readonly (number | null)[]): (number | null)[] {
  let last: number | null = null;
  return values.map((v) => (v === null ? last : (last = v)));
}

export function chart(spec: ChartSpec): Html {
  const { id, title, labels, series, format, kind } = spec;
  const drawn = series.map((s) => ({ ...s, points: kind === "line" ? carriedForward(s.values) : s.values.map((v) => v ?? 0) }));
  const highest = Math.max(0, ...drawn.flatMap((s) => s.points.filter((v): v is number => v !== null)));
  const max = spec.integer ? Math.max(4, Math.ceil(highest / 4) * 4) : niceCeiling(highest);
  const plotW = W - LEFT - RIGHT;
  const plotH = H - TOP - BOTTOM;
  const n = Math.max(labels.length, 1);
  const y = (v: number) => TOP + plotH - (v / max) * plotH;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * max);
  const grid = ticks.map(
    (t) => html`<line class="grid" x1="${LEFT}" x2="${W - RIGHT}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}"/><text class="tick" x="${LEFT - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${format(t)}</text>`,
  );
  const xLabelAt = [...new Set([0, Math.floor((n - 1) / 2), n - 1])].filter((i) => i >= 0 && i < labels.length);
  const slot = plotW / n;
  const xCenter = (i: number) => LEFT + slot * (i + 0.5);
  const xLabels = xLabelAt.map((i) => html`<text class="tick" x="${xCenter(i).toFixed(1)}" y="${H - 8}" text-anchor="middle">${labels[i]}</text>`);

  let marks: Html[];
  if (kind === "line") {
    marks = drawn.map((s) => {
      const pts = s.points.map((v, i) => (v === null ? null : `${xCenter(i).toFixed(1)},${y(v).toFixed(1)}`)).filter((p) => p !== null);
      return html`<polyline class="line ${s.cls}" points="${pts.join(" ")}"/>${pts.length === 1 ? html`<circle class="dot ${s.cls}" cx="${pts[0]!.split(",")[0]}" cy="${pts[0]!.split(",")[1]}" r="3"/>` : ""}`;
    });
  } else {
    const barW = (slot * 0.8) / drawn.length;
    marks = drawn.flatMap((s, k) =>
      s.points.map((v, i) => {
        const top = y(v ?? 0);
        const x = LEFT + slot * i + slot * 0.1 + barW * k;
        return html`<rect class="bar ${s.cls}" x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${Math.max(barW - 1, 1).toFixed(1)}" height="${(TOP + plotH - top).toFixed(1)}"><title>${labels[i]}: ${s.name} ${format(v ?? 0)}</title></rect>`;
      }),
    );
  }
  const empty = labels.length === 0;
  return html`<figure class="chart" aria-labelledby="${id}-caption">
<figcaption id="${id}-caption"><strong>${title}</strong> ${series.map((s) => html`<span class="legend"><span class="swatch ${s.cls}" aria-hidden="true"></span>${s.name}</span>`)}</figcaption>
${empty
  ? html`<p class="empty">No figures yet.</p>`
  : html`<svg viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${id}-title" focusable="false"><title id="${id}-title">${title}</title>${grid}${marks}${xLabels}</svg>
<details><summary>Figures of “${title}”</summary><table><thead><tr><th scope="col">When</th>${series.map((s) => html`<th scope="col">${s.name}</th>`)}</tr></thead>
<tbody>${labels.map((label, i) => html`<tr><th scope="row">${label}</th>${series.map((s) => html`<td>${s.values[i] === null || s.values[i] === undefined ? "–" : format(s.values[i]!)}</td>`)}</tr>`)}</tbody></table></details>`}
</figure>`;
}
