// A bounded window of promises in flight: a publishing loop adds each publish and waits
// for a free slot when the window is full, so that it pipelines without queueing
// without limit. The first failure is rethrown by the next add, slot or drain.

export class Window {
  #inFlight = 0;
  #failure: { error: unknown } | undefined;
  #wake: (() => void) | undefined;
  readonly #settled = () => {
    this.#inFlight--;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  };
  readonly #failed = (error: unknown) => {
    this.#failure ??= { error };
    this.#settled();
  };

  readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  get full(): boolean {
    return this.#inFlight >= this.limit;
  }

  add(pending: Promise<unknown>): void {
    this.#check();
    this.#inFlight++;
    pending.then(this.#settled, this.#failed);
  }

  /** Resolves when a slot is free. */
  async slot(): Promise<void> {
    while (this.full) await new Promise<void>((resolve) => (this.#wake = resolve));
    this.#check();
  }

  /** Resolves when every promise added has settled. */
  async drain(): Promise<void> {
    while (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#wake = resolve));
    this.#check();
  }

  #check(): void {
    if (this.#failure) throw this.#failure.error;
  }
}
