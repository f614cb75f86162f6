// The replay feed against a small file: a second start() while the first is still opening
// the file is refused, and every trade of the file is handed over once, in order.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../core/errors.ts';
import { ReplayFeed } from './replay-feed.ts';
import type { FeedSink, TradeTick } from './feed.ts';

describe('ReplayFeed', () => {
  it('refuses a second start while the first is opening the file, and hands over each trade once', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tickbus-replay-spec-')), 'trades.ndjson');
    const lines = Array.from({ length: 50 }, (_, i) => JSON.stringify({ symbol: 'AAPL', price: 100 + i, volume: i + 1, timestamp: new Date(Date.UTC(2025, 3, 24, 13, 30, 0, i)).toISOString() }));
    writeFileSync(file, `${lines.join('\n')}\n`);
    const trades: TradeTick[] = [];
    let ended!: () => void;
    const end = new Promise<void>((resolve) => (ended = resolve));
    const sink: FeedSink = {
      trade: (tick) => void trades.push(tick),
      order: () => undefined,
      problem: (_message, details) => {
        if (details.code === 'end_of_file') ended();
      },
    };
    const feed = new ReplayFeed({ file, speed: 'max' });
    const first = feed.start(['AAPL'], sink);
    await assert.rejects(feed.start(['AAPL'], sink), ConfigError);
    await first;
    await end;
    await feed.stop();
    assert.deepEqual(trades.map((t) => t.volume), Array.from({ length: 50 }, (_, i) => i + 1));
  });
});
