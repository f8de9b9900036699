// A minimal async FIFO: producers push, consumers await `next()`; after `close()`, `next()`
// drains what is left and then yields undefined.
export class AsyncQueue<T> {
  readonly #items: T[] = [];
  readonly #waiters: ((item: T | undefined) => void)[] = [];
  #closed = false;

  push(item: T): void {
    if (this.#closed) throw new Error("push on a closed queue");
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter(item);
    else this.#items.push(item);
  }

  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
  }

  get closed(): boolean {
    return this.#closed;
  }

  next(): Promise<T | undefined> {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift());
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}
