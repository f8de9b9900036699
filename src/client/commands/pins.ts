// `attic pins CACHE` (ours): the pins of a cache, one per line (data, so on stdout). Needs pull.
import { connect } from "../connect.ts";
import { print, say, type Ctx } from "../context.ts";

export type PinsOptions = { cache: string };

export async function run(options: PinsOptions, ctx: Ctx): Promise<void> {
  const { cache, api } = await connect(ctx, options.cache);
  const pins = await api.listPins(cache);
  if (pins.length === 0) {
    say(ctx, `No pins in "${cache}".`);
    return;
  }
  const width = Math.max(...pins.map((p) => p.name.length));
  for (const p of pins) print(ctx, `${p.name.padEnd(width)}  ${p.store_path}  (${p.paths} paths, by ${p.created_by ?? "?"}, ${p.created_at})`);
}
