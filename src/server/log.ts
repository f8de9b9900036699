// Structured JSON logs (one object per line on stderr) for the server. Request logs carry
// method, URL and status only: never headers, so tokens (Authorization, netrc Basic) stay out.
// ATTIC_LOG_LEVEL (or RUST_LOG's level word, for upstream habits) sets the level; default info.

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

function levelFromEnv(): string {
  const raw = (process.env.ATTIC_LOG_LEVEL ?? process.env.RUST_LOG ?? "info").toLowerCase();
  return (LEVELS as readonly string[]).includes(raw) ? raw : "info";
}

export const logger = {
  fastifyOptions(): object {
    return {
      level: levelFromEnv(),
      stream: process.stderr,
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
  info(msg: string, fields: Record<string, unknown> = {}): void {
    if (levelFromEnv() === "silent") return;
    process.stderr.write(JSON.stringify({ level: 30, time: Date.now(), msg, ...fields }) + "\n");
  },
  warn(msg: string, fields: Record<string, unknown> = {}): void {
    if (levelFromEnv() === "silent" || levelFromEnv() === "error" || levelFromEnv() === "fatal") return;
    process.stderr.write(JSON.stringify({ level: 40, time: Date.now(), msg, ...fields }) + "\n");
  },
  error(msg: string, fields: Record<string, unknown> = {}): void {
    process.stderr.write(JSON.stringify({ level: 50, time: Date.now(), msg, ...fields }) + "\n");
  },
};

export type Logger = typeof logger;
