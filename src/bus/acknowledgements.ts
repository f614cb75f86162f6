// A consumer's acknowledgements. One that does not reach Redis (the connection is down) is
// kept and sent again before the next read: no new work is taken while finished work
// cannot be acknowledged, and an entry this consumer finished is never run again when a
// re-read of its pending entries or a claim hands it back (it is acknowledged instead). The
// two connections of a link come back from an outage at different times; without this,
// every batch read in between was redone.
import { BusError, NotConnectedError, TransportError, describeValue } from '../core/errors.ts';
import type { StreamEntry, StreamLink } from '../transports/transport.ts';

/** Acknowledgements per XACK when an outage held many back. */
const ACK_RESEND_CHUNK = 500;

export interface AckHooks {
  /** Redis confirmed `n` acknowledgements, each counted once however often it was sent. */
  confirmed(n: number): void;
  /** An acknowledgement failed for another reason than a lost connection. */
  report(error: BusError): void;
  /** Where the bookkeeping of a send reports a failure of its own (Background.catcher). */
  catcher: (error: unknown) => void;
}

export class Acknowledgements {
  readonly #link: StreamLink;
  readonly #key: string;
  readonly #group: string;
  readonly #channel: string;
  readonly #hooks: AckHooks;
  readonly #acking = new Set<Promise<void>>();
  /** Handled, but Redis has not confirmed the acknowledgement (on its way, or failed): never run again. */
  readonly #unacked = new Set<string>();
  /** Of those, the ones whose XACK failed: sent again before the next read. */
  readonly #resend = new Set<string>();

  constructor(link: StreamLink, key: string, group: string, channel: string, hooks: AckHooks) {
    this.#link = link;
    this.#key = key;
    this.#group = group;
    this.#channel = channel;
    this.#hooks = hooks;
  }

  /** Are acknowledgements owed from an outage? */
  get owed(): boolean {
    return this.#resend.size > 0;
  }

  /**
   * Of entries handed back (this consumer's pending ones, or claimed), those to run: not
   * the ones at work or waiting for a retry (`busy`), and not the ones already handled whose
   * acknowledgement has not been confirmed; those are acknowledged (again) instead.
   */
  notYetDone(entries: readonly StreamEntry[], busy: ReadonlySet<string>): StreamEntry[] {
    const done: string[] = [];
    const fresh: StreamEntry[] = [];
    for (const e of entries) {
      if (this.#unacked.has(e.id)) done.push(e.id);
      else if (!busy.has(e.id)) fresh.push(e);
    }
    if (done.length > 0) {
      for (const id of done) this.#resend.delete(id);
      this.send(done);
    }
    return fresh;
  }

  /**
   * Sends an acknowledgement; settled() waits for those still on their way. One that fails
   * is kept for resend(), which the consumer runs before its next read.
   */
  send(ids: string[]): void {
    for (const id of ids) this.#unacked.add(id);
    const sending = this.#link.ack(this.#key, this.#group, ids).then(
      () => this.#confirmed(ids),
      (error: unknown) => {
        for (const id of ids) if (this.#unacked.has(id)) this.#resend.add(id);
        if (!(error instanceof NotConnectedError)) this.#hooks.report(error instanceof BusError ? error : new TransportError(describeValue(error), { cause: error, channel: this.#channel }));
      },
    );
    this.#acking.add(sending);
    sending.finally(() => this.#acking.delete(sending)).catch(this.#hooks.catcher);
  }

  /** Sends again the acknowledgements an outage held back; rejects while Redis is unreachable. */
  async resend(): Promise<void> {
    const ids = [...this.#resend];
    for (let i = 0; i < ids.length; i += ACK_RESEND_CHUNK) {
      const chunk = ids.slice(i, i + ACK_RESEND_CHUNK);
      await this.#link.ack(this.#key, this.#group, chunk);
      for (const id of chunk) this.#resend.delete(id);
      this.#confirmed(chunk);
    }
  }

  /** Waits for the acknowledgements on their way. */
  async settled(): Promise<void> {
    await Promise.all(this.#acking);
  }

  #confirmed(ids: readonly string[]): void {
    let n = 0;
    for (const id of ids) if (this.#unacked.delete(id)) n++;
    if (n > 0) this.#hooks.confirmed(n);
  }
}
