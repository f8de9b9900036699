// The one logger of atticd, pino (fastify's own logger): its own lines (start-up, GC, shutdown)
// and fastify's request logs go through the same sink, in one of two formats. `pretty` (the default on a terminal) is a line a
// person reads: time, level, message, key=value fields, as upstream's tracing output looks.
// `json` (the default when stderr is not a terminal, for log collectors) is one object per
// line, pino's shape. ATTIC_LOG_FORMAT=json|pretty overrides the choice. Request logs carry
// method, URL and status only: never headers, so tokens (Authorization, netrc Basic) stay out.
// ATTIC_LOG_LEVEL (or RUST_LOG's level word, for upstream habits) sets the level; default info.
// The level is read once, when the module loads; createLogger() makes one for a given level.
// Cost: a line below the level is one number comparison (here and in pino); only written lines
// are formatted, and per-request access lines are at debug on purpose.

import { pino } from "pino";

/** pino's numbering, which fastify's request logs use too; silent is above everything */
export const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity } as const;

export type LevelName = keyof typeof LEVELS;
export type LogFormat = "pretty" | "json";

export function levelFromEnv(env: NodeJS.ProcessEnv = process.env): LevelName {
  const raw = (env.ATTIC_LOG_LEVEL ?? env.RUST_LOG ?? "info").toLowerCase();
  return Object.hasOwn(LEVELS, raw) ? (raw as LevelName) : "info";
}

/** ATTIC_LOG_FORMAT when set to json or pretty; otherwise pretty on a terminal, JSON elsewhere. */
export function formatFromEnv(env: NodeJS.ProcessEnv, stream: object): LogFormat {
  const raw = env.ATTIC_LOG_FORMAT?.toLowerCase();
  if (raw === "json" || raw === "pretty") return raw;
  return (stream as { isTTY?: boolean }).isTTY === true ? "pretty" : "json";
}

export interface Logger {
  readonly level: LevelName;
  readonly format: LogFormat;
  fastifyOptions(): object;
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

interface LineSink {
  write(line: string): unknown;
}

const NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const COLOURS: Record<number, string> = { 10: "35", 20: "34", 30: "32", 40: "33", 50: "31", 60: "31" };

/** `2025-06-01T12:00:00.123Z  INFO message key=value`; nested objects as dotted keys, stacks below. */
export function prettyLine(record: Record<string, unknown>, colour = false): string {
  const { level, time, msg, ...fields } = record;
  const name = (NAMES[level as number] ?? String(level)).padStart(5);
  const shown = colour ? `\x1b[${COLOURS[level as number] ?? "0"}m${name}\x1b[0m` : name;
  let line = `${new Date(typeof time === "number" ? time : Date.now()).toISOString()} ${shown} ${String(msg ?? "")}`;
  let stack = "";
  const add = (key: string, value: unknown, depth: number): void => {
    if (value === undefined) return;
    if (key.endsWith("stack") && typeof value === "string") stack += `\n    ${value.replace(/\n/g, "\n    ")}`;
    else if (value !== null && typeof value === "object" && !Array.isArray(value) && depth < 2) {
      for (const [k, v] of Object.entries(value)) add(`${key}.${k}`, v, depth + 1);
    } else {
      const text = typeof value === "string" ? value : JSON.stringify(value);
      line += ` ${key}=${/^[^\s"=]+$/.test(text) ? text : JSON.stringify(text)}`;
    }
  };
  for (const [key, value] of Object.entries(fields)) add(key, value, 0);
  return `${line}${stack}\n`;
}

export function createLogger(
  level: LevelName,
  stream: LineSink = process.stderr,
  format: LogFormat = formatFromEnv(process.env, stream),
): Logger {
  const colour = format === "pretty" && (stream as { isTTY?: boolean }).isTTY === true && process.env.NO_COLOR === undefined;
  // pino writes a JSON line per record it keeps (it checks the level first); in the pretty format
  // that line is re-rendered, so atticd's own lines and fastify's look alike.
  const destination: LineSink = format === "json" ? stream : { write: (line: string) => stream.write(prettyLine(JSON.parse(line) as Record<string, unknown>, colour)) };
  const options = {
    level,
    // no pid and hostname: a line carries the time, the level, the message and its fields
    base: null,
    serializers: {
      req(req: { method: string; url: string; hostname?: string }) {
        return { method: req.method, url: req.url };
      },
      res(res: { statusCode: number }) {
        return { statusCode: res.statusCode };
      },
    },
  };
  const own = pino(options, destination);
  return {
    level,
    format,
    // fastify builds its request logger from the same options and destination
    fastifyOptions: () => ({ ...options, stream: destination }),
    debug: (msg, fields = {}) => own.debug(fields, msg),
    info: (msg, fields = {}) => own.info(fields, msg),
    warn: (msg, fields = {}) => own.warn(fields, msg),
    error: (msg, fields = {}) => own.error(fields, msg),
  };
}

export const logger: Logger = createLogger(levelFromEnv());
