// One circuit breaker per upstream URL, per process (issue 27, item 6): after `threshold`
// consecutive failures the upstream is left alone for `cooldownMs` (misses answer 404 at once,
// with no request and no wait); then one request probes it, and a success closes the breaker.
export class Breakers {
  private readonly state = new Map<string, { failures: number; openUntil: number; probing: boolean }>();
  private readonly threshold: number;
  private readonly cooldownMs: number;

  constructor(threshold: number, cooldownMs: number) {
    this.threshold = threshold;
    this.cooldownMs = cooldownMs;
  }

  /** May a request go to `url` now? A half-open breaker lets exactly one probe through. */
  allow(url: string): boolean {
    const s = this.state.get(url);
    if (!s || s.failures < this.threshold) return true;
    if (Date.now() < s.openUntil || s.probing) return false;
    s.probing = true;
    return true;
  }

  isOpen(url: string): boolean {
    const s = this.state.get(url);
    return s !== undefined && s.failures >= this.threshold;
  }

  success(url: string): void {
    this.state.delete(url);
  }

  failure(url: string): void {
    const s = this.state.get(url) ?? { failures: 0, openUntil: 0, probing: false };
    s.failures++;
    s.probing = false;
    if (s.failures >= this.threshold) s.openUntil = Date.now() + this.cooldownMs;
    this.state.set(url, s);
  }
}
