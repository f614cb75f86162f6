// What the market-data stream is subscribed to, as pure state: the tickers wanted, what Alpaca
// last echoed back, and the subscribe/unsubscribe requests still unanswered. Inputs are method
// calls (the user's changes, the session coming up or going down, Alpaca's echoes and errors);
// outputs are the requests to send and, once every request is answered, what came of them.
// No socket, no timer: the stream sends what it is told and feeds the answers back in.

export const MARKET_DATA_KINDS = ['trades', 'quotes', 'bars'] as const;
/** One kind of market data Alpaca streams per symbol. */
export type MarketDataKind = (typeof MARKET_DATA_KINDS)[number];

/** Symbols per kind of market data, as Alpaca's requests and echoes list them. */
export type SymbolLists = { readonly [K in MarketDataKind]?: readonly string[] };

export type SubscriptionRequest = { readonly action: 'subscribe' | 'unsubscribe' } & SymbolLists;

/** A refusal Alpaca answered a request with (400 invalid syntax, 405 symbol limit, …). */
export interface RequestError {
  readonly code: number;
  readonly msg: string;
}

/** What the server did with the wanted tickers, once no request is outstanding. */
export type SubscriptionOutcome =
  | { readonly result: 'confirmed' }
  /** Not in the echo, yet no request was refused: they stay wanted. */
  | { readonly result: 'unconfirmed'; readonly symbols: readonly string[] }
  /** Refused even one by one: they are no longer wanted. */
  | { readonly result: 'refused'; readonly symbols: readonly string[]; readonly errors: readonly RequestError[] };

export interface SubscriptionStep {
  /** Requests to send now, in this order. */
  readonly send: readonly SubscriptionRequest[];
  /** Set when this input answered the last outstanding request. */
  readonly settled?: SubscriptionOutcome;
}

const NOTHING: SubscriptionStep = Object.freeze({ send: Object.freeze([]) });

export class SubscriptionState {
  readonly #kinds: readonly MarketDataKind[];
  /** What the user asked for; the echo is what Alpaca actually streams. */
  readonly #wanted = new Set<string>();
  #echo = emptyEcho();
  #online = false;
  /** Subscribe/unsubscribe requests not yet answered; Alpaca answers each with an echo or an error. */
  #outstanding = 0;
  readonly #errors: RequestError[] = [];
  /** Symbols already retried one by one after a refused request. */
  readonly #probed = new Set<string>();

  /** `kinds`: what each request subscribes, e.g. ['trades', 'quotes']. */
  constructor(kinds: readonly MarketDataKind[]) {
    this.#kinds = [...kinds];
  }

  /** The tickers wanted. */
  get tickers(): readonly string[] {
    return [...this.#wanted];
  }

  /** What Alpaca last confirmed (its subscription echo): the truth about what streams. */
  get subscription(): { readonly [K in MarketDataKind]: readonly string[] } {
    return { trades: [...this.#echo.trades], quotes: [...this.#echo.quotes], bars: [...this.#echo.bars] };
  }

  /** True between authenticated() and disconnected(): requests go out as changes are made. */
  get online(): boolean {
    return this.#online;
  }

  /** Requests sent and not answered yet. */
  get outstanding(): number {
    return this.#outstanding;
  }

  /** Whether a print for this symbol is still wanted (one in flight after an unsubscribe is not). */
  wants(symbol: string): boolean {
    return this.#wanted.has(symbol) || this.#wanted.has('*');
  }

  /** The user's change. Offline it only changes what the next session subscribes. */
  update(add: readonly string[], remove: readonly string[]): SubscriptionStep {
    const removed = unique(remove).filter((s) => this.#wanted.delete(s));
    for (const s of removed) this.#probed.delete(s);
    const added = unique(add).filter((s) => !this.#wanted.has(s));
    for (const s of added) this.#wanted.add(s);
    if (!this.#online) return NOTHING;
    // Unsubscribing first frees room under the account's symbol limit.
    const send: SubscriptionRequest[] = [];
    if (removed.length > 0) send.push(this.#request('unsubscribe', removed));
    if (added.length > 0) send.push(this.#request('subscribe', added));
    return { send };
  }

  /** A new session authenticated: it starts with nothing subscribed, so all that is wanted is asked for. */
  authenticated(): SubscriptionStep {
    this.#online = true;
    this.#echo = emptyEcho();
    this.#outstanding = 0;
    this.#errors.length = 0;
    this.#probed.clear();
    if (this.#wanted.size > 0) return { send: [this.#request('subscribe', [...this.#wanted])] };
    return this.#settle();
  }

  /** The session is gone (dropped, failed or stopped); requests wait for the next one. */
  disconnected(): void {
    this.#online = false;
  }

  /** A request from a step could not be sent (the connection was going down): no answer will come. */
  notSent(): void {
    this.#outstanding = Math.max(0, this.#outstanding - 1);
  }

  /** Alpaca's subscription echo: the whole subscription after one request. */
  echoed(lists: SymbolLists): SubscriptionStep {
    const echo = emptyEcho();
    for (const kind of MARKET_DATA_KINDS) for (const s of lists[kind] ?? []) echo[kind].add(s);
    this.#echo = echo;
    this.#outstanding = Math.max(0, this.#outstanding - 1);
    return this.#settle();
  }

  /**
   * An error that may answer a request. Undefined when no request is outstanding: then it
   * answers nothing of ours and the caller reports it as it is.
   */
  refused(error: RequestError): SubscriptionStep | undefined {
    if (this.#outstanding === 0) return undefined;
    this.#outstanding--;
    this.#errors.push(error);
    return this.#settle();
  }

  #request(action: SubscriptionRequest['action'], symbols: readonly string[]): SubscriptionRequest {
    const request: { action: SubscriptionRequest['action'] } & { [K in MarketDataKind]?: readonly string[] } = { action };
    for (const kind of this.#kinds) request[kind] = symbols;
    // A symbol asked for on its own has had its own answer: it needs no retry by itself.
    if (action === 'subscribe' && symbols.length === 1) this.#probed.add(symbols[0]!);
    this.#outstanding++;
    return request;
  }

  /**
   * Runs when every request has been answered: whatever is wanted that the echo lacks was
   * refused. A refused request is all-or-nothing at Alpaca (405 leaves the subscription as it was;
   * one malformed symbol gives 400 for the whole message), so its symbols are retried one by one
   * to keep those Alpaca accepts; what is still refused then is reported and forgotten. Only a
   * symbol that was asked for on its own is taken as refused without a retry: one left alone
   * in a refused request (its companions unsubscribed meanwhile) may be innocent.
   */
  #settle(): SubscriptionStep {
    if (this.#outstanding > 0 || !this.#online) return NOTHING;
    const missing = [...this.#wanted].filter((s) => !this.#confirmed(s));
    const untried = missing.filter((s) => !this.#probed.has(s));
    // The errors stay for the next round: they are the verdict on what the retries leave missing.
    if (this.#errors.length > 0 && untried.length > 0) {
      const send: SubscriptionRequest[] = [];
      for (const s of untried) {
        this.#probed.add(s);
        send.push(this.#request('subscribe', [s]));
      }
      return { send };
    }
    const errors = this.#errors.splice(0);
    if (missing.length === 0) return { send: [], settled: { result: 'confirmed' } };
    if (errors.length === 0) return { send: [], settled: { result: 'unconfirmed', symbols: missing } };
    for (const s of missing) {
      this.#wanted.delete(s);
      this.#probed.delete(s);
    }
    return { send: [], settled: { result: 'refused', symbols: missing, errors } };
  }

  #confirmed(symbol: string): boolean {
    return this.#kinds.every((k) => this.#echo[k].has(symbol) || this.#echo[k].has('*'));
  }
}

function emptyEcho(): Record<MarketDataKind, Set<string>> {
  return { trades: new Set(), quotes: new Set(), bars: new Set() };
}

function unique(symbols: readonly string[]): string[] {
  return [...new Set(symbols)];
}
