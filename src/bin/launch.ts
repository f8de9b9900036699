// Runs a tool on a supported Node, wherever the bins are installed. A bin starts with
// `#!/usr/bin/env node`: whatever `node` comes first on the user's PATH, often an older one than
// attic-ts needs. This file is written for that older Node too (it only uses what Node 12 and
// later have) and does one of three things:
//   - the running Node is supported: run the tool in this process (the usual case: Docker,
//     systemd, a Node 24 on PATH; no second process);
//   - it is not, and the package's optional dependency `node` (the pinned Node, installed with
//     the package by npm ci, npm link, npm install -g) is there: run the same bin with that
//     Node, passing on this process's flags, environment, stdio, signals and exit code;
//   - neither: one line naming the version needed and the one found, exit code 1.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** engines.node in package.json (test/unit/cli checks that they agree) */
export const MIN_NODE = "22.15";

export function isSupportedNode(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, "").split(".").map(Number);
  const [minMajor = 0, minMinor = 0] = MIN_NODE.split(".").map(Number);
  return major > minMajor || (major === minMajor && minor >= minMinor);
}

/** The Node binary of the `node` package next to this one, if it is installed. */
export function bundledNode(): string | null {
  try {
    const dir = dirname(createRequire(import.meta.url).resolve("node/package.json"));
    for (const name of ["bin/node", "bin/node.exe"]) if (existsSync(join(dir, name))) return join(dir, name);
  } catch {
    // not installed (npm install --omit=optional, or its download failed)
  }
  return null;
}

/** set in the environment of a relaunched tool: a second relaunch would loop */
const RELAUNCHED = "ATTIC_TS_RELAUNCHED";

export function launch(tool: string, start: () => Promise<number>, done: (code: number) => void): void {
  if (isSupportedNode(process.versions.node)) {
    // start() reports every error itself (src/cli/report.ts); this catch is for a broken install
    start().then(done, (error: unknown) => {
      process.stderr.write(`Error: ${tool} could not start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      done(70);
    });
    return;
  }
  const node = process.env[RELAUNCHED] === undefined ? bundledNode() : null;
  if (node === null) {
    process.stderr.write(
      `Error: ${tool} needs Node.js ${MIN_NODE} or newer, but found Node.js ${process.version} (${process.execPath}); ` +
        "install a newer Node.js, or reinstall attic-ts with its optional dependency `node`\n",
    );
    process.exitCode = 1;
    return;
  }
  const child = spawn(node, [...process.execArgv, process.argv[1]!, ...process.argv.slice(2)], {
    stdio: "inherit",
    env: { ...process.env, [RELAUNCHED]: process.version },
  });
  // Ctrl-C reaches the child from the terminal (same process group): only keep this one alive
  // so that it can pass on the child's exit code. SIGTERM and SIGHUP are sent to one process.
  const ignore = (): void => {};
  const forward = (signal: NodeJS.Signals) => (): void => {
    child.kill(signal);
  };
  const handlers: [NodeJS.Signals, () => void][] = [
    ["SIGINT", ignore],
    ["SIGTERM", forward("SIGTERM")],
    ["SIGHUP", forward("SIGHUP")],
  ];
  for (const [signal, handler] of handlers) process.on(signal, handler);
  child.on("error", (error) => {
    process.stderr.write(`Error: ${tool} could not start ${node}: ${error.message}\n`);
    process.exit(1);
  });
  child.on("exit", (code, signal) => {
    for (const [sig, handler] of handlers) process.off(sig, handler);
    if (signal !== null) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}
