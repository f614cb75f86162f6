// The broker's refusals and problems, told to the clients: each notice goes on BROKER_ERRORS
// (with a code from BrokerNotice) and into the log, both throttled, so a flood of bad input
// never becomes a flood of notices. Bus errors on the two channels the broker listens on
// (a registration or an order request that did not decode) become notices here too.
import type { TickBus } from '../bus/tick-bus.ts';
import type { BusError } from '../core/errors.ts';
import { preview } from '../core/errors.ts';
import { LogThrottle, type Logger } from '../core/logger.ts';
import { BrokerErrors, BrokerRegistration, OrderRequests } from '../catalogs/broker.ts';
import type { BrokerMetrics } from './broker-metrics.ts';
import { BROKER_DEFAULTS } from './broker-defaults.ts';

/** Codes of the notices the broker publishes on BROKER_ERRORS. */
export const BrokerNotice = {
  InvalidRegistration: 'TB_BROKER_INVALID_REGISTRATION',
  TickerLimit: 'TB_BROKER_TICKER_LIMIT',
  StoreFailed: 'TB_BROKER_STORE_FAILED',
  InvalidOrder: 'TB_BROKER_INVALID_ORDER',
  Feed: 'TB_BROKER_FEED',
} as const;

/** Who a notice is about, when it is about someone: copied into the message. */
export interface NoticeSubject {
  ticker?: string | undefined;
  client_id?: string | undefined;
}

export class BrokerNotices {
  readonly #bus: TickBus;
  readonly #metrics: BrokerMetrics;
  readonly #log: Logger;
  readonly #throttle = new LogThrottle(BROKER_DEFAULTS.noticesPerSecond);

  constructor(bus: TickBus, metrics: BrokerMetrics, logger: Logger) {
    this.#bus = bus;
    this.#metrics = metrics;
    this.#log = logger;
  }

  /** A bus error: a refusal of the registration or order request it is about, if it is one. */
  busError(error: BusError): void {
    if (error.channel === BrokerRegistration.template) {
      this.#metrics.registrations.labels('unknown', 'rejected').inc();
      this.notice(BrokerNotice.InvalidRegistration, `Registration rejected (${error.code}): ${error.message}`, {}, { error, summary: 'registration rejected' });
    } else if (error.channel === OrderRequests.template) {
      this.#metrics.orders.labels('rejected').inc();
      this.notice(BrokerNotice.InvalidOrder, `Order request rejected (${error.code}): ${error.message}`, {}, { error, summary: 'order request rejected' });
    }
  }

  /**
   * `cause`: the bus error behind a refusal. Its line then says `summary` and carries the
   * error (with its channel; compact, by the logger's serializer, when it is bad input)
   * rather than repeating its message.
   */
  notice(code: string, message: string, extra: NoticeSubject, cause?: { error: BusError; summary: string }): void {
    // Logs and the errors channel are both throttled: a flood of bad input must not
    // become a flood of notices. Metrics count everything.
    if (this.#throttle.take() < 0) return;
    // The log line stays short whatever the input: the whole message goes on the errors channel.
    if (cause) this.#log.warn({ code, ...extra, err: cause.error }, cause.summary);
    else this.#log.warn({ code, ...extra }, preview(message, BROKER_DEFAULTS.noticeLogChars));
    const data = {
      code,
      message: message.slice(0, BROKER_DEFAULTS.noticeMessageChars),
      timestamp: new Date().toISOString(),
      ...(extra.ticker ? { ticker: extra.ticker } : {}),
      ...(extra.client_id ? { client_id: extra.client_id } : {}),
    };
    this.#bus.publish(BrokerErrors, data).catch((error: unknown) => this.#log.warn({ err: error }, 'could not publish a broker notice'));
  }
}
