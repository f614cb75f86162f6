// Throttling of log lines, apart from the logger so that code which only counts (the CLI's
// start-up path) need not load pino.
/**
 * Logs at most `perSecond` lines a second for one kind of event and then counts the rest,
 * so that a flood of garbage on a channel cannot flood the logs too.
 */
export class LogThrottle {
  #windowStart = 0;
  #inWindow = 0;
  #suppressed = 0;

  private readonly perSecond: number;
  private readonly windowMs: number;

  /** At most `perSecond` lines per window (a second unless `windowMs` says otherwise). */
  constructor(perSecond = 10, windowMs = 1000) {
    this.perSecond = perSecond;
    this.windowMs = windowMs;
  }

  /** Returns how many lines were suppressed before this one, or -1 when this one is suppressed too. */
  take(now: number = Date.now()): number {
    if (now - this.#windowStart >= this.windowMs) {
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    if (this.#inWindow >= this.perSecond) {
      this.#suppressed++;
      return -1;
    }
    this.#inWindow++;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return suppressed;
  }
}
