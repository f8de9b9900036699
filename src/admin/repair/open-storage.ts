// The configured storage backend, for tools that run beside the server (atticadm).
import { createStorage } from "../../storage/index.ts";
import type { StorageDriver } from "../../storage/types.ts";
import type { Config } from "../../server/config/types.ts";

export function openStorage(config: Config): Promise<StorageDriver> {
  return createStorage(config.storage);
}
