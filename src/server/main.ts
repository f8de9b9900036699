// atticd: `atticd [-f PATH] [-l ADDR] [--mode MODE]`. Loads the config (running the first-run
// setup when there is none), then runs the mode: monolithic (migrations + GC loop + API),
// api-server (API only, refuses an unmigrated database), garbage-collector (GC loop),
// garbage-collector-once, db-migrations, check-config.
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { openDatabase, ping, type Db } from "../db/connect.ts";
import { migrate, pendingMigrations } from "../db/migrations/index.ts";
import { startGarbageCollectionLoop, runGarbageCollectionOnce, formatGcReport } from "../gc/index.ts";
import { createStorage } from "../storage/index.ts";
import { buildApp } from "./app.ts";
import { loadConfig } from "./config/load.ts";
import { defaultConfigPath, mintRootToken, writeFirstRunConfig } from "./config/first-run.ts";
import type { Config } from "./config/types.ts";
import { ListenAddressError, parseListenAddress } from "./listen.ts";
import { logger } from "./log.ts";

const MODES = ["monolithic", "api-server", "garbage-collector", "garbage-collector-once", "db-migrations", "check-config"] as const;
type Mode = (typeof MODES)[number];

const USAGE = `Usage: atticd [-f PATH] [-l ADDR] [--mode MODE]

Options:
  -f, --config PATH   Path to the config file (default: $ATTIC_SERVER_CONFIG_BASE64, then
                      $XDG_CONFIG_HOME/attic/server.toml, created on first run)
  -l, --listen ADDR   Socket address to listen on (overrides \`listen\` in the config)
      --mode MODE     ${MODES.join(" | ")} (default: monolithic)
  -h, --help          Print help
  -V, --version       Print version
`;

export class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: "string", short: "f" },
      listen: { type: "string", short: "l" },
      mode: { type: "string", default: "monolithic" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "V" },
      "tokio-console": { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.version) {
    process.stdout.write("atticd 0.1.0\n");
    return 0;
  }
  const mode = values.mode as Mode;
  if (!MODES.includes(mode)) throw new UsageError(`invalid value '${values.mode}' for '--mode <MODE>' (possible values: ${MODES.join(", ")})`);
  const listen = values.listen === undefined ? undefined : listenFlag(values.listen);

  console.error("Attic Server 0.1.0 (attic-ts)");
  let firstRun: { configPath: string } | null = null;
  if (!values.config && !process.env.ATTIC_SERVER_CONFIG_BASE64 && mode === "monolithic" && !existsSync(defaultConfigPath(process.env))) {
    const written = writeFirstRunConfig(process.env);
    firstRun = { configPath: written.path };
  }
  const { config } = await loadConfig({ path: values.config, env: process.env });
  if (mode === "check-config") {
    console.error("The configuration is valid.");
    return 0;
  }

  const db = await openDatabase(config.database.url, { poolSize: config.database.poolSize });
  try {
    if (mode === "db-migrations" || mode === "monolithic") {
      console.error("Running migrations...");
      const { applied } = await migrate(db);
      if (applied.length > 0) console.error(`Applied migrations: ${applied.join(", ")}`);
      if (mode === "db-migrations") return 0;
    } else {
      const pending = await pendingMigrations(db);
      if (pending.length > 0) {
        throw new UsageError(
          `The database is not migrated (${pending.length} pending migration(s): ${pending.join(", ")}). ` +
            "Run `atticd --mode db-migrations` (or start in monolithic mode) first.",
        );
      }
    }
    const storage = await createStorage(config.storage);
    if (mode === "garbage-collector-once") {
      // SIGTERM/SIGINT stop the run between steps; the next run resumes from the database state
      const stop = new AbortController();
      for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => stop.abort(new Error(`received ${sig}`)));
      const report = await runGarbageCollectionOnce({ db, storage, config: config.garbageCollection, signal: stop.signal });
      console.error(formatGcReport(report));
      return 0;
    }
    return await serve(mode, config, db, storage, listen, firstRun);
  } finally {
    await db.close();
  }
}

/** `-l ADDR`, checked before anything else runs, by the rule and with the message of `listen`. */
function listenFlag(addr: string): { host: string; port: number } {
  try {
    return parseListenAddress(addr);
  } catch (error) {
    if (error instanceof ListenAddressError) throw new UsageError(`invalid value for '--listen <ADDR>': ${error.message}`);
    throw error;
  }
}

async function serve(
  mode: Mode,
  config: Config,
  db: Db,
  storage: Awaited<ReturnType<typeof createStorage>>,
  listenOverride: { host: string; port: number } | undefined,
  firstRun: { configPath: string } | null,
): Promise<number> {
  const stops: (() => Promise<void>)[] = [];
  if (config.database.heartbeat) {
    // upstream's heartbeat: a query every minute keeps idle connections alive through proxies
    const timer = setInterval(() => {
      ping(db).catch((err: unknown) => logger.warn("database heartbeat failed", { error: String(err) }));
    }, 60_000);
    timer.unref();
    stops.push(async () => clearInterval(timer));
  }
  if (mode === "monolithic" || mode === "garbage-collector") {
    const loop = startGarbageCollectionLoop({ db, storage, config: config.garbageCollection, log: logger });
    stops.push(() => loop.stop());
  }
  if (mode === "monolithic" || mode === "api-server") {
    const app = await buildApp({ config, db, storage, logger: logger.fastifyOptions() });
    const { host, port } = listenOverride ?? parseListenAddress(config.listen);
    console.error("Starting API server...");
    await app.listen({ host, port });
    const addr = app.server.address();
    const actualPort = addr && typeof addr === "object" ? addr.port : port;
    console.error(`Listening on ${host.includes(":") ? `[${host}]` : host}:${actualPort}...`);
    if (firstRun) printFirstRunBanner(firstRun.configPath, await mintRootToken(config), actualPort);
    stops.unshift(() => app.close());
  }
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      console.error(`Received ${sig}, shutting down gracefully...`);
      resolve();
    };
    process.once("SIGTERM", () => onSignal("SIGTERM"));
    process.once("SIGINT", () => onSignal("SIGINT"));
  });
  for (const stop of stops) await stop();
  await storage.close?.();
  return 0;
}

function printFirstRunBanner(configPath: string, token: string, port: number): void {
  const line = "-----------------";
  console.error(
    [
      line,
      "Welcome to Attic!",
      "",
      "A simple setup using SQLite and local storage has been configured for you in:",
      "",
      `    ${configPath}`,
      "",
      "Run the following command to log into this server:",
      "",
      `    attic login local http://localhost:${port} ${token}`,
      "",
      "Documentation and guides:",
      "",
      "    https://docs.attic.rs",
      "",
      "Enjoy!",
      line,
    ].join("\n"),
  );
}
