// Statements the hot paths run again and again (narinfo, NAR, cache lookups: see
// queries/prepared.ts), by their SQL text. The PostgreSQL driver runs these as named prepared
// statements, so each connection parses and plans them once instead of on every request (the
// planning of the narinfo join costs more than running it). Only registered texts are named:
// statements whose text varies (batches of any size) would fill every connection's cache.
const names = new Map<string, string>();

export function registerHotStatement(sqlText: string): void {
  if (!names.has(sqlText)) names.set(sqlText, `attic_hot_${names.size + 1}`);
}

export function hotStatementName(sqlText: string): string | undefined {
  return names.get(sqlText);
}
