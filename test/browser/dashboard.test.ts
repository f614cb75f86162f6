// The dashboard in real headless Chromium against a real broker, gateway and redis-server:
// the page loads and connects, a symbol is added from the page, prices arrive, the chart
// draws, an order update shows in its table, and a reload resumes. A screenshot is kept in
// artifacts/ as the test's record.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { startBrokerRuntime, type BrokerRuntime } from '../../src/broker/broker-runtime.ts';
import { SimFeed } from '../../src/broker/feeds/sim-feed.ts';
import { Gateway } from '../../src/gateway/gateway.ts';
import { TickerUpdates } from '../../src/index.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { silentLogger } from '../harness/quiet.ts';
import { launchChromium } from '../harness/browser.ts';

const ARTIFACTS = new URL('../../artifacts/', import.meta.url);

interface DashboardState {
  prices: Record<string, number>;
  points: number;
  orders: number;
  state: string;
  resumes: Array<{ key: string; resume: string; replayed: number }>;
}

// Page functions are given as source text: they run in the browser, not under Node's types.
const state = (page: Page) => page.evaluate<DashboardState>('window.dashboard');

describe('dashboard in Chromium', () => {
  let server: RedisServer;
  let broker: BrokerRuntime;
  let gateway: Gateway;
  let browser: Browser;
  let url: string;

  before(async () => {
    server = await startRedis();
    broker = await startBrokerRuntime({ redisUrl: server.url, feed: new SimFeed({ ratePerTicker: 20 }), logger: silentLogger });
    gateway = new Gateway({ bus: broker.bus, logger: silentLogger, port: 0, batchMs: 100, lastValue: async (s) => JSON.parse((await broker.store.lastValue(s)) ?? 'null') as unknown });
    url = (await gateway.listen()).url;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await gateway?.close();
    await broker?.stop();
    await server?.stop();
  });

  it('loads, connects, adds a symbol from the page, shows prices, draws the chart and order updates, and resumes after a reload', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    await page.goto(`${url}/?symbols=AAPL`);
    await page.waitForFunction("window.dashboard?.state === 'open'");
    assert.equal(await page.textContent('#state'), 'open');

    // Add a symbol the way a trader would: type it, press Enter.
    await page.fill('#symbol', 'nvda');
    await page.press('#symbol', 'Enter');
    await page.waitForSelector('#watchlist tr[data-symbol="NVDA"]');
    await page.waitForFunction('window.dashboard.prices.AAPL !== undefined && window.dashboard.prices.NVDA !== undefined', undefined, { timeout: 15_000 });
    const last = await page.textContent('#watchlist tr[data-symbol="NVDA"] td.last, #watchlist tr[data-symbol="NVDA"] td:nth-child(2)');
    assert.match(last ?? '', /^\d+\.\d{2}$/, `a price in the watch-list, got "${last}"`);

    // The chart of the selected symbol (AAPL, the first) gets points as trades arrive.
    await page.waitForFunction('window.dashboard.points >= 2', undefined, { timeout: 15_000 });
    assert.ok((await page.locator('#chart canvas').count()) > 0, 'lightweight-charts drew on a canvas');

    // An order update from the broker shows in the orders table.
    await broker.bus.publish(TickerUpdates.of({ ticker: 'AAPL' }), { type: 'order', timestamp: new Date().toISOString(), symbol: 'AAPL', order_data: { client_order_id: 'ui-1', side: 'buy', qty: '5', status: 'filled', filled_avg_price: '150.25' } });
    await page.waitForSelector('#orders tbody tr');
    assert.match((await page.textContent('#orders tbody tr')) ?? '', /ui-1.*buy.*filled/);

    // Remove a symbol: its row goes, and the gateway's room with it once no one watches.
    await page.click('#watchlist tr[data-symbol="NVDA"] button.remove');
    await page.waitForSelector('#watchlist tr[data-symbol="NVDA"]', { state: 'detached' });
    assert.deepEqual(await page.evaluate("localStorage.getItem('tickbus.symbols')"), '["AAPL"]');

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL('dashboard.png', ARTIFACTS).pathname, fullPage: true });

    // A reload keeps the watch-list (in the URL) and asks the gateway for a snapshot.
    await page.reload();
    await page.waitForFunction('window.dashboard?.resumes.length === 1');
    const after = await state(page);
    assert.equal(after.resumes[0]?.key, 'AAPL');
    assert.equal(after.resumes[0]?.resume, 'snapshot', 'the last value, at once');
    assert.deepEqual(problems, [], 'no errors in the page');
    await page.close();
  });

  it('shows the connection state while the gateway restarts, and resumes from history after it', async () => {
    const first = new Gateway({ bus: broker.bus, logger: silentLogger, port: 0, batchMs: 100 });
    const { url: restartUrl, port } = await first.listen();
    const page = await browser.newPage();
    await page.goto(`${restartUrl}/?symbols=MSFT`);
    await page.waitForFunction('window.dashboard?.prices.MSFT !== undefined', undefined, { timeout: 15_000 });
    await first.close();
    await page.waitForFunction("window.dashboard.state === 'reconnecting'", undefined, { timeout: 5_000 });
    assert.equal(await page.textContent('#state'), 'reconnecting');
    const again = new Gateway({ bus: broker.bus, logger: silentLogger, port, batchMs: 100 });
    await again.listen();
    try {
      await page.waitForFunction("window.dashboard.state === 'open'", undefined, { timeout: 15_000 });
      // It resubscribed with its last position: the gateway filled the gap from history.
      await page.waitForFunction("window.dashboard.resumes.some((r) => r.resume === 'replayed')", undefined, { timeout: 5_000 });
    } finally {
      await page.close();
      await again.close();
    }
  });
});
