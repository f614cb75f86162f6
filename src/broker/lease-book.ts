// Who wants which ticker: the broker's registrations, kept as leases. Each registration is
// applied to an in-memory mirror at once (the ticker limits checked there) and written to
// the BrokerStore in Redis in the background; expired leases are swept from both. The
// mirror is what the broker streams from: its tickers are the ones wanted.
import type { Background } from '../core/background.ts';
import type { Logger } from '../core/logger.ts';
import { GATEWAY_CLIENT_PREFIX, type Registration } from '../catalogs/broker.ts';
import type { BrokerMetrics } from './broker-metrics.ts';
import type { BrokerStore } from './broker-store.ts';
import { BrokerNotice, type BrokerNotices } from './broker-notices.ts';

/** The holder of registrations that carry no client_id (the seed's plain {action, ticker}). */
export const ANONYMOUS = '~anonymous';

function isGateway(holder: string): boolean {
  return holder.startsWith(GATEWAY_CLIENT_PREFIX);
}

/** The limits and lease lengths a registration is checked and held by. */
export interface LeaseLimits {
  maxTickers: number;
  maxGatewayTickers: number;
  anonymousLeaseTtlSeconds: number;
  clientLeaseTtlSeconds: number;
}

export interface LeaseBookOptions {
  store: BrokerStore;
  metrics: BrokerMetrics;
  notices: BrokerNotices;
  logger: Logger;
  background: Background;
  limits: LeaseLimits;
  /** The set of wanted tickers may have changed: a registration, or leases expired. */
  onChange: () => void;
}

export class LeaseBook {
  readonly #store: BrokerStore;
  readonly #metrics: BrokerMetrics;
  readonly #notices: BrokerNotices;
  readonly #log: Logger;
  readonly #bg: Background;
  readonly #limits: LeaseLimits;
  readonly #onChange: () => void;
  /** ticker → holder → expiry (epoch ms, or null): the in-memory mirror of the lease set. */
  readonly #holders = new Map<string, Map<string, number | null>>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: LeaseBookOptions) {
    this.#store = options.store;
    this.#metrics = options.metrics;
    this.#notices = options.notices;
    this.#log = options.logger;
    this.#bg = options.background;
    this.#limits = options.limits;
    this.#onChange = options.onChange;
  }

  /** Fills the mirror with the leases the store holds (those not yet expired). */
  async load(): Promise<void> {
    for (const lease of await this.#store.leases(Date.now())) this.#hold(lease.ticker, lease.holder, lease.expiresAt);
  }

  /** Sweeps expired leases every `intervalMs`, until stop(). */
  sweepEvery(intervalMs: number): void {
    this.#sweepTimer = setInterval(() => this.#bg.run('broker_lease_sweep', () => this.#sweep()), intervalMs);
  }

  /** Takes no more registrations and sweeps no more. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#sweepTimer);
  }

  /** Whether anybody holds the ticker. */
  has(ticker: string): boolean {
    return this.#holders.has(ticker);
  }

  /** Every ticker somebody holds. */
  wanted(): Set<string> {
    return new Set(this.#holders.keys());
  }

  /** Leases held, over all tickers. */
  get count(): number {
    let n = 0;
    for (const h of this.#holders.values()) n += h.size;
    return n;
  }

  /**
   * Applies a registration to the in-memory lease set at once and writes it to Redis in
   * the background (node-redis pipelines the writes, in order). Handling stays synchronous,
   * so a burst is taken in one go and the quiet window that ends it is real.
   */
  register(reg: Registration): void {
    if (this.#stopped) return;
    const holder = reg.client_id ?? ANONYMOUS;
    const { ticker } = reg;
    const limits = this.#limits;
    let write: Promise<unknown>;
    if (reg.action === 'subscribe') {
      if (!this.#holders.has(ticker) && this.#holders.size >= limits.maxTickers) {
        this.#metrics.registrations.labels('subscribe', 'rejected').inc();
        this.#notices.notice(BrokerNotice.TickerLimit, `Cannot stream ${ticker}: the broker already streams its maximum of ${limits.maxTickers} tickers. Unregister some, or raise --max-tickers.`, { ticker, client_id: reg.client_id });
        return;
      }
      // A new ticker for a gateway comes out of the gateways' share only: the rest of
      // maxTickers stays for bots. Tickers already streamed cost nothing more.
      if (!this.#holders.has(ticker) && isGateway(holder) && this.#gatewayOnlyTickers() >= limits.maxGatewayTickers) {
        this.#metrics.registrations.labels('subscribe', 'rejected').inc();
        this.#notices.notice(BrokerNotice.TickerLimit, `Cannot stream ${ticker} for gateway ${holder}: tickers held by gateways alone are at their share of ${limits.maxGatewayTickers} (--max-gateway-tickers); the rest is kept for other clients.`, { ticker, client_id: reg.client_id });
        return;
      }
      const ttl = reg.ttl_seconds ?? (holder === ANONYMOUS ? limits.anonymousLeaseTtlSeconds : limits.clientLeaseTtlSeconds);
      const expiresAt = ttl === 0 ? null : Date.now() + ttl * 1000;
      this.#hold(ticker, holder, expiresAt);
      write = this.#store.acquire({ ticker, holder, expiresAt });
    } else {
      this.#drop(ticker, holder);
      write = this.#store.release(ticker, holder);
    }
    this.#metrics.registrations.labels(reg.action, 'accepted').inc();
    this.#onChange();
    write.catch((error: unknown) => {
      // The stream follows the registration; only a restart would not see it.
      this.#notices.notice(BrokerNotice.StoreFailed, `Registration ${reg.action} ${ticker} was applied but not stored in Redis: ${(error as Error).message}`, { ticker, client_id: reg.client_id });
    });
  }

  /** Tickers that only gateways hold: what their share counts. */
  #gatewayOnlyTickers(): number {
    let n = 0;
    for (const holders of this.#holders.values()) {
      let onlyGateways = holders.size > 0;
      for (const h of holders.keys()) if (!isGateway(h)) onlyGateways = false;
      if (onlyGateways) n++;
    }
    return n;
  }

  #hold(ticker: string, holder: string, expiresAt: number | null): void {
    let holders = this.#holders.get(ticker);
    if (!holders) this.#holders.set(ticker, (holders = new Map<string, number | null>()));
    holders.set(holder, expiresAt);
  }

  #drop(ticker: string, holder: string): void {
    const holders = this.#holders.get(ticker);
    if (!holders) return;
    holders.delete(holder);
    if (holders.size === 0) this.#holders.delete(ticker);
  }

  async #sweep(): Promise<void> {
    if (this.#stopped) return;
    try {
      const expired = await this.#store.sweep(Date.now());
      for (const lease of expired) {
        // The mirror may hold a renewal the store saw after our read: keep the later expiry.
        const current = this.#holders.get(lease.ticker)?.get(lease.holder);
        if (current !== undefined && current !== null && current <= Date.now()) this.#drop(lease.ticker, lease.holder);
      }
      if (expired.length > 0 && !this.#stopped) {
        this.#log.info({ expired: expired.map((l) => `${l.ticker}:${l.holder}`) }, 'leases expired');
        this.#onChange();
      }
    } catch (error) {
      // Redis away: the mirror keeps serving; the next sweep catches up.
      this.#bg.failed('broker_lease_sweep', error);
    }
  }
}
