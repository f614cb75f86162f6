// Alpaca's market-data stream protocol on one AlpacaSocket: the greeting, authentication, the
// subscription (kept by SubscriptionState), Alpaca's error codes, and the prints turned into
// ticks for the feed. Which error ends the feed, which drops the connection, which answers a
// request: that is decided here.
import type { Logger } from '../../../core/logger.ts';
import type { FeedSink, TradeTick } from '../feed.ts';
import type { AlpacaConfig, SocketTiming } from './alpaca-config.ts';
import { AlpacaSocket, type DropReason } from './alpaca-socket.ts';
import { frameItems, isNumber, isRecord } from './frames.ts';
import { MARKET_DATA_KINDS, SubscriptionState, type MarketDataKind, type SubscriptionOutcome, type SubscriptionStep, type SymbolLists } from './subscription-state.ts';

export type ProblemDetails = Parameters<FeedSink['problem']>[1];

/** Data-stream error codes that end the feed: retrying cannot fix them. */
const FINAL_CODES = new Set([402, 409, 410]);
/** Error codes that answer a subscribe or unsubscribe request. */
const REQUEST_CODES = new Set([400, 405]);
/** Error codes after which the session is retried on a new connection. */
const DROP_CODES = new Set([401, 404, 406, 407, 500]);

export interface MarketDataHooks {
  /** A print for a wanted ticker; a returned promise pauses reading until it settles. */
  trade(tick: TradeTick): Promise<void> | undefined;
  /** The session is authenticated: the feed streams. */
  streaming(): void;
  /** The subscription is settled (confirmed or refusals reported), or the attempt is over. */
  ready(): void;
  problem(message: string, details: ProblemDetails): void;
  /** A message the feed cannot read, as text. */
  malformed(text: string): void;
  /** Alpaca refused the stream for good; the stream has closed itself. */
  failed(code: number, message: string): void;
  /** The connection went down and is retried after `delayMs`. */
  retrying(attempt: number, delayMs: number, why: DropReason): void;
}

export class MarketDataStream {
  readonly #config: AlpacaConfig;
  readonly #kinds: readonly MarketDataKind[];
  readonly #hooks: MarketDataHooks;
  readonly #logger: Logger;
  readonly #socket: AlpacaSocket;
  readonly #subscription: SubscriptionState;
  /** Stopped or failed: the frames still arriving are not read. */
  #closed = false;

  constructor(config: AlpacaConfig, kinds: readonly MarketDataKind[], timing: SocketTiming, logger: Logger, hooks: MarketDataHooks) {
    this.#config = config;
    this.#kinds = kinds;
    this.#hooks = hooks;
    this.#logger = logger;
    this.#subscription = new SubscriptionState(kinds);
    this.#socket = new AlpacaSocket('market-data stream', config.dataStreamUrl, timing, {
      opened: () => this.#socket.deadline(timing.handshakeTimeoutMs, 'connected greeting'),
      message: (text) => this.#onFrame(text),
      retrying: (attempt, delayMs, why) => {
        this.#subscription.disconnected();
        this.#hooks.retrying(attempt, delayMs, why);
      },
    });
  }

  /** The tickers the feed is asked to stream. */
  get tickers(): readonly string[] {
    return this.#subscription.tickers;
  }

  /** What Alpaca last confirmed (its subscription echo). */
  get subscription(): { readonly [K in MarketDataKind]: readonly string[] } {
    return this.#subscription.subscription;
  }

  connect(): void {
    this.#socket.connect();
  }

  /** Sends unsubscribe then subscribe on a live session; without one they go with the next session's subscription. */
  update(add: readonly string[], remove: readonly string[]): void {
    this.#apply(this.#subscription.update(add, remove));
  }

  /** Closes for good; resolves once the socket is closed. */
  end(): Promise<void> {
    this.#closed = true;
    this.#subscription.disconnected();
    return this.#socket.end();
  }

  #onFrame(text: string): Promise<void> | undefined {
    const items = frameItems(text);
    if (!items) {
      this.#hooks.malformed(text);
      return undefined;
    }
    const connection = this.#socket.connection;
    let waits: Promise<void>[] | undefined;
    for (const item of items) {
      // An error in this frame may have dropped the connection: the rest belongs to it.
      if (this.#socket.connection !== connection || this.#closed) break;
      const wait = isRecord(item) ? this.#onItem(item) : undefined;
      if (wait) (waits ??= []).push(wait);
    }
    return waits && Promise.all(waits).then(() => undefined);
  }

  #onItem(m: Record<string, unknown>): Promise<void> | undefined {
    switch (m.T) {
      case 't':
        return this.#tick(m, m.p, m.s, 'trade');
      case 'q': {
        if (!this.#kinds.includes('quotes')) return undefined;
        const { bp, ap } = m;
        // A one-sided quote (a price of 0) has no meaningful mid.
        if (!isNumber(bp) || !isNumber(ap) || bp <= 0 || ap <= 0) return undefined;
        return this.#tick(m, (bp + ap) / 2, 0, 'quote');
      }
      case 'b':
        return this.#kinds.includes('bars') ? this.#tick(m, m.c, m.v, 'bar') : undefined;
      case 'success':
        this.#onSuccess(m.msg);
        return undefined;
      case 'subscription':
        this.#onEcho(m);
        return undefined;
      case 'error':
        this.#onError(typeof m.code === 'number' ? m.code : Number(m.code), typeof m.msg === 'string' ? m.msg : '');
        return undefined;
      default:
        // Corrections, cancel errors, statuses, LULDs and updated bars are not prices to stream.
        return undefined;
    }
  }

  #tick(m: Record<string, unknown>, price: unknown, volume: unknown, kind: 'trade' | 'quote' | 'bar'): Promise<void> | undefined {
    const { S: symbol, t: timestamp } = m;
    if (typeof symbol !== 'string' || typeof timestamp !== 'string' || !isNumber(price) || price < 0 || !isNumber(volume) || volume < 0) {
      this.#hooks.malformed(JSON.stringify(m));
      return undefined;
    }
    // After an unsubscribe, prints already in flight must not reach a broker that dropped the ticker.
    if (!this.#subscription.wants(symbol)) return undefined;
    return this.#hooks.trade(kind === 'trade' ? { symbol, price, volume, timestamp } : { symbol, price, volume, timestamp, kind });
  }

  #onSuccess(msg: unknown): void {
    if (msg === 'connected') {
      this.#socket.send({ action: 'auth', key: this.#config.keyId, secret: this.#config.secretKey });
      this.#socket.deadline(this.#socket.timing.handshakeTimeoutMs, 'authentication reply');
    } else if (msg === 'authenticated') {
      this.#socket.clearDeadline();
      this.#hooks.streaming();
      const step = this.#subscription.authenticated();
      // Nothing to subscribe: the session works as it is.
      if (step.send.length === 0) this.#socket.healthy();
      this.#apply(step);
    }
  }

  #onEcho(m: Record<string, unknown>): void {
    const lists: { [K in MarketDataKind]?: string[] } = {};
    for (const kind of MARKET_DATA_KINDS) {
      const list = m[kind];
      if (Array.isArray(list)) lists[kind] = list.filter((s): s is string => typeof s === 'string');
    }
    const step = this.#subscription.echoed(lists satisfies SymbolLists);
    // A confirmed subscription means the session is healthy: the next failure starts from the base delay.
    this.#socket.healthy();
    this.#apply(step);
  }

  #onError(code: number, msg: string): void {
    const what = `${code}${msg ? ` ${msg}` : ''}`;
    if (code === 403) {
      this.#logger.debug('Alpaca says the market-data stream is already authenticated; ignored');
      return;
    }
    if (FINAL_CODES.has(code)) {
      this.#fail(code, `Alpaca refused the market-data stream (${what}); the feed has stopped. ${finalAdvice(code)}`);
      return;
    }
    const answer = REQUEST_CODES.has(code) ? this.#subscription.refused({ code, msg }) : undefined;
    if (answer) this.#apply(answer);
    else if (code === 400) this.#hooks.problem(`Alpaca answered the market-data stream with ${what}.`, { code, final: false });
    else if (DROP_CODES.has(code)) this.#socket.drop(`Alpaca error ${what}`, code);
    else this.#hooks.problem(`Alpaca reported ${what} on the market-data stream.`, { code, final: false });
  }

  /** Sends a step's requests and reports what its settling says. */
  #apply(step: SubscriptionStep): void {
    for (const request of step.send) if (!this.#socket.send(request)) this.#subscription.notSent();
    if (step.settled) this.#settled(step.settled);
  }

  #settled(outcome: SubscriptionOutcome): void {
    // start() resolves once the first subscription is settled, refusals reported.
    this.#hooks.ready();
    if (outcome.result === 'unconfirmed') {
      this.#hooks.problem(`Alpaca did not confirm the subscription of ${outcome.symbols.join(', ')}.`, { final: false });
    } else if (outcome.result === 'refused') {
      const { symbols, errors } = outcome;
      const codes = [...new Set(errors.map((e) => e.code))];
      const reasons = [...new Set(errors.map((e) => `${e.code}${e.msg ? ` ${e.msg}` : ''}`))].join('; ');
      this.#hooks.problem(
        `Alpaca refused ${symbols.length === 1 ? 'the symbol' : `${symbols.length} symbols`} ${symbols.join(', ')} (${reasons}); ` +
          `the feed keeps the ${this.#subscription.subscription.trades.length} it streams.`,
        { code: codes[0], final: false },
      );
    }
  }

  #fail(code: number, message: string): void {
    this.#closed = true;
    this.#subscription.disconnected();
    this.#hooks.failed(code, message);
    this.#socket.end().catch((error: unknown) => this.#logger.warn({ err: error }, 'could not close an Alpaca socket'));
  }
}

function finalAdvice(code: number): string {
  if (code === 402) return 'Check APCA_API_KEY_ID and APCA_API_SECRET_KEY.';
  if (code === 409) return 'The account has no subscription for this data feed: set ALPACA_FEED=iex, or upgrade the subscription.';
  return 'The data feed does not support this subscription: check ALPACA_FEED and the feed options.';
}
