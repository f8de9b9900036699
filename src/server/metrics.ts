// Prometheus metrics in the text exposition format, without a dependency: a few counters and
// gauges the operator needs (uploads, dedup, downloads, bytes).
export interface Metrics {
  inc(name: CounterName, value?: number, labels?: Record<string, string>): void;
  render(): string;
}

type CounterName =
  | "attic_uploads_total"
  | "attic_upload_bytes_total"
  | "attic_uploads_deduplicated_total"
  | "attic_chunks_deduplicated_total"
  | "attic_chunks_uploaded_total"
  | "attic_nar_downloads_total"
  | "attic_nar_download_bytes_total"
  | "attic_narinfo_requests_total"
  | "attic_lost_chunks_total"
  | "attic_upload_session_part_bytes_total";

const HELP: Record<CounterName, string> = {
  attic_uploads_total: "NAR uploads accepted",
  attic_upload_bytes_total: "Uncompressed NAR bytes received in uploads",
  attic_uploads_deduplicated_total: "Uploads answered from an existing NAR",
  attic_chunks_deduplicated_total: "Chunks that were already stored",
  attic_chunks_uploaded_total: "Chunks newly written to storage",
  attic_nar_downloads_total: "NAR downloads served",
  attic_nar_download_bytes_total: "Bytes of NAR downloads sent",
  attic_narinfo_requests_total: "narinfo lookups by result",
  attic_upload_session_part_bytes_total: "Bytes of upload-session part bodies received (resent parts included)",
  attic_lost_chunks_total: "Chunks whose files a NAR download found missing from storage (marked lost)",
};

export function createMetrics(): Metrics {
  const values = new Map<string, number>();
  const key = (name: string, labels?: Record<string, string>) =>
    labels && Object.keys(labels).length > 0
      ? `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`).join(",")}}`
      : name;
  return {
    inc(name, value = 1, labels) {
      const k = key(name, labels);
      values.set(k, (values.get(k) ?? 0) + value);
    },
    render() {
      const lines: string[] = [];
      for (const name of Object.keys(HELP) as CounterName[]) {
        lines.push(`# HELP ${name} ${HELP[name]}`, `# TYPE ${name} counter`);
        let any = false;
        for (const [k, v] of values) {
          if (k === name || k.startsWith(`${name}{`)) {
            lines.push(`${k} ${v}`);
            any = true;
          }
        }
        if (!any) lines.push(`${name} 0`);
      }
      const mem = process.memoryUsage();
      const gauges: [string, string, number][] = [
        ["process_resident_memory_bytes", "Resident memory", mem.rss],
        ["nodejs_heap_size_total_bytes", "V8 heap reserved", mem.heapTotal],
        ["nodejs_heap_size_used_bytes", "V8 heap in use", mem.heapUsed],
        ["nodejs_external_memory_bytes", "Memory of C++ objects bound to JavaScript objects (Buffers included)", mem.external],
      ];
      for (const [name, help, value] of gauges) lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`);
      return lines.join("\n") + "\n";
    },
  };
}
