// atticd: `atticd [-f PATH] [-l ADDR] [--mode MODE]`. Loads the config (running the first-run
// setup when there is none), then runs the mode: monolithic (migrations + GC loop + API),
// api-server (API only, refuses an unmigrated database), garbage-collector (GC loop),
// garbage-collector-once, db-migrations, check-config.
import { existsSync } from "node:fs";
import { Command, InvalidArgumentError, Option } from "commander";
import type { FastifyInstance } from "fastify";
import { UserError } from "../cli/errors.ts";
import { addExample } from "../cli/help.ts";
import { reportError, type ErrorOutput } from "../cli/report.ts";
import { version } from "../cli/version.ts";
import { openDatabase, ping, type Db } from "../db/connect.ts";
import { migrate, pendingMigrations } from "../db/migrations/index.ts";
import { startGarbageCollectionLoop, runGarbageCollectionOnce, formatGcReport } from "../gc/index.ts";
import { createStorage } from "../storage/index.ts";
import type { StorageDriver } from "../storage/types.ts";
import { buildApp } from "./app.ts";
import { loadConfig } from "./config/load.ts";
import { defaultConfigPath, mintRootToken, writeFirstRunConfig } from "./config/first-run.ts";
import type { Config } from "./config/types.ts";
import { ListenAddressError, parseListenAddress } from "./listen.ts";
import { logger } from "./log.ts";
import { applyDeclarations } from "./bootstrap.ts";
import { startMetricsListener } from "./metrics-listener.ts";

export const MODES = ["monolithic", "api-server", "garbage-collector", "garbage-collector-once", "db-migrations", "check-config"] as const;
type Mode = (typeof MODES)[number];

interface AtticdOptions {
  config?: string;
  listen?: { host: string; port: number };
  mode: Mode;
}

/** atticd's flags, upstream's names; commander as in attic and atticadm. */
export function buildProgram(run: (options: AtticdOptions) => Promise<void>, out: ErrorOutput & { write(text: string): unknown } = process.stderr): Command {
  const program = new Command("atticd")
    .description("Attic binary cache server.")
    .version(version(), "-V, --version", "Print version")
    .helpOption("-h, --help", "Print help")
    .option("-f, --config <path>", "Path to the config file (default: $ATTIC_SERVER_CONFIG_BASE64, then $XDG_CONFIG_HOME/attic/server.toml, written on the first start)")
    .option("-l, --listen <addr>", "Socket address to listen on, such as [::]:8080 or 127.0.0.1:8080 (overrides `listen` in the config)", listenFlag)
    .addOption(new Option("--mode <mode>", "What to run").choices(MODES).default("monolithic"))
    // upstream's flag for its async-runtime console; accepted and ignored
    .addOption(new Option("--tokio-console").hideHelp())
    .showHelpAfterError("(add --help for more information)")
    .exitOverride()
    .configureOutput({ writeErr: (text) => out.write(text), outputError: (text, write) => write(text.replace(/^error: /, "Error: ")) })
    .action(async (opts: AtticdOptions) => run(opts));
  addExample(
    program,
    "atticd                                   # first start: writes a config and prints a login command",
    "atticd -f /etc/attic/server.toml -l [::]:8080",
    "atticd -f server.toml --mode check-config",
  );
  return program;
}

/** Runs atticd with `argv` (node, script, args…): the one top-level catch; returns the exit code. */
export async function main(argv: string[], stderr: ErrorOutput = process.stderr): Promise<number> {
  try {
    let code = 0;
    await buildProgram(async (options) => {
      code = await run(options);
    }, stderr).parseAsync(argv);
    return code;
  } catch (error) {
    return reportError("atticd", error, stderr);
  }
}

/** `-l ADDR`, checked while parsing, before anything else runs, by the rule and with the message of `listen`. */
function listenFlag(addr: string): { host: string; port: number } {
  try {
    return parseListenAddress(addr);
  } catch (error) {
    if (error instanceof ListenAddressError) throw new InvalidArgumentError(error.message);
    throw error;
  }
}

async function run({ config: configPath, listen, mode }: AtticdOptions): Promise<number> {
  logger.info(`Attic Server ${version()} (attic-ts)`, { mode });
  let firstRun: { configPath: string } | null = null;
  if (!configPath && !process.env.ATTIC_SERVER_CONFIG_BASE64 && mode === "monolithic" && !existsSync(defaultConfigPath(process.env))) {
    const written = writeFirstRunConfig(process.env);
    firstRun = { configPath: written.path };
  }
  const { config } = await loadConfig({ path: configPath, env: process.env });
  if (mode === "check-config") {
    logger.info("The configuration is valid.");
    return 0;
  }

  const db = await openDatabase(config.database.url, { poolSize: config.database.poolSize });
  let storage: StorageDriver | undefined;
  try {
    if (mode === "db-migrations" || mode === "monolithic") {
      logger.info("Running migrations...");
      const { applied } = await migrate(db);
      if (applied.length > 0) logger.info(`Applied migrations: ${applied.join(", ")}`);
      if (mode === "db-migrations") return 0;
    } else {
      const pending = await pendingMigrations(db);
      if (pending.length > 0) {
        throw new UserError(
          `The database is not migrated (${pending.length} pending migration(s): ${pending.join(", ")}). ` +
            "Run `atticd --mode db-migrations` (or start in monolithic mode) first.",
        );
      }
    }
    if (mode === "monolithic" || mode === "api-server") {
      const changes = await applyDeclarations(db, config);
      for (const change of changes) logger.info(`Declared in the config: ${change}`);
    }
    storage = await createStorage(config.storage);
    if (mode === "garbage-collector-once") {
      // SIGTERM/SIGINT stop the run between steps; the next run resumes from the database state
      const stop = new AbortController();
      for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => stop.abort(new Error(`received ${sig}`)));
      const report = await runGarbageCollectionOnce({
        db,
        storage,
        config: gcConfig(config),
        stagingPath: config.nixProtocol.stagingPath,
        signal: stop.signal,
      });
      logger.info(formatGcReport(report).replace(/\n\s*/g, " "), { gc: { ...report } });
      return 0;
    }
    return await serve(mode, config, db, storage, listen, firstRun);
  } finally {
    // in the API modes the app has closed both already (closing again is harmless)
    await storage?.close?.();
    await db.close();
  }
}

async function serve(
  mode: Mode,
  config: Config,
  db: Db,
  storage: StorageDriver,
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
    const loop = startGarbageCollectionLoop({ db, storage, config: gcConfig(config), stagingPath: config.nixProtocol.stagingPath, log: logger });
    stops.push(() => loop.stop());
  }
  const stopAll = async () => {
    for (const stop of stops) await stop();
  };
  let app: FastifyInstance | undefined;
  if (mode === "monolithic" || mode === "api-server") {
    app = await buildApp({ config, db, storage, logger: logger.fastifyOptions() });
    // once in-flight requests are done, and before the app closes the database and storage (its
    // own onClose hook, registered first, runs last)
    app.addHook("onClose", stopAll);
    const { host, port } = listenOverride ?? parseListenAddress(config.listen);
    logger.info("Starting API server...");
    try {
      await app.listen({ host, port });
    } catch (error) {
      // a port in use, a privileged port: stop what runs already, then report it (one line)
      await app.close().catch(() => {});
      throw error;
    }
    const addr = app.server.address();
    const actualPort = addr && typeof addr === "object" ? addr.port : port;
    logger.info(`Listening on ${host.includes(":") ? `[${host}]` : host}:${actualPort}...`);
    if (config.metrics.listen !== null) {
      const address = parseListenAddress(config.metrics.listen);
      const metricsServer = await startMetricsListener(app.metrics, address, config.metrics.token);
      stops.unshift(() => new Promise<void>((resolve) => metricsServer.close(() => resolve())));
      logger.info(`Metrics on ${config.metrics.listen}/metrics`);
    }
    if (firstRun) printFirstRunBanner(firstRun.configPath, await mintRootToken(config), actualPort);
  }
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      logger.info(`Received ${sig}, shutting down gracefully...`);
      resolve();
    };
    process.once("SIGTERM", () => onSignal("SIGTERM"));
    process.once("SIGINT", () => onSignal("SIGINT"));
  });
  if (app) await app.close();
  else await stopAll();
  return 0;
}

/**
 * The one text atticd prints outside the logger: a message for the person who just started it,
 * to copy a command from (as upstream prints it), identical in both log formats.
 */
function printFirstRunBanner(configPath: string, token: string, port: number): void {
  const line = "-----------------";
  process.stderr.write(
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
      "",
    ].join("\n"),
  );
}

/** The GC's config: its table, and where upload sessions stage parts (swept for crash leftovers). */
function gcConfig(config: Config): Config["garbageCollection"] & { uploadStagingPath: string } {
  return { ...config.garbageCollection, uploadStagingPath: config.upload.stagingPath };
}
