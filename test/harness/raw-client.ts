// A plain node-redis client for tests that act as a foreign service: it publishes the
// seed's JSON by hand and reads channels without tickbus. It takes a redis:// URL or a
// redis-cluster://host:port,host:port,… URL (then it is a node-redis cluster client).
import { createClient, createCluster, type RedisClientType } from 'redis';

export interface RawMessage {
  channel: string;
  envelope: { data: Record<string, unknown>; timestamp: string; sender: string };
}

type Listener = (message: string, channel: string) => void;

/** Where the client reads from, on one Redis or on a cluster. */
interface Subscriber {
  subscribe(channels: string[], listener: Listener): Promise<void>;
  sSubscribe(channels: string[], listener: Listener): Promise<void>;
  pSubscribe(pattern: string, listener: Listener): Promise<void>;
  close(): Promise<void>;
}

async function singleSubscriber(url: string): Promise<Subscriber> {
  const client = createClient({ url });
  await client.connect();
  return {
    subscribe: (channels, listener) => client.subscribe(channels, listener),
    sSubscribe: () => Promise.reject(new Error('Sharded pub/sub is for a cluster; on one Redis the broker PUBLISHes.')),
    pSubscribe: (pattern, listener) => client.pSubscribe(pattern, listener),
    close: () => client.close(),
  };
}

async function clusterSubscriber(url: string): Promise<Subscriber> {
  const cluster = createCluster({ rootNodes: clusterSeeds(url).map((seed) => ({ url: seed })) });
  await cluster.connect();
  return {
    subscribe: (channels, listener) => cluster.subscribe(channels, listener),
    // One SSUBSCRIBE a channel: each goes to its own slot's master (several channels in one
    // command must share a slot, or Redis answers CROSSSLOT).
    async sSubscribe(channels, listener) {
      for (const channel of channels) await cluster.sSubscribe(channel, listener);
    },
    pSubscribe: (pattern, listener) => cluster.pSubscribe(pattern, listener),
    close: () => cluster.close(),
  };
}

/** `redis-cluster://[user:password@]h1:p1,h2:p2` → seed node URLs. */
function clusterSeeds(url: string): string[] {
  const rest = url.slice('redis-cluster://'.length);
  const at = rest.lastIndexOf('@');
  const auth = at >= 0 ? `${rest.slice(0, at)}@` : '';
  const hosts = rest.slice(at + 1).split(/[/?]/)[0] ?? '';
  return hosts
    .split(',')
    .filter(Boolean)
    .map((hostPort) => `redis://${auth}${hostPort}`);
}

export class RawClient {
  private readonly pub: RedisClientType;
  private readonly sub: Subscriber;
  /** Connected to a Redis Cluster (ticker channels are sharded there). */
  readonly clustered: boolean;

  private constructor(pub: RedisClientType, sub: Subscriber, clustered: boolean) {
    this.pub = pub;
    this.sub = sub;
    this.clustered = clustered;
  }

  static async connect(url: string): Promise<RawClient> {
    const clustered = url.startsWith('redis-cluster://');
    // Publishing is plain PUBLISH on one connection, on a cluster to its first seed node
    // (the cluster bus carries it to every node), as a simple service would do. Not the
    // node-redis cluster client: it sends each keyless PUBLISH to the next node in turn, and
    // two messages of one channel could then reach a subscriber by two paths, out of order.
    const pub = createClient({ url: clustered ? clusterSeeds(url)[0] : url }) as RedisClientType;
    const [, sub] = await Promise.all([pub.connect(), clustered ? clusterSubscriber(url) : singleSubscriber(url)]);
    return new RawClient(pub, sub, clustered);
  }

  /**
   * Publishes `data` wrapped in the seed 001 envelope, as a Python service would. Resolves
   * with PUBLISH's reply: on a cluster, the subscribers on the node that took it only.
   */
  async send(channel: string, data: unknown, sender = 'python_bot'): Promise<number> {
    return this.pub.publish(channel, JSON.stringify({ data, timestamp: new Date().toISOString(), sender }));
  }

  /** Publishes a message as it is (any text: garbage too). Resolves with PUBLISH's reply. */
  async publish(channel: string, message: string): Promise<number> {
    return this.pub.publish(channel, message);
  }

  /** Publishes messages pipelined in one round trip, in order: a burst. */
  async publishAll(channel: string, messages: readonly string[]): Promise<void> {
    const multi = this.pub.multi();
    for (const m of messages) multi.publish(channel, m);
    await multi.execAsPipeline();
  }

  /**
   * Collects envelopes from channels matching a pattern (classic pub/sub). On a cluster a
   * pattern cannot see sharded channels (the ticker channels): use collectTickers there.
   */
  async collect(pattern: string): Promise<RawMessage[]> {
    const out: RawMessage[] = [];
    await this.sub.pSubscribe(pattern, this.#into(out));
    return out;
  }

  /**
   * Collects envelopes from TICKER_UPDATES_<ticker> of each ticker named, in the order they
   * arrive: SUBSCRIBE on one Redis, SSUBSCRIBE on a cluster (where the broker SPUBLISHes
   * them, each on its ticker's shard).
   */
  async collectTickers(tickers: readonly string[]): Promise<RawMessage[]> {
    const out: RawMessage[] = [];
    const channels = tickers.map((t) => `TICKER_UPDATES_${t}`);
    await (this.clustered ? this.sub.sSubscribe(channels, this.#into(out)) : this.sub.subscribe(channels, this.#into(out)));
    return out;
  }

  #into(out: RawMessage[]): Listener {
    return (message, channel) => out.push({ channel, envelope: JSON.parse(message) as RawMessage['envelope'] });
  }

  async close(): Promise<void> {
    await Promise.all([this.pub.close(), this.sub.close()]);
  }
}
