// Assembles a running gateway: its bus (or the bus of a broker in the same process), the
// broker's last-value cache for snapshots, the job records for job progress, the command
// link of the alert preferences, router and inboxes (on Redis only), and the Gateway
// listening; and takes it all down again in order. `tickbus gateway` and `tickbus up`
// both start theirs here (as the broker's start in broker-runtime.ts).
import { createBus, type TickBus } from '../bus/tick-bus.ts';
import { cleanUpWithin } from '../core/background.ts';
import type { RedisConfig } from '../core/config.ts';
import type { HealthReport } from '../ops/ops-server.ts';
import { RedisBrokerStore } from '../broker/broker-store.ts';
import { JobService } from '../jobs/job-service.ts';
import { JobStore } from '../jobs/job-store.ts';
import { connectCommands, type CommandLink } from '../transports/commands.ts';
import { Gateway, type GatewayOptions } from './gateway.ts';

/** The connection name of the gateway's job-record reads. */
const JOBS_CONNECTION = 'tickbus:gateway-jobs';
/** The connection name of the alert preferences, claims and inboxes. */
const ALERTS_CONNECTION = 'tickbus:gateway-alerts';

/** A broker in the same process, whose bus and last-value cache the gateway uses (and does not close). */
export interface SharedBroker {
  readonly bus: TickBus;
  lastValue(ticker: string): Promise<string | undefined>;
}

export interface GatewayRuntimeOptions extends Omit<GatewayOptions, 'bus' | 'lastValue' | 'jobOwner' | 'health'> {
  /**
   * The Redis: the job records are read there (job progress to its owner), and, without
   * `broker`, it carries the gateway's own bus and the broker's last-value cache.
   * Undefined only with `broker` (an in-memory system): then no job relay.
   */
  redis: RedisConfig | undefined;
  /** Share this broker's bus and last-value cache instead of connecting a bus of its own. */
  broker?: SharedBroker;
  /** Envelope sender of the gateway's own bus. @default 'gateway' */
  sender?: string;
  /** How long start-up waits for Redis, per connection. */
  connectTimeoutMs?: number;
  /** What /health reports, from the gateway; default the gateway's own. */
  health?: (gateway: Gateway) => HealthReport | Promise<HealthReport>;
}

export interface GatewayRuntime {
  readonly gateway: Gateway;
  /** The bus the gateway reads (its own, or the shared broker's). */
  readonly bus: TickBus;
  readonly url: string;
  /** Takes down what this runtime started; a shared broker's bus is left to its owner. */
  stop(): Promise<void>;
}

export async function startGatewayRuntime(options: GatewayRuntimeOptions): Promise<GatewayRuntime> {
  const { redis, broker, sender, connectTimeoutMs, health, ...settings } = options;
  let bus: TickBus;
  /** The bus (and the Redis of the last-value cache) when not shared: started and stopped here. */
  let own: { readonly bus: TickBus; readonly redis: RedisConfig } | undefined;
  if (broker) bus = broker.bus;
  else if (redis) bus = (own = { bus: createBus({ redis: { url: redis.url }, sender: sender ?? 'gateway', logger: options.logger, connectTimeoutMs }), redis }).bus;
  else throw new TypeError('startGatewayRuntime: give the Redis, or a broker to share.');
  let store: RedisBrokerStore | undefined;
  let jobs: JobStore | undefined;
  let alerts: CommandLink | undefined;
  let gateway: Gateway | undefined;
  try {
    let cache: Pick<SharedBroker, 'lastValue'> | undefined = broker;
    if (own) {
      await own.bus.connect();
      cache = store = await RedisBrokerStore.connect(own.redis, connectTimeoutMs);
    }
    const lastValue = cache;
    // Job progress to its owner needs the job records, which live in Redis.
    const records = (jobs = redis ? await JobStore.connect(redis, JOBS_CONNECTION, connectTimeoutMs) : undefined);
    // Alerts and inboxes live in Redis (a stream per user, claims across gateways): always on
    // Redis, whatever channels are exposed, so that every gateway shares the routing.
    const link = (alerts = redis ? await connectCommands(redis, { name: ALERTS_CONNECTION, ...(connectTimeoutMs === undefined ? {} : { connectTimeoutMs }) }) : undefined);
    if (!link) options.logger.info('gateway: no Redis, so no alert routing and no inboxes (the alerts, inbox and ack requests are refused)');
    const started: Gateway = new Gateway({
      ...settings,
      bus,
      ...(lastValue ? { lastValue: async (symbol: string) => parseJson(await lastValue.lastValue(symbol)) } : {}),
      ...(records ? { jobOwner: async (jobId: string) => (await records.get(jobId))?.user_id, jobService: new JobService(bus, records) } : {}),
      ...(link && redis ? { alerts: { redis: link, cluster: redis.cluster !== undefined } } : {}),
      ...(health ? { health: () => health(started) } : {}),
    });
    gateway = started;
    const { url } = await started.listen();
    const [openStore, openJobs, openAlerts, ownBus] = [store, jobs, alerts, own?.bus];
    return {
      gateway: started,
      bus,
      url,
      async stop() {
        await started.close();
        await openStore?.close();
        await openJobs?.close();
        await openAlerts?.close();
        await ownBus?.close();
      },
    };
  } catch (error) {
    // Everything that started goes down again, within a bound; the caller says what to change.
    const [openGateway, openStore, openJobs, openAlerts, ownBus] = [gateway, store, jobs, alerts, own?.bus];
    await cleanUpWithin([() => openGateway?.close(), () => openStore?.close(), () => openJobs?.close(), () => openAlerts?.close(), () => ownBus?.close()]);
    throw error;
  }
}

/** A cached last value (JSON text) as a value; text that is not JSON counts as none. */
function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return value;
  } catch {
    return undefined;
  }
}
