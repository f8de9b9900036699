// nix-cache-info: the `Key: value` file at the root of a binary cache.

export interface NixCacheInfo {
  storeDir: string;
  wantMassQuery: boolean;
  priority: number;
}

export class NixCacheInfoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NixCacheInfoError";
  }
}

/** Renders in upstream Attic's field order, e.g. `WantMassQuery: 1\nStoreDir: /nix/store\nPriority: 41\n`. */
export function renderNixCacheInfo(info: NixCacheInfo): string {
  return `WantMassQuery: ${info.wantMassQuery ? 1 : 0}\nStoreDir: ${info.storeDir}\nPriority: ${info.priority}\n`;
}

/** Parses the fields Nix reads; absent fields are left out, unknown keys ignored. */
export function parseNixCacheInfo(text: string): Partial<NixCacheInfo> {
  const out: Partial<NixCacheInfo> = {};
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "") continue;
    const colon = line.indexOf(":");
    if (colon < 0) throw new NixCacheInfoError(`expected 'Key: value', got '${line}'`);
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (key === "StoreDir") out.storeDir = value;
    else if (key === "WantMassQuery") {
      if (value !== "0" && value !== "1") throw new NixCacheInfoError(`WantMassQuery must be 0 or 1, got '${value}'`);
      out.wantMassQuery = value === "1";
    } else if (key === "Priority") {
      if (!/^[0-9]+$/.test(value)) throw new NixCacheInfoError(`Priority must be a non-negative integer, got '${value}'`);
      out.priority = Number(value);
    }
  }
  return out;
}
