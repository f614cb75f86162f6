// The trading desk in real headless Chromium (Debian's), against the system `tickbus up`
// runs: a redis-server, the broker on the simulated venue forwarding ticks, the pattern
// library, the backtest worker and a gateway that takes orders. At desktop (1400×900) and
// phone (390×844) size: the page loads without a console error and without horizontal
// overflow, the chart fills from history within 2 s, a market order fills and shows in the
// blotter and positions; on the desktop also: a double click places one order, a limit order
// is cancelled, an alert shows for a watched symbol and not for an unwatched one, a backtest
// runs to its result, the watch-list is edited; and a gateway that stops marks prices stale,
// and its restart resumes them. Screenshots of both sizes are kept in artifacts/.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createClient } from 'redis';
import type { Browser, Page } from 'playwright-core';
import { startBrokerRuntime, type BrokerRuntime } from '../../src/broker/broker-runtime.ts';
import { SimFeed } from '../../src/broker/feeds/sim-feed.ts';
import { startGatewayRuntime, type GatewayRuntime } from '../../src/gateway/gateway-runtime.ts';
import { startPatternRuntime, type PatternRuntime } from '../../src/tickstock/pattern-runtime.ts';
import { startBacktestRuntime, type BacktestRuntime } from '../../src/tickstock/backtest-runtime.ts';
import { resolveRedisConfig } from '../../src/core/config.ts';
import { streamKey } from '../../src/core/keys.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { silentLogger } from '../harness/quiet.ts';
import { launchChromium } from '../harness/browser.ts';
import { waitFor } from '../harness/wait.ts';

const ARTIFACTS = new URL('../../artifacts/', import.meta.url);
const CHANNELS = ['tickstock:patterns:streaming', 'tickstock:patterns:detected', 'tickstock:indicators:streaming', 'tickstock.events.patterns', 'tickstock:streaming:health'];
const SIZES = { desktop: { width: 1400, height: 900 }, phone: { width: 390, height: 844 } } as const;

/** A page with its console errors and uncaught exceptions collected. */
async function openDesk(browser: Browser, url: string, size: { width: number; height: number }, query: string): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: size, ...(size.width < 500 ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}) });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  await page.goto(`${url}/?${query}`);
  return { page, problems };
}

/** Places an order from the ticket, the way a trader does. */
async function fillTicket(page: Page, o: { side: 'buy' | 'sell'; qty: number; type: 'market' | 'limit'; limit?: number; symbol?: string }): Promise<void> {
  await page.check(`#ticket input[name=side][value=${o.side}]`);
  if (o.symbol) await page.fill('#ticket-symbol', o.symbol);
  await page.selectOption('#ticket-type', o.type);
  await page.fill('#ticket-qty', String(o.qty));
  if (o.limit !== undefined) await page.fill('#ticket-limit', String(o.limit));
}

const orderIds = (page: Page) => page.evaluate<string[]>('Object.keys(window.desk.orders)');

describe('the trading desk in Chromium', () => {
  let server: RedisServer;
  let broker: BrokerRuntime;
  let patterns: PatternRuntime;
  let backtests: BacktestRuntime;
  let gateway: GatewayRuntime;
  let browser: Browser;
  let raw: ReturnType<typeof createClient>;
  let sub: ReturnType<typeof createClient>;
  const requests: Array<{ client_order_id: string }> = [];

  const startGateway = (port = 0) =>
    startGatewayRuntime({
      logger: silentLogger,
      port,
      batchMs: 100,
      allowOrders: true,
      channels: CHANNELS,
      redis: resolveRedisConfig({ url: server.url }),
      broker: { bus: broker.bus, lastValue: (t) => broker.store.lastValue(t) },
    });

  before(async () => {
    server = await startRedis();
    broker = await startBrokerRuntime({ redisUrl: server.url, feed: new SimFeed({ ratePerTicker: 10 }), logger: silentLogger, forwardTicks: true });
    patterns = await startPatternRuntime({ logger: silentLogger, bus: broker.bus, registry: broker.bus.context.metrics.registry, heartbeatMs: 0 });
    backtests = await startBacktestRuntime({ redis: { url: server.url }, logger: silentLogger, name: 'desk-test' });
    gateway = await startGateway();
    for (const ticker of ['AAPL', 'MSFT', 'NVDA']) await broker.bus.publish('BROKER_REGISTRATION', { action: 'subscribe', ticker });
    raw = createClient({ url: server.url });
    await raw.connect();
    sub = raw.duplicate();
    await sub.connect();
    await sub.subscribe('ORDER_REQUESTS', (text) => requests.push((JSON.parse(text) as { data: { client_order_id: string } }).data));
    // The system ran before the page opened: there is history to draw from.
    await waitFor(async () => (await raw.xLen(streamKey('TICKER_UPDATES_AAPL'))) >= 40, 'AAPL history', 20_000);
    browser = await launchChromium();
    mkdirSync(ARTIFACTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await sub?.quit().catch(() => undefined);
    await raw?.quit().catch(() => undefined);
    await gateway?.stop();
    await backtests?.close();
    await patterns?.close();
    await broker?.stop();
    await server?.stop();
  });

  for (const [name, size] of Object.entries(SIZES)) {
    it(`${name} ${size.width}×${size.height}: loads without errors or horizontal overflow, candles from history within 2 s, and a market order fills into the blotter and positions`, async () => {
      const { page, problems } = await openDesk(browser, gateway.url, size, `user=${name}-trader`);
      // The default watch-list is what the broker streams.
      await page.waitForSelector('#watchlist tr[data-symbol="NVDA"]');
      assert.deepEqual(await page.evaluate<string[]>("[...document.querySelectorAll('#watchlist tbody tr')].map((r) => r.dataset.symbol)"), ['AAPL', 'MSFT', 'NVDA']);
      // goto resolved on load: from there, 2 s for candles drawn from history.
      await page.waitForFunction('window.desk.historyLoaded.AAPL > 0 && window.desk.candles >= 2', undefined, { timeout: 2_000 });
      assert.ok((await page.locator('#chart canvas').count()) > 0, 'lightweight-charts drew');
      await page.waitForFunction("window.desk.state === 'open'");
      const overflow = await page.evaluate<{ scroll: number; inner: number }>('({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth })');
      assert.ok(overflow.scroll <= overflow.inner, `no horizontal scrolling: page ${overflow.scroll} px wide in a ${overflow.inner} px window`);
      const chartBox = await page.locator('#chart').boundingBox();
      assert.ok(chartBox && chartBox.width >= Math.min(size.width - 60, 600) && chartBox.height >= 240, `a usable chart: ${JSON.stringify(chartBox)}`);
      const place = await page.locator('#place').boundingBox();
      assert.ok(place && place.height >= 40, 'a touch-sized order button');
      // Colours: the change since the session's reference drives the last price's colour too.
      await page.waitForFunction("document.querySelector('#watchlist tr[data-symbol=\"MSFT\"] td.chg').textContent !== '–'");
      const tones = await page.evaluate<string[][]>("[...document.querySelectorAll('#watchlist tbody tr')].map((r) => [r.cells[1].className.replace('last', '').trim(), r.cells[2].className.replace('chg', '').trim()])");
      for (const [last, change] of tones) assert.equal(last, change, 'last price and change in the same colour');

      // A market order from the ticket fills on the simulated venue.
      const before = await orderIds(page);
      await fillTicket(page, { side: 'buy', qty: 7, type: 'market', symbol: 'AAPL' });
      await page.click('#place');
      await page.waitForFunction(`Object.keys(window.desk.orders).length === ${before.length + 1}`);
      const id = (await orderIds(page)).find((o) => !before.includes(o)) as string;
      await page.waitForFunction(`window.desk.orders['${id}'] === 'filled'`, undefined, { timeout: 10_000 });
      assert.match((await page.textContent(`#orders tr[data-order="${id}"]`)) ?? '', /AAPL.*buy.*7.*filled/);
      await page.waitForFunction("window.desk.positions.AAPL?.qty === 7");
      assert.match((await page.textContent('#positions tr[data-symbol="AAPL"]')) ?? '', /^AAPL7\d+\.\d{2}/);
      await page.screenshot({ path: new URL(`desk-${name}.png`, ARTIFACTS).pathname, fullPage: true });
      assert.deepEqual(problems, [], 'no errors in the page');
      await page.close();
    });
  }

  it('desktop: a double click places one order; a limit order placed from the keyboard is cancelled; the watch-list is edited', async () => {
    const { page, problems } = await openDesk(browser, gateway.url, SIZES.desktop, 'user=desk-2&symbols=AAPL,MSFT');
    await page.waitForFunction("window.desk.state === 'open'");
    await fillTicket(page, { side: 'buy', qty: 3, type: 'market', symbol: 'MSFT' });
    const before = await orderIds(page);
    const sent = requests.length;
    await page.dblclick('#place');
    await page.waitForFunction(`Object.values(window.desk.orders).filter((s) => s === 'filled').length >= 1 && Object.keys(window.desk.orders).length > ${before.length}`, undefined, { timeout: 10_000 });
    const placed = (await orderIds(page)).filter((o) => !before.includes(o));
    assert.equal(placed.length, 1, 'one order in the blotter');
    // A marker order after it: once the marker is in, a second request from the double click would be too.
    await fillTicket(page, { side: 'sell', qty: 1, type: 'market' });
    await page.click('#place');
    await waitFor(() => requests.length >= sent + 2, 'the marker order request');
    assert.deepEqual(
      requests.slice(sent).map((r) => r.client_order_id),
      [placed[0], (await orderIds(page)).find((o) => !before.includes(o) && o !== placed[0])],
      'one request reached the broker for the double click',
    );

    // A limit far below the market rests (placed from the keyboard: Enter in the ticket); its Cancel button cancels it.
    await fillTicket(page, { side: 'buy', qty: 2, type: 'limit', limit: 1, symbol: 'AAPL' });
    const ids = await orderIds(page);
    await page.press('#ticket-limit', 'Enter');
    await page.waitForFunction(`Object.keys(window.desk.orders).length > ${ids.length}`);
    const limitId = (await orderIds(page)).find((o) => !ids.includes(o)) as string;
    await page.waitForFunction(`window.desk.orders['${limitId}'] === 'new'`, undefined, { timeout: 10_000 });
    await page.click(`#orders tr[data-order="${limitId}"] button.cancel`);
    await page.waitForFunction(`window.desk.orders['${limitId}'] === 'canceled'`, undefined, { timeout: 10_000 });
    assert.equal(await page.locator(`#orders tr[data-order="${limitId}"] button.cancel`).count(), 0, 'no cancel for a closed order');

    // The watch-list: typed in and Enter; removed with ×; kept in the URL and localStorage.
    await page.fill('#symbol', 'nvda');
    await page.press('#symbol', 'Enter');
    await page.waitForSelector('#watchlist tr[data-symbol="NVDA"]');
    await page.waitForFunction('window.desk.prices.NVDA !== undefined', undefined, { timeout: 10_000 });
    await page.click('#watchlist tr[data-symbol="NVDA"] button.remove');
    await page.waitForSelector('#watchlist tr[data-symbol="NVDA"]', { state: 'detached' });
    assert.equal(await page.evaluate("localStorage.getItem('tickbus.symbols')"), '["AAPL","MSFT"]');
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('desktop: an alert for a watched symbol shows, one for an unwatched symbol does not; a backtest runs to its result', async () => {
    const { page, problems } = await openDesk(browser, gateway.url, SIZES.desktop, 'user=desk-3&symbols=AAPL,MSFT');
    await page.waitForFunction("window.desk.alertPrefs?.symbols.length === 2", undefined, { timeout: 10_000 });
    const event = (symbol: string, pattern: string) => JSON.stringify({ event_type: 'pattern_detected', pattern, symbol, timestamp: Date.now() / 1000, confidence: 0.93, timeframe: '1min', direction: 'bullish', source: 'test' });
    await raw.publish('tickstock.events.patterns', event('TSLA', 'Hammer'));
    await raw.publish('tickstock.events.patterns', event('MSFT', 'Hammer'));
    await page.waitForSelector('#alerts li[data-symbol="MSFT"]', { timeout: 10_000 });
    assert.match((await page.textContent('#alerts li[data-symbol="MSFT"]')) ?? '', /MSFT Hammer.*0\.93/);
    assert.equal(await page.locator('#alerts li[data-symbol="TSLA"]').count(), 0, 'no alert for a symbol not watched');
    assert.ok(!(await page.evaluate<boolean>("window.desk.alerts.some((a) => a.symbol === 'TSLA')")));

    await page.click('#bt-run');
    await page.waitForFunction('window.desk.backtest?.done === true', undefined, { timeout: 60_000 });
    assert.equal(await page.evaluate("window.desk.backtest.status"), 'completed');
    assert.ok((await page.locator('#bt-result dt').count()) > 0, 'the result summary');
    assert.match((await page.textContent('#bt-status')) ?? '', /completed/);
    await page.screenshot({ path: new URL('desk-desktop-alerts-backtest.png', ARTIFACTS).pathname, fullPage: true });
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('phone: a gateway that stops marks prices stale with their age; its restart resumes them', async () => {
    const own = await startGateway();
    const port = Number(new URL(own.url).port);
    const { page } = await openDesk(browser, own.url, SIZES.phone, 'user=desk-4&symbols=MSFT');
    // Live prices came (the page holds a live position to resume from).
    await page.waitForFunction('window.desk.live.MSFT > 0', undefined, { timeout: 10_000 });
    await own.stop();
    await page.waitForFunction('window.desk.stale === true', undefined, { timeout: 5_000 });
    await page.waitForFunction("/stale \\(as of [1-9]\\d* s ago\\)/.test(document.getElementById('stale').textContent)", undefined, { timeout: 5_000 });
    assert.equal(await page.textContent('#rtt'), '–', 'no old round trip shown');
    assert.match((await page.textContent('#watchlist tr[data-symbol="MSFT"] .age')) ?? '', /^\d+ s$/);
    await page.screenshot({ path: new URL('desk-phone-stale.png', ARTIFACTS).pathname, fullPage: true });
    const again = await startGateway(port);
    try {
      await page.waitForFunction("window.desk.state === 'open' && window.desk.stale === false", undefined, { timeout: 15_000 });
      await page.waitForFunction("window.desk.resumes.some((r) => r.key === 'MSFT' && r.resume === 'replayed')", undefined, { timeout: 5_000 }).catch(async (error: unknown) => {
        throw new Error(`no replayed resume: ${JSON.stringify(await page.evaluate('window.desk.resumes'))}`, { cause: error });
      });
      assert.ok(await page.isHidden('#stale'));
      await page.waitForFunction("window.desk.notices.some((n) => /MSFT: back/.test(n.text))");
    } finally {
      await page.close();
      await again.stop();
    }
  });
});
