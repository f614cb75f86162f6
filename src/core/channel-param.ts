// Parameters that become part of a Redis channel name (tickers, symbols, user ids).
// They are checked against an allow-list before any channel name is built, so that a
// glob character, a space, a CRLF or a 10 kB string never reaches Redis.
import { ChannelParamError, preview } from './errors.ts';

export interface ChannelParam {
  /** What the parameter is, for error messages ("ticker"). */
  readonly label: string;
  /** Turns user input into the canonical form (trim, upper-case) before checking. */
  readonly normalize: (raw: string) => string;
  /** The allow-list: the whole normalised value must match. */
  readonly allow: RegExp;
  /** Longest accepted value, checked before the pattern runs. */
  readonly maxLength: number;
  /** A one-line description of what is allowed, shown to the user. */
  readonly rule: string;
}

export interface ChannelParamOptions {
  label: string;
  allow: RegExp;
  maxLength: number;
  rule: string;
  normalize?: (raw: string) => string;
}

export function defineParam(options: ChannelParamOptions): ChannelParam {
  return Object.freeze({
    label: options.label,
    allow: options.allow,
    maxLength: options.maxLength,
    rule: options.rule,
    normalize: options.normalize ?? ((raw: string) => raw),
  });
}

/**
 * Tickers: upper-case letters, digits, `.`, `-`, `/` (BRK.B, BF-B, BTC/USD), 1 to 15
 * characters. Input is trimmed and upper-cased first, so ` aapl ` becomes `AAPL`.
 */
export const TICKER = defineParam({
  label: 'ticker',
  allow: /^[A-Z0-9./-]{1,15}$/,
  maxLength: 15,
  rule: 'upper-case letters, digits, ".", "-" and "/", 1 to 15 characters',
  normalize: (raw) => raw.trim().toUpperCase(),
});

/** Identifiers such as user or job ids: letters, digits, `_`, `-`, `.`, `:`, 1 to 64 characters. */
export const IDENTIFIER = defineParam({
  label: 'identifier',
  allow: /^[A-Za-z0-9_.:-]{1,64}$/,
  maxLength: 64,
  rule: 'letters, digits, "_", "-", "." and ":", 1 to 64 characters',
});

/** Normalises and checks one value; throws ChannelParamError with the rule on failure. */
export function checkParam(param: ChannelParam, name: string, raw: unknown): string {
  if (typeof raw !== 'string') {
    throw new ChannelParamError(name, `The ${param.label} "${name}" must be a string, got ${raw === null ? 'null' : typeof raw}.`);
  }
  // Length first: never run a pattern over (or normalise) a 10 kB string.
  if (raw.length > param.maxLength * 4 + 16) {
    throw new ChannelParamError(name, `The ${param.label} is ${raw.length} characters long; allowed: ${param.rule}.`);
  }
  const value = param.normalize(raw);
  if (value.length === 0 || value.length > param.maxLength || !param.allow.test(value)) {
    throw new ChannelParamError(name, `Invalid ${param.label} "${preview(raw, 40)}"; allowed: ${param.rule}.`);
  }
  return value;
}
