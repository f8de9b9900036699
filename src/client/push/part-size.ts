// The part size of a push, shared by its workers. A proxy in front of the server that refuses a
// request body as too large answers 413 before the server sees it (nginx's default
// `client_max_body_size` is 1 MiB, smaller than the server's default part of 8 MiB): the body is
// sent again in smaller parts, halved down to 1 MiB, and the size that got through is kept for
// the rest of the run. A 413 that no smaller part can avoid ends in one line naming the limit.
import { humanBytes } from "../../util/size.ts";
import { ApiError, UserError } from "../errors.ts";

/** Parts never get smaller than this: nginx's default limit, the smallest in common use. */
export const MIN_PART_SIZE = 2 ** 20;

/** A proxy refused a request body of `bytes` as too large. */
export class BodyTooLarge extends UserError {
  readonly bytes: number;

  constructor(bytes: number, sessions: boolean) {
    const size = humanBytes(bytes);
    super(
      sessions
        ? `A proxy between here and the server refused a request body of ${size} (HTTP 413, even in parts of ${humanBytes(MIN_PART_SIZE)}): raise its request body limit (nginx: client_max_body_size) to at least ${humanBytes(MIN_PART_SIZE)}`
        : `A proxy between here and the server refused a request body of ${size} (HTTP 413), and this push sends each NAR in one request (the server offers no upload sessions, or --chunk-size 0): raise the proxy's request body limit (nginx: client_max_body_size) above ${size}`,
    );
    this.name = "BodyTooLarge";
    this.bytes = bytes;
  }
}

/**
 * A 413 that did not come from atticd (whose own 413s are JSON errors with a kind, e.g.
 * `NarTooLarge`, which smaller parts cannot help): a proxy's limit on request bodies.
 */
export function isProxyTooLarge(err: unknown): boolean {
  return err instanceof ApiError && err.status === 413 && err.kind === null;
}

export class PartSizer {
  #size: number | null;

  /** `size`: the part size offered (or asked for with --chunk-size); null: no upload sessions */
  constructor(size: number | null) {
    this.#size = size;
  }

  /** The current part size; null when NARs go in single requests only. */
  get size(): number | null {
    return this.#size;
  }

  /**
   * A body of `bytes` was refused with 413: the part size to try next (at most half of it, a
   * power of two, at least 1 MiB), kept for the rest of the run. Throws the one-line
   * explanation when no smaller part is possible.
   */
  shrink(bytes: number): number {
    if (this.#size === null) throw new BodyTooLarge(bytes, false);
    if (bytes <= MIN_PART_SIZE) throw new BodyTooLarge(bytes, true);
    let next = MIN_PART_SIZE;
    while (next * 2 < bytes) next *= 2;
    // another worker may have found a smaller size that works meanwhile
    this.#size = Math.min(this.#size, next);
    return this.#size;
  }
}

/** A request body of `bytes` got a proxy's 413 (a part, or a whole NAR): the caller tries smaller parts. */
export class RefusedAsTooLarge extends UserError {
  readonly bytes: number;

  constructor(bytes: number, cause: unknown) {
    super(`a request body of ${bytes} bytes was refused as too large`, { cause });
    this.name = "RefusedAsTooLarge";
    this.bytes = bytes;
  }
}
