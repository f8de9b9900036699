import { pipeline, type Readable, type Transform } from "node:stream";

/**
 * source → transforms…, returned as the last (readable) stream. Unlike `.pipe`, an error or
 * abort anywhere destroys every stream and surfaces on the returned one.
 */
export function chain(source: Readable, ...transforms: Transform[]): Readable {
  const last = transforms.at(-1);
  if (!last) return source;
  pipeline([source, ...transforms], (err) => {
    if (err) last.destroy(err);
  });
  return last;
}
