// upstream's `remote_file_id`: the unique text form of a `RemoteFile`, one per stored file.
import type { RemoteFile } from "./types.ts";

export function remoteFileId(remoteFile: RemoteFile): string {
  if ("Local" in remoteFile) return `local:${remoteFile.Local.name}`;
  if ("S3" in remoteFile) {
    const { region, bucket, key } = remoteFile.S3;
    return `s3:${region}/${bucket}/${key}`;
  }
  return `http:${remoteFile.Http.url}`;
}
