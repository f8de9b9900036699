// The `.ls` listing of a NAR, as Nix writes it beside the NAR with `write-nar-listing=true`:
// `{"version":1,"root":<node>}`, a node being `{"type":"directory","entries":{name: node}}`,
// `{"type":"regular","size":N[,"executable":true],"narOffset":M}` (M: where the contents start
// in the NAR) or `{"type":"symlink","target":"…"}`. Built from the parser's events as the NAR
// streams past; only the tree is kept, never contents.
import { NarParser, type NarEvent } from "./parser.ts";

type ListingNode =
  | { type: "directory"; entries: Record<string, ListingNode> }
  | { type: "regular"; size: number; executable?: true; narOffset: number }
  | { type: "symlink"; target: string };

export class NarListing {
  private readonly parser: NarParser;
  private root: ListingNode | undefined;
  private readonly dirs = new Map<string, Record<string, ListingNode>>();

  constructor() {
    this.parser = new NarParser((e) => this.add(e));
  }

  /** Feeds NAR bytes; throws a NarError on a malformed NAR. */
  update(chunk: Buffer): void {
    this.parser.update(chunk);
  }

  /** The listing JSON; throws if the NAR was incomplete. */
  finish(): string {
    this.parser.end();
    return JSON.stringify({ version: 1, root: this.root });
  }

  private add(e: NarEvent): void {
    let node: ListingNode;
    switch (e.type) {
      case "contents":
        return;
      case "directory": {
        const entries: Record<string, ListingNode> = Object.create(null) as Record<string, ListingNode>;
        this.dirs.set(e.path.toString("utf8"), entries);
        node = { type: "directory", entries };
        break;
      }
      case "regular":
        node = { type: "regular", size: e.size, ...(e.executable && { executable: true as const }), narOffset: this.parser.bytesSeen };
        break;
      case "symlink":
        node = { type: "symlink", target: e.target.toString("utf8") };
        break;
    }
    const path = e.path.toString("utf8");
    if (path === "") {
      this.root = node;
      return;
    }
    const slash = path.lastIndexOf("/");
    const parent = this.dirs.get(slash < 0 ? "" : path.slice(0, slash));
    if (parent) parent[path.slice(slash + 1)] = node;
  }
}

