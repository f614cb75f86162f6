// The package under test, as its users run it: the built dist/ (what the `tickbus` command
// and an installed package load), not src/ through tsx, whose transform adds work to every
// function a hot path makes (a tenth of the broker's replay, measured 2026-12-05). Every
// benchmark process takes tickbus from here, so that no object crosses from one copy of the
// code to the other. Types come from src/ (so type checking needs no build); dist/ is built
// first when it is missing or older than src/.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type * as Index from '../../src/index.ts';
import type * as GatewayModule from '../../src/gateway/gateway.ts';
import type * as GatewayRuntimeModule from '../../src/gateway/gateway-runtime.ts';
import type * as BrokerRuntimeModule from '../../src/broker/broker-runtime.ts';
import type * as ReplayFeedModule from '../../src/broker/feeds/replay-feed.ts';
import type * as PatternRuntimeModule from '../../src/tickstock/pattern-runtime.ts';
import type * as ConfigModule from '../../src/core/config.ts';

const root = new URL('../../', import.meta.url);
const buildScript = fileURLToPath(new URL('scripts/build.mjs', root));
const { isStale } = (await import(buildScript)) as { isStale: () => boolean };
if (isStale()) {
  const built = spawnSync(process.execPath, [buildScript, '--if-stale'], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (built.status !== 0) throw new Error('bench: building dist/ failed (npm run build shows why)');
}

/** A module of dist/ by its path under dist/ (a variable: type checking does not look for it). */
async function built<T>(path: string): Promise<T> {
  return (await import(new URL(`dist/${path}`, root).href)) as T;
}

const index = await built<typeof Index>('index.js');
export const { createBus, createBotClient, defineCatalog, defineChannel, streamKey, BusError, TickerUpdates, PriceUpdateSchema, TICKER, tickstock } = index;
export type { BotClient, OrderTicket, PublishReceipt, StandardSchemaV1, TickBus } from '../../src/index.ts';
export const { Gateway } = await built<typeof GatewayModule>('gateway/gateway.js');
export const { startGatewayRuntime } = await built<typeof GatewayRuntimeModule>('gateway/gateway-runtime.js');
export const { startBrokerRuntime } = await built<typeof BrokerRuntimeModule>('broker/broker-runtime.js');
export type { BrokerRuntime } from '../../src/broker/broker-runtime.ts';
export const { ReplayFeed } = await built<typeof ReplayFeedModule>('broker/feeds/replay-feed.js');
export type { ReplayFeedOptions } from '../../src/broker/feeds/replay-feed.ts';
export type { FeedSink } from '../../src/broker/feeds/feed.ts';
export const { startPatternRuntime } = await built<typeof PatternRuntimeModule>('tickstock/pattern-runtime.js');
export const { resolveRedisConfig } = await built<typeof ConfigModule>('core/config.js');
