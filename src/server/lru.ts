// A least-recently-used map bounded by a total weight (entries by default, or bytes), for the
// per-process caches of the hot paths: parsed signing keys, verified tokens, rendered narinfo.
// Each holds only what can be derived again from its key, so dropping an entry is always safe.

export class LruCache<K, V> {
  readonly #map = new Map<K, { value: V; weight: number }>();
  readonly #capacity: number;
  readonly #weigh: (key: K, value: V) => number;
  #total = 0;

  constructor(capacity: number, weigh: (key: K, value: V) => number = () => 1) {
    this.#capacity = capacity;
    this.#weigh = weigh;
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: K): V | undefined {
    const entry = this.#map.get(key);
    if (!entry) return undefined;
    // most recently used last
    this.#map.delete(key);
    this.#map.set(key, entry);
    return entry.value;
  }

  set(key: K, value: V): void {
    this.delete(key);
    const weight = this.#weigh(key, value);
    if (weight > this.#capacity) return;
    this.#map.set(key, { value, weight });
    this.#total += weight;
    for (const [oldest, entry] of this.#map) {
      if (this.#total <= this.#capacity) break;
      this.#map.delete(oldest);
      this.#total -= entry.weight;
    }
  }

  delete(key: K): void {
    const entry = this.#map.get(key);
    if (!entry) return;
    this.#map.delete(key);
    this.#total -= entry.weight;
  }
}
