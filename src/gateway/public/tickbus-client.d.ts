// Types of the gateway's client library (tickbus-client.js), for TypeScript users in Node.
export interface Update<D = unknown> {
  channel: string;
  symbol?: string;
  position?: string;
  replayed?: true;
  data: D;
}

export type State = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface ClientOptions {
  /** A JWT, when the gateway requires one. */
  token?: string;
  /** A WebSocket implementation (Node: `import { WebSocket } from 'ws'`); browsers have their own. */
  WebSocket?: unknown;
  /** Reconnection back-off. @default { baseMs: 250, maxMs: 10000 } */
  reconnect?: { baseMs?: number; maxMs?: number };
  /** How often to measure the round trip. @default 5000 */
  pingMs?: number;
}

export declare class TickbusClient {
  /** One gateway's /ws URL, or several: after a lost connection the next one is tried, and the client resumes there. */
  constructor(url: string | string[], options?: ClientOptions);
  /** The gateway connected to (or tried) now. */
  readonly url: string;
  readonly urls: readonly string[];
  readonly state: State;
  readonly rttMs: number | undefined;
  readonly symbols: Set<string>;
  readonly channels: Set<string>;
  /** The last position seen per symbol or channel. */
  readonly positions: Map<string, string>;
  on<D = unknown>(event: 'update', listener: (update: Update<D>) => void): this;
  on(event: 'state', listener: (state: State) => void): this;
  on<M = Record<string, unknown>>(event: 'snapshot' | 'subscribed' | 'unsubscribed' | 'error' | 'notice' | 'welcome', listener: (message: M) => void): this;
  off(event: string, listener: (arg: never) => void): this;
  connect(): Promise<unknown>;
  subscribe(symbols: string[], since?: Record<string, string>): void;
  subscribeChannels(channels: string[]): void;
  unsubscribe(symbols: string[]): void;
  close(): void;
}
