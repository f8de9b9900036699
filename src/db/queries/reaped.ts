// An upload's own pending rows (its NAR, chunks it wrote or holds) were taken by garbage
// collection before it could finish: it ran longer than the grace period for unfinished uploads,
// or its claim lapsed while the database was out of reach. Nothing it stored can be published;
// the upload must start again (the server answers 503 so clients retry).
export class UploadRowsReaped extends Error {
  constructor(what: string) {
    super(`${what} was removed by garbage collection before the upload finished (it outlived the grace period for unfinished uploads); retry the upload`);
    this.name = "UploadRowsReaped";
  }
}
