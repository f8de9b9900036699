// The one place the three tools read their version from: package.json, beside src/ and dist/.
import { readFileSync } from "node:fs";

let cached: string | undefined;

export function version(): string {
  if (cached === undefined) {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
    cached = pkg.version ?? "unknown";
  }
  return cached;
}
