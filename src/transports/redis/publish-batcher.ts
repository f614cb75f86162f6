// The turn batching of the publish path: publishes issued in the same turn of the event
// loop are queued and go out together, after it, in chunks bounded by count and size (one
// script call each, see publish-scripts.ts). On a cluster a chunk holds one node's messages.
import type { PublishReceipt } from '../transport.ts';
import type { ScriptMessage } from './publish-scripts.ts';

/** Messages per script call, and characters of payload per call, at most. */
const CHUNK_MESSAGES = 256;
const CHUNK_CHARS = 1 << 20;

/** Where the answers of messages go: the promise of one publish(), or of one publishBatch(). */
export interface Settle {
  resolve(index: number, receipt: PublishReceipt): void;
  reject(index: number, error: Error): void;
}

/** The promise of one publish(). */
export class OneReceipt implements Settle {
  readonly #resolve: (receipt: PublishReceipt) => void;
  readonly #reject: (error: Error) => void;

  constructor(resolve: (receipt: PublishReceipt) => void, reject: (error: Error) => void) {
    this.#resolve = resolve;
    this.#reject = reject;
  }

  resolve(_index: number, receipt: PublishReceipt): void {
    this.#resolve(receipt);
  }

  reject(_index: number, error: Error): void {
    this.#reject(error);
  }
}

/**
 * The promise of one publishBatch(): the receipts in order once all are in, or the first
 * error (as Promise.all of each message's publish would give, without a promise each).
 */
export class BatchReceipts implements Settle {
  readonly receipts: PublishReceipt[];
  #left: number;
  #failed = false;
  readonly #resolve: (receipts: PublishReceipt[]) => void;
  readonly #reject: (error: Error) => void;

  constructor(size: number, resolve: (receipts: PublishReceipt[]) => void, reject: (error: Error) => void) {
    this.receipts = new Array<PublishReceipt>(size);
    this.#left = size;
    this.#resolve = resolve;
    this.#reject = reject;
    if (size === 0) resolve(this.receipts);
  }

  resolve(index: number, receipt: PublishReceipt): void {
    this.receipts[index] = receipt;
    if (--this.#left === 0 && !this.#failed) this.#resolve(this.receipts);
  }

  reject(_index: number, error: Error): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#reject(error);
  }
}

/** A message on its way, and where its answer goes (its index in a batch; 0 alone). */
export interface PendingPublish extends ScriptMessage {
  readonly settle: Settle;
  readonly index: number;
  /** Sent again on its own after a node refused it (slots moved): once only. */
  readonly resent?: boolean;
}

export class PublishBatcher {
  #pending: PendingPublish[] = [];
  #scheduled = false;
  readonly #send: (chunk: PendingPublish[]) => void;
  readonly #nodeOf: ((channel: string) => string) | undefined;

  /** `nodeOf`: on a cluster, the node that serves a channel's slot; undefined on one Redis. */
  constructor(send: (chunk: PendingPublish[]) => void, nodeOf: ((channel: string) => string) | undefined) {
    this.#send = send;
    this.#nodeOf = nodeOf;
  }

  /** Nothing queued: a publish now would overtake nothing. */
  get empty(): boolean {
    return this.#pending.length === 0;
  }

  /** Queues a message; the queue goes out after this turn of the event loop. */
  push(p: PendingPublish): void {
    this.#pending.push(p);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Sends what is queued now. */
  readonly flush = (): void => {
    this.#scheduled = false;
    const all = this.#pending;
    this.#pending = [];
    this.dispatch(all);
  };

  /**
   * Sends `all` now, in chunks (by node on a cluster), without queueing: for a batch the
   * caller already gathered, when nothing is queued ahead of it.
   */
  dispatch(all: PendingPublish[]): void {
    const nodeOf = this.#nodeOf;
    if (nodeOf === undefined) {
      this.#chunked(all);
      return;
    }
    // A script runs on one node: group by the node that serves the channel's slot (a
    // channel's messages keep their order: they all go to one node, on one connection).
    // The scripts declare they may touch keys of several slots of that node. Classic
    // publishes too, though any node could take them, so that two of one channel never
    // take two routes.
    const groups = new Map<string, PendingPublish[]>();
    for (const p of all) {
      const slot = nodeOf(p.channel);
      const group = groups.get(slot);
      if (group) group.push(p);
      else groups.set(slot, [p]);
    }
    for (const group of groups.values()) this.#chunked(group);
  }

  /** Sends messages in chunks bounded by count and size. */
  #chunked(all: PendingPublish[]): void {
    let start = 0;
    while (start < all.length) {
      let end = start;
      let chars = 0;
      while (end < all.length && end - start < CHUNK_MESSAGES && (end === start || chars < CHUNK_CHARS)) {
        chars += (all[end] as PendingPublish).payload.length;
        end++;
      }
      this.#send(all.slice(start, end));
      start = end;
    }
  }
}
