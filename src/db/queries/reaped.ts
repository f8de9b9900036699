// An upload's own pending rows (its NAR, chunks it wrote or holds) were taken by garbage
// collection before it could finish: it ran longer than the grace period for unfinished uploads,
// or its claim lapsed while the database was out of reach. Nothing it stored can be published;
// the upload must start again (the server answers 503 so clients retry).
export class UploadRowsReaped extends Error {
  /** `what`: the rows and what they are now, e.g. "the pending NAR 12 is no longer pending" */
  constructor(what: string) {
    super(`${what}: removed by garbage collection before the upload finished (it outlived the grace period for unfinished uploads); retry the upload`);
    this.name = "UploadRowsReaped";
  }
}
