// The Alpaca feed's configuration: its defaults, the account and endpoints read from an
// environment object the caller passes in (only the CLI reads the real one), and the feed's
// options checked and resolved into the timings the sockets run on.
import { resolveReconnect, type ReconnectOptions } from '../../../core/config.ts';
import { ConfigError, preview } from '../../../core/errors.ts';
import type { Logger } from '../../../core/logger.ts';

export const ALPACA_DATA_FEEDS = ['iex', 'sip', 'test', 'delayed_sip'] as const;
export type AlpacaDataFeed = (typeof ALPACA_DATA_FEEDS)[number];

/** Every default of the Alpaca feed, named in one place. */
export const ALPACA_DEFAULTS = Object.freeze({
  /** The free market-data feed, which every account may stream. */
  feed: 'iex',
  /** The market-data stream; `{feed}` is replaced by the chosen feed. */
  dataStreamUrl: 'wss://stream.data.alpaca.markets/v2/{feed}',
  /** The paper account's trading stream (order updates), which the default baseUrl leads to. */
  tradingStreamUrl: 'wss://paper-api.alpaca.markets/stream',
  /** The paper account's REST API: orders go to the paper account unless told otherwise. */
  baseUrl: 'https://paper-api.alpaca.markets',
  /** Alpaca's own JS SDK pings every 10 s and gives up on a pong after 5 s. */
  pingIntervalMs: 10_000,
  /** How long a pong may take before the connection is dropped and retried (as the SDK). */
  pongTimeoutMs: 5_000,
  /** Alpaca drops a client that has not authenticated within 10 s (404); we wait as long. */
  handshakeTimeoutMs: 10_000,
  /** Slower than the Redis default: Alpaca allows one data connection per account (406). */
  reconnectBaseMs: 500,
  /** The longest wait between two reconnection attempts. */
  reconnectMaxMs: 30_000,
  /** How long POST /v2/orders may take before the order is reported rejected. */
  orderTimeoutMs: 10_000,
  /** How long a closing handshake may take before the socket is destroyed. */
  closeTimeoutMs: 1_000,
  /** The largest frame the sockets accept: a bound on the memory one frame may take. */
  maxPayloadBytes: 16 * 1024 * 1024,
});

export interface AlpacaConfig {
  readonly keyId: string;
  readonly secretKey: string;
  readonly feed: AlpacaDataFeed;
  /** The market-data stream, feed already substituted. */
  readonly dataStreamUrl: string;
  readonly tradingStreamUrl: string;
  /** The REST API, without a trailing slash or `/v2`. */
  readonly baseUrl: string;
}

/** Every environment variable alpacaConfigFromEnv reads: all the CLI passes it. */
export const ALPACA_ENV = Object.freeze(['APCA_API_KEY_ID', 'APCA_API_SECRET_KEY', 'ALPACA_FEED', 'ALPACA_DATA_STREAM_URL', 'ALPACA_TRADING_STREAM_URL', 'APCA_API_BASE_URL'] as const);

/**
 * Reads the Alpaca configuration from an environment (the CLI passes its own):
 * APCA_API_KEY_ID and APCA_API_SECRET_KEY (required), ALPACA_FEED, ALPACA_DATA_STREAM_URL,
 * ALPACA_TRADING_STREAM_URL, APCA_API_BASE_URL.
 */
export function alpacaConfigFromEnv(env: NodeJS.ProcessEnv): AlpacaConfig {
  const keyId = required(env, 'APCA_API_KEY_ID', 'your Alpaca API key id');
  const secretKey = required(env, 'APCA_API_SECRET_KEY', 'the secret of that key');
  const feedText = (env.ALPACA_FEED ?? '').trim().toLowerCase() || ALPACA_DEFAULTS.feed;
  if (!(ALPACA_DATA_FEEDS as readonly string[]).includes(feedText)) {
    throw new ConfigError(`ALPACA_FEED "${preview(feedText)}" is not one of ${ALPACA_DATA_FEEDS.join(', ')}.`);
  }
  const feed = feedText as AlpacaDataFeed;
  const dataTemplate = env.ALPACA_DATA_STREAM_URL?.trim() || ALPACA_DEFAULTS.dataStreamUrl;
  const dataStreamUrl = checkUrl(dataTemplate.replaceAll('{feed}', feed), 'ALPACA_DATA_STREAM_URL', ['ws:', 'wss:']);
  // Users of the official SDKs often write the base with /v2; orders go to {base}/v2/orders.
  const baseUrl = checkUrl(env.APCA_API_BASE_URL?.trim() || ALPACA_DEFAULTS.baseUrl, 'APCA_API_BASE_URL', ['http:', 'https:'])
    .replace(/\/+$/, '')
    .replace(/\/v2$/, '');
  // Live keys are refused by the paper stream, so the trading stream follows the REST base.
  const tradingStreamUrl = checkUrl(
    env.ALPACA_TRADING_STREAM_URL?.trim() || `${baseUrl.replace(/^http/, 'ws')}/stream`,
    'ALPACA_TRADING_STREAM_URL',
    ['ws:', 'wss:'],
  );
  return Object.freeze({ keyId, secretKey, feed, dataStreamUrl, tradingStreamUrl, baseUrl });
}

function required(env: NodeJS.ProcessEnv, name: string, what: string): string {
  const value = env[name]?.trim();
  if (!value) throw new ConfigError(`${name} is not set: set it to ${what} (Alpaca dashboard, API keys) to use the Alpaca feed.`);
  return value;
}

function checkUrl(text: string, name: string, protocols: readonly string[]): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`${name} "${preview(text)}" is not a URL.`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(`${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')}, got "${preview(text)}".`);
  }
  return text;
}

export interface AlpacaFeedOptions {
  /** Also stream quotes, each as a tick at the mid price with volume 0. @default false */
  quotes?: boolean;
  /** Also stream minute bars, each as a tick at the close with the bar's volume. @default false */
  bars?: boolean;
  /** Listen to order updates on the trading stream. @default true */
  tradingStream?: boolean;
  /** @default 10000 */
  pingIntervalMs?: number;
  /** @default 5000 */
  pongTimeoutMs?: number;
  /** How long the greeting, the authentication reply and the listen reply may take. @default 10000 */
  handshakeTimeoutMs?: number;
  /** @default { baseMs: 500, maxMs: 30000 } */
  reconnect?: ReconnectOptions;
  /** How long POST /v2/orders may take before the order is reported rejected. @default 10000 */
  orderTimeoutMs?: number;
  /** @default a pino logger named "alpaca-feed" */
  logger?: Logger;
  /** The jitter source of the back-off (tests make it deterministic). @default Math.random */
  random?: () => number;
}

/** How both sockets keep their connection: checked options, defaults filled in. */
export interface SocketTiming {
  readonly pingIntervalMs: number;
  readonly pongTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly reconnect: Required<ReconnectOptions>;
  readonly random: () => number;
}

/** The socket timings of the options; throws ConfigError on one that is not a positive number. */
export function resolveSocketTiming(options: AlpacaFeedOptions): SocketTiming {
  return {
    pingIntervalMs: positive(options.pingIntervalMs ?? ALPACA_DEFAULTS.pingIntervalMs, 'pingIntervalMs'),
    pongTimeoutMs: positive(options.pongTimeoutMs ?? ALPACA_DEFAULTS.pongTimeoutMs, 'pongTimeoutMs'),
    handshakeTimeoutMs: positive(options.handshakeTimeoutMs ?? ALPACA_DEFAULTS.handshakeTimeoutMs, 'handshakeTimeoutMs'),
    reconnect: resolveReconnect({
      baseMs: options.reconnect?.baseMs ?? ALPACA_DEFAULTS.reconnectBaseMs,
      maxMs: options.reconnect?.maxMs ?? ALPACA_DEFAULTS.reconnectMaxMs,
    }),
    random: options.random ?? Math.random,
  };
}

export function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new ConfigError(`The Alpaca feed option ${name} must be a positive number, got ${String(value)}.`);
  return value;
}
