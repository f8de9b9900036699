// In-process coalescing: uploads of the same NAR in this process wait for the first one instead
// of storing it again (they then deduplicate against it). Across processes, the NAR claim and its
// lease (nar-claim.ts) do the same through the database.
export class InProcessUploads {
  private readonly running = new Map<string, Promise<void>>();

  /** The upload of `narHash` running in this process, if any. */
  of(narHash: string): Promise<void> | undefined {
    return this.running.get(narHash);
  }

  /** Mark `narHash` as being uploaded until the returned function is called. */
  begin(narHash: string): () => void {
    let done!: () => void;
    this.running.set(narHash, new Promise<void>((r) => (done = r)));
    return () => {
      this.running.delete(narHash);
      done();
    };
  }
}
