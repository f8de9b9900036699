// The client's sizes: `--max-size 10 GiB` parsed (util/size.ts) with the client's messages, and
// speeds and sizes printed as upstream's client does.
import { humanBytes, parseSizeText } from "../util/size.ts";
import { UserError } from "./errors.ts";

export { humanBytes };

/** `1073741824`, `10 GiB`, `1.5G`, `500 MB` → bytes. IEC and single letters are powers of 1024. */
export function parseSize(s: string): number {
  const bytes = parseSizeText(s);
  if (bytes === null) {
    throw new UserError(`Invalid size "${s}": expected a number of bytes, optionally with a unit such as "10 GiB" or "500 MB"`);
  }
  if (!Number.isSafeInteger(bytes)) throw new UserError(`Invalid size "${s}": too large`);
  return bytes;
}
