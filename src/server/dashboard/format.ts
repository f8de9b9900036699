// How the dashboard writes figures: sizes with binary prefixes, ratios with two decimals,
// times in UTC (the server's clock; the same for every viewer).
import { formatDuration } from "../../api/duration.ts";
import { humanBytes } from "../../util/size.ts";

export { humanBytes };

export function ratio(numerator: number, denominator: number): string {
  return denominator > 0 && numerator > 0 ? `${(numerator / denominator).toFixed(2)}×` : "–";
}

export function percent(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)} %` : "–";
}

/** `100,000` (toLocaleString goes through ICU: ten times slower, and a page has hundreds) */
export function count(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** `2026-11-30 13:45 UTC` */
export function utcTime(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

export function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** A retention period in seconds as upstream's humantime writes it (`1month`, `7days`). */
export function retention(secs: number): string {
  return secs === 0 ? "kept forever" : formatDuration(secs);
}
