// The replay file's format (docs/feeds.md), one trade a line, shared by the broker's replay
// feed and the backtest worker (which makes bars of the same file), so both read a file the
// same way:
//   NDJSON: tickbus's {"symbol","price","volume","timestamp"} or Alpaca's trade message
//           {"T":"t","S","p","s","t"} (a line may hold an Alpaca array of messages);
//   CSV:    a header naming timestamp,symbol,price,volume (any order), then one trade a line.
import { ConfigError } from './errors.ts';

/** One recorded trade; `timestamp` is ISO-8601 at the source. */
export interface RecordedTrade {
  readonly symbol: string;
  readonly price: number;
  readonly volume: number;
  readonly timestamp: string;
}

/** Parses one line (after the first); throws on a line that is not a trade. */
export type TradeLineParser = (line: string) => RecordedTrade[];

/**
 * A symbol that trimming and upper-casing would leave as it is: printable ASCII without a
 * space or a lower-case letter (most files have them so, and they are not copied).
 */
const CANONICAL_SYMBOL = /^[!-`{-~]*$/;

function tickFrom(symbol: unknown, price: unknown, volume: unknown, timestamp: unknown): RecordedTrade {
  if (typeof symbol !== 'string' || typeof price !== 'number' || !Number.isFinite(price) || typeof timestamp !== 'string') {
    throw new Error('not a trade');
  }
  return { symbol: CANONICAL_SYMBOL.test(symbol) ? symbol : symbol.trim().toUpperCase(), price, volume: typeof volume === 'number' && Number.isFinite(volume) ? volume : 0, timestamp };
}

/** The trade of one recorded message, or undefined for another message (quotes, bars, subscription echoes). */
function tradeOf(item: unknown): RecordedTrade | undefined {
  if (item === null || typeof item !== 'object') return undefined;
  const m = item as Record<string, unknown>;
  if (m.T === 't') return tickFrom(m.S, m.p, m.s, m.t);
  if (m.T === undefined) return tickFrom(m.symbol, m.price, m.volume, m.timestamp);
  return undefined;
}

/** No trade on this line (shared: callers only read what a parser returns). */
const NONE: RecordedTrade[] = Object.freeze([]) as unknown as RecordedTrade[];

export function parseJsonLine(line: string): RecordedTrade[] {
  const value = JSON.parse(line) as unknown;
  // One message a line is the common case (a replay at 200,000 lines a second): no arrays to build.
  if (!Array.isArray(value)) {
    const trade = tradeOf(value);
    return trade === undefined ? NONE : [trade];
  }
  const ticks: RecordedTrade[] = [];
  for (const item of value) {
    const trade = tradeOf(item);
    if (trade !== undefined) ticks.push(trade);
  }
  return ticks;
}

export function csvParser(header: string): TradeLineParser {
  const cols = header.split(',').map((c) => c.trim().toLowerCase());
  const at = (name: string) => {
    const i = cols.indexOf(name);
    if (i < 0) throw new ConfigError(`The replay CSV header must name timestamp, symbol, price and volume; it has: ${header}`);
    return i;
  };
  const [ts, sym, px, vol] = [at('timestamp'), at('symbol'), at('price'), at('volume')];
  return (line) => {
    const f = line.split(',');
    return [tickFrom(f[sym], Number(f[px]), Number(f[vol]), f[ts]?.trim())];
  };
}

/** The parser for a file whose first non-empty line is `first`: JSON lines, or CSV after its header (which is not a trade). */
export function tradeLineParser(first: string): { parser: TradeLineParser; firstIsHeader: boolean } {
  if (first.startsWith('{') || first.startsWith('[')) return { parser: parseJsonLine, firstIsHeader: false };
  return { parser: csvParser(first), firstIsHeader: true };
}
