// A feed's trades are checked once, where they enter the broker (tradeProblem), and the price
// updates made of them are not validated again on the way out. So the check must refuse
// exactly what PriceUpdateSchema refuses of those fields (a property over generated trades),
// and the broker must drop a bad trade, count it and go on with the next.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pino } from 'pino';
import { BrokerRegistration, PriceUpdateSchema, TickerUpdates } from '../../catalogs/broker.ts';
import { startBrokerRuntime } from '../broker-runtime.ts';
import { tradeProblem, type FeedSink, type FeedState, type MarketDataFeed, type TradeTick } from './feed.ts';

const silent = pino({ level: 'silent' });

/** A feed the test drives by hand: it hands the broker whatever trades the test gives it. */
class HandFeed implements MarketDataFeed {
  readonly name = 'hand';
  readonly updatesInPlace = true;
  state: FeedState = 'idle';
  sink: FeedSink | undefined;
  tickers = new Set<string>();

  start(tickers: readonly string[], sink: FeedSink): Promise<void> {
    this.sink = sink;
    this.tickers = new Set(tickers);
    this.state = 'streaming';
    return Promise.resolve();
  }

  update(add: readonly string[], remove: readonly string[]): Promise<void> {
    for (const t of add) this.tickers.add(t);
    for (const t of remove) this.tickers.delete(t);
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.state = 'stopped';
    return Promise.resolve();
  }

  async placeOrder(): Promise<void> {}
  async cancelOrder(): Promise<void> {}
}

describe('a trade checked where it comes in', () => {
  it('is refused by tradeProblem exactly when PriceUpdateSchema refuses the update made of it', () => {
    const number = fc.oneof(fc.double(), fc.integer({ min: -5, max: 1e6 }), fc.constantFrom(0, -0, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1e-9));
    const iso = fc.date({ min: new Date(Date.UTC(1, 0, 1)), max: new Date(Date.UTC(9999, 11, 31)), noInvalidDate: true }).map((d) => d.toISOString());
    const timestamp = fc.oneof(
      iso,
      iso.map((t) => t.replace('Z', '+05:30')),
      iso.map((t) => t.slice(0, 19)), // no offset, as Python's isoformat() of a naive time
      iso.map((t) => t.replace('T', ' ')),
      iso.chain((t) => fc.nat({ max: t.length - 1 }).map((i) => t.slice(0, i) + 'x' + t.slice(i + 1))),
      fc.constantFrom('2025-02-29T00:00:00Z', '2024-02-29T00:00:00Z', '2025-04-24T24:00:00Z', '', 'yesterday'),
      fc.string(),
    );
    fc.assert(
      fc.property(number, number, timestamp, (price, volume, ts) => {
        const tick: TradeTick = { symbol: 'AAPL', price, volume, timestamp: ts };
        const schemaSays = PriceUpdateSchema.safeParse({ type: 'price', price, volume, symbol: 'AAPL', timestamp: ts }).success;
        assert.equal(tradeProblem(tick) === undefined, schemaSays, `${JSON.stringify({ price: String(price), volume: String(volume), ts })}: ${tradeProblem(tick) ?? 'accepted'}`);
      }),
      { numRuns: 3000 },
    );
  });

  it('is dropped by the broker and counted as TB_ERR_VALIDATION; the trades around it are published', async () => {
    const feed = new HandFeed();
    const runtime = await startBrokerRuntime({ redisUrl: undefined, feed, logger: silent });
    try {
      const got: number[] = [];
      await runtime.bus.subscribe(TickerUpdates, (u) => {
        if (u.type === 'price' && u.price !== undefined) got.push(u.price);
      });
      await runtime.bus.publish(BrokerRegistration, { action: 'subscribe', ticker: 'AAPL' });
      for (let i = 0; i < 200 && !feed.tickers.has('AAPL'); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(feed.tickers.has('AAPL'), 'the broker streams AAPL');
      const at = '2025-04-24T13:30:00Z';
      const trades: TradeTick[] = [
        { symbol: 'AAPL', price: 1, volume: 10, timestamp: at },
        { symbol: 'AAPL', price: -1, volume: 10, timestamp: at },
        { symbol: 'AAPL', price: 2, volume: Number.NaN, timestamp: at },
        { symbol: 'AAPL', price: 3, volume: 10, timestamp: 'yesterday' },
        { symbol: 'AAPL', price: Number.POSITIVE_INFINITY, volume: 10, timestamp: at },
        { symbol: 'AAPL', price: 4, volume: 10, timestamp: at },
      ];
      for (const t of trades) await feed.sink?.trade(t);
      for (let i = 0; i < 200 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(got, [1, 4]);
      assert.match(await runtime.registry.getSingleMetricAsString('tickbus_broker_publish_failures_total'), /code="TB_ERR_VALIDATION"\} 4/);
    } finally {
      await runtime.stop();
    }
  });
});
