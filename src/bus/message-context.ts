// What a handler learns about a message besides its data: shared by the subscriber and the
// consumer, apart from both so that neither imports the other for it.
/** What a handler learns about a message besides its data. */
export interface MessageContext<P = Readonly<Record<string, string>>> {
  /** The concrete channel the message arrived on. */
  readonly channel: string;
  /** The pattern that matched, for pattern subscriptions. */
  readonly pattern: string | undefined;
  /** The channel's parameters (`{ ticker: 'AAPL' }` on TICKER_UPDATES_AAPL). */
  readonly params: P;
  /** The envelope's timestamp (undefined on bare channels). */
  readonly timestamp: string | undefined;
  /** The envelope's sender (undefined on bare channels). */
  readonly sender: string | undefined;
  /** The envelope's message id, when the writer sent one. */
  readonly id: string | undefined;
  /** The message's position in the channel's history, on channels that keep one. */
  readonly position: string | undefined;
  /** True for a message replayed from history on a resume, not received live. */
  readonly replayed: boolean;
}
