// Field schemas the catalogs share (zod 4, the documented default validator).
import { z } from 'zod';
import { regexes } from 'zod/v4/core';
import { TICKER } from '../core/channel-param.ts';

/** ISO-8601 date-time; with or without an offset, as Python's isoformat() writes it. */
export const isoTimestamp = z.iso.datetime({ offset: true, local: true });

/** The pattern isoTimestamp checks (zod's own), for a check made without the schema: the broker's trades, once, as they come in. */
export const ISO_TIMESTAMP = regexes.datetime({ offset: true, local: true });

/** ISO-8601 date-time that must carry its time zone (seed 004: "UTC, tz-aware"). */
export const zonedTimestamp = z.iso.datetime({ offset: true });

/** A ticker as stored on the bus: already canonical (upper-case, allow-listed). */
export const ticker = z.string().max(TICKER.maxLength).regex(TICKER.allow, `a ticker: ${TICKER.rule}`);

/** A ticker as a user types it: trimmed and upper-cased, then checked. */
export const tickerInput = z
  .string()
  .max(64)
  .transform((raw) => TICKER.normalize(raw))
  .pipe(ticker);

/** A decimal amount serialised as a string, so no precision is lost in JSON ("105.89"). */
export const decimalString = z.string().regex(/^-?\d+(\.\d+)?$/, 'a decimal number written as a string, e.g. "105.89"');

/** Seconds since the epoch, as Python's time.time() writes it. */
export const unixSeconds = z.number().nonnegative();

export const nonNegativeInt = z.number().int().nonnegative();

export const metadata = z.record(z.string(), z.unknown());
