// The `.ls` listing of a NAR, computed while it is stored (issue 17): the upload's bytes pass
// through a NAR parser that keeps only the tree. A malformed NAR is the pipeline's to refuse
// (its validator names the problem); the tap just stops listing.
import { compressBuffer } from "../../compression/index.ts";
import { NarListing } from "../../nix/nar/listing.ts";

export class ListingTap {
  private readonly listing = new NarListing();
  private failed = false;

  async *tap(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const piece of source) {
      if (!this.failed) {
        try {
          this.listing.update(piece);
        } catch {
          this.failed = true;
        }
      }
      yield piece;
    }
  }

  /** The listing JSON, zstd-compressed; null when the NAR did not parse. */
  async compressed(): Promise<Buffer | null> {
    if (this.failed) return null;
    let json: string;
    try {
      json = this.listing.finish();
    } catch {
      return null;
    }
    return compressBuffer("zstd", 3, Buffer.from(json));
  }
}
