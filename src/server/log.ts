// Structured JSON logs (one object per line on stderr) for the server. Request logs carry
// method, URL and status only: never headers, so tokens (Authorization, netrc Basic) stay out.
// ATTIC_LOG_LEVEL (or RUST_LOG's level word, for upstream habits) sets the level; default info.
// The level is read once, when the module loads; createLogger() makes one for a given level.

/** pino's numbering, which fastify's request logs use too; silent is above everything */
export const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity } as const;

export type LevelName = keyof typeof LEVELS;

export function levelFromEnv(env: NodeJS.ProcessEnv = process.env): LevelName {
  const raw = (env.ATTIC_LOG_LEVEL ?? env.RUST_LOG ?? "info").toLowerCase();
  return Object.hasOwn(LEVELS, raw) ? (raw as LevelName) : "info";
}

export interface Logger {
  readonly level: LevelName;
  fastifyOptions(): object;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(level: LevelName, stream: { write(line: string): unknown } = process.stderr): Logger {
  const threshold = LEVELS[level];
  const write = (at: number, msg: string, fields: Record<string, unknown>) => {
    if (at < threshold) return;
    stream.write(JSON.stringify({ level: at, time: Date.now(), msg, ...fields }) + "\n");
  };
  return {
    level,
    fastifyOptions(): object {
      return {
        level,
        stream,
        serializers: {
          req(req: { method: string; url: string; hostname?: string }) {
            return { method: req.method, url: req.url };
          },
          res(res: { statusCode: number }) {
            return { statusCode: res.statusCode };
          },
        },
      };
    },
    info: (msg, fields = {}) => write(LEVELS.info, msg, fields),
    warn: (msg, fields = {}) => write(LEVELS.warn, msg, fields),
    error: (msg, fields = {}) => write(LEVELS.error, msg, fields),
  };
}

export const logger: Logger = createLogger(levelFromEnv());
