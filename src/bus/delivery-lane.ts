// Ordered, isolated delivery to one handler. Messages of one channel reach the handler in
// order: while an async handler works on a message, later messages of that channel wait.
// Other channels have lanes of their own, so a slow handler on AAPL does not stall MSFT.
// A lane that falls more than `maxPending` behind drops its oldest message and says so:
// memory stays bounded and the newest prices win.

export interface LaneHooks<M> {
  /** The handler threw or rejected. */
  onError(error: unknown, message: M): void;
  /** A queued message was dropped because the lane was full. */
  onDrop(message: M): void;
}

interface Lane<M> {
  queue: M[];
  head: number;
}

export class DeliveryLanes<M> {
  readonly #lanes = new Map<string, Lane<M>>();
  #closed = false;

  private readonly handler: (message: M) => unknown;
  private readonly hooks: LaneHooks<M>;
  private readonly maxPending: number;

  constructor(handler: (message: M) => unknown, hooks: LaneHooks<M>, maxPending: number) {
    this.handler = handler;
    this.hooks = hooks;
    this.maxPending = maxPending;
  }

  deliver(key: string, message: M): void {
    if (this.#closed) return;
    const lane = this.#lanes.get(key);
    if (lane) {
      // Busy: an earlier message of this channel is still being handled.
      if (lane.queue.length - lane.head >= this.maxPending) {
        const dropped = lane.queue[lane.head] as M;
        lane.head++;
        this.hooks.onDrop(dropped);
      }
      lane.queue.push(message);
      return;
    }
    this.#run(key, message, undefined);
  }

  /** Messages waiting (not counting the ones being handled). */
  get pending(): number {
    let n = 0;
    for (const lane of this.#lanes.values()) n += lane.queue.length - lane.head;
    return n;
  }

  /** Stops delivering; queued messages are discarded. */
  close(): void {
    this.#closed = true;
    this.#lanes.clear();
  }

  /** Calls the handler; returns true when it went async (the lane is then busy until it settles). */
  #run(key: string, message: M, lane: Lane<M> | undefined): boolean {
    let result: unknown;
    try {
      result = this.handler(message);
    } catch (error) {
      this.hooks.onError(error, message);
      return false;
    }
    if (result === null || typeof result !== 'object' || typeof (result as PromiseLike<unknown>).then !== 'function') return false;
    const busy = lane ?? { queue: [], head: 0 };
    if (!lane) this.#lanes.set(key, busy);
    (result as PromiseLike<unknown>).then(
      () => this.#drain(key, busy),
      (error: unknown) => {
        this.hooks.onError(error, message);
        this.#drain(key, busy);
      },
    );
    return true;
  }

  /** Runs queued messages until one goes async or the lane is empty (a loop, not recursion). */
  #drain(key: string, lane: Lane<M>): void {
    while (!this.#closed) {
      if (lane.head >= lane.queue.length) {
        this.#lanes.delete(key); // idle lanes cost nothing: ten thousand tickers, few lanes
        return;
      }
      const message = lane.queue[lane.head] as M;
      lane.queue[lane.head] = undefined as M; // release for GC
      lane.head++;
      if (lane.head > 1024 && lane.head * 2 > lane.queue.length) {
        lane.queue = lane.queue.slice(lane.head);
        lane.head = 0;
      }
      if (this.#run(key, message, lane)) return;
    }
  }
}
