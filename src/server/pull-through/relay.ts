// The first download of a path fetched from upstream: the NAR goes to the client as it arrives
// (at the upstream's pace, not the store's: compressing chunks for storage is slower than a LAN)
// and, decoded, to a spool file on disk, which the store reads afterwards. NarHash and NarSize
// are checked as the bytes pass; the client's last piece is held back until they match, so a
// wrong or cut NAR is never delivered complete. A client that goes away does not stop the fetch.
// When the upstream's compression is the one our narinfo announces, the client gets the
// upstream's bytes as they are (no second compression); otherwise the decoded NAR, compressed.
import { createHash } from "node:crypto";
import { once } from "node:events";
import type { WriteStream } from "node:fs";
import type { PassThrough, Readable } from "node:stream";
import type { NixHash } from "../../nix/hash.ts";

export type RelayOutcome = { ok: true } | { ok: false; reason: string; cause?: unknown };

/** The client's side: every piece but the last is sent at once; the last waits for the verdict. */
export class ClientSink {
  private held: Buffer | null = null;
  private gone = false;
  private readonly live: PassThrough;
  private readonly out: Readable;

  constructor(live: PassThrough, out: Readable) {
    this.live = live;
    this.out = out;
    out.once("close", () => (this.gone = true));
  }

  async send(piece: Buffer): Promise<void> {
    const previous = this.held;
    this.held = piece;
    if (!previous || this.gone || this.live.write(previous)) return;
    await Promise.race([once(this.live, "drain"), once(this.out, "close")]).catch(() => {});
  }

  finish(): void {
    if (this.held && !this.gone) this.live.write(this.held);
    this.live.end();
  }

  fail(): void {
    this.live.destroy(new Error("the upstream NAR could not be fetched and verified"));
  }
}

/** Pieces of `raw` passed on to the client as they are read (the upstream file as it is). */
export async function* passThroughTo(sink: ClientSink, raw: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  for await (const piece of raw) {
    await sink.send(piece);
    yield piece;
  }
}

/**
 * Read the decoded NAR into `spool`, checking it; `sink` gets the decoded pieces unless the
 * client is fed the raw file (`clientHasRaw`). Ends or fails the client's stream.
 */
export async function relay(
  decoded: AsyncIterable<Buffer>,
  sink: ClientSink,
  clientHasRaw: boolean,
  spool: WriteStream,
  expected: { narHash: NixHash; narSize: number },
): Promise<RelayOutcome> {
  const fail = (reason: string, cause?: unknown): RelayOutcome => {
    sink.fail();
    return { ok: false, reason, cause };
  };
  const hash = createHash("sha256");
  let size = 0;
  try {
    for await (const piece of decoded) {
      size += piece.length;
      if (size > expected.narSize) return fail("the NAR is longer than its NarSize");
      hash.update(piece);
      if (!clientHasRaw) await sink.send(piece);
      if (!spool.write(piece)) await once(spool, "drain");
    }
    await new Promise<void>((resolve, reject) => spool.end((err?: Error | null) => (err ? reject(err) : resolve())));
  } catch (cause) {
    return fail("the upstream transfer failed", cause);
  }
  if (size !== expected.narSize) return fail(`the NAR has ${size} bytes, its NarSize is ${expected.narSize}`);
  if (!hash.digest().equals(expected.narHash.digest)) return fail("the NAR does not match its NarHash");
  sink.finish();
  return { ok: true };
}
