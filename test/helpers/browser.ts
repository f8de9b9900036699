// A real headless browser for the dashboard tests: Debian's chromium, driven by puppeteer-core
// (which downloads nothing). A missing browser fails the test with how to install it; nothing
// skips. Screenshots go to test-artifacts/ (gitignored), kept after the run.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import puppeteer, { type Browser } from "puppeteer-core";

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

export const ARTIFACTS = join(import.meta.dirname, "..", "..", "test-artifacts");

export async function launchBrowser(): Promise<Browser> {
  const executablePath = process.env.ATTIC_TEST_CHROMIUM ?? CANDIDATES.find((p) => existsSync(p));
  if (!executablePath) throw new Error("no chromium found: install Debian's with `apt-get install -y chromium` (or set ATTIC_TEST_CHROMIUM)");
  return puppeteer.launch({
    executablePath,
    headless: true,
    // root in CI: no sandbox; a small /dev/shm in containers
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run", "--disable-extensions"],
  });
}

export function artifactPath(...parts: string[]): string {
  const path = join(ARTIFACTS, ...parts);
  mkdirSync(join(path, ".."), { recursive: true });
  return path;
}
