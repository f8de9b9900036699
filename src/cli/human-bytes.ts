// Human-readable sizes, as indicatif's `HumanBytes` prints them (binary prefixes, two decimals),
// which upstream's client uses for speeds. Shared by the client's output and the server's dashboard.
const PREFIXES = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"];

export function humanBytes(n: number): string {
  if (!(n >= 1024)) return `${Math.max(0, Math.round(n))} B`;
  let value = n;
  let i = -1;
  while (value >= 1024 && i < PREFIXES.length - 1) {
    value /= 1024;
    i++;
  }
  return `${value.toFixed(2)} ${PREFIXES[i]}B`;
}
