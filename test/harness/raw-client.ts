// A plain node-redis client for tests that act as a foreign service: it publishes the
// seed's JSON by hand and reads channels without tickbus.
import { createClient, type RedisClientType } from 'redis';

export interface RawMessage {
  channel: string;
  envelope: { data: Record<string, unknown>; timestamp: string; sender: string };
}

export class RawClient {
  private constructor(
    readonly pub: RedisClientType,
    readonly sub: RedisClientType,
  ) {}

  static async connect(url: string): Promise<RawClient> {
    const pub = createClient({ url }) as unknown as RedisClientType;
    const sub = createClient({ url }) as unknown as RedisClientType;
    await Promise.all([pub.connect(), sub.connect()]);
    return new RawClient(pub, sub);
  }

  /** Publishes `data` wrapped in the seed 001 envelope, as a Python service would. */
  async send(channel: string, data: unknown, sender = 'python_bot'): Promise<number> {
    return this.pub.publish(channel, JSON.stringify({ data, timestamp: new Date().toISOString(), sender }));
  }

  /** Collects envelopes from channels matching a pattern. */
  async collect(pattern: string): Promise<RawMessage[]> {
    const out: RawMessage[] = [];
    await this.sub.pSubscribe(pattern, (message: string, channel: string) => {
      out.push({ channel, envelope: JSON.parse(message) as RawMessage['envelope'] });
    });
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([this.pub.close(), this.sub.close()]);
  }
}
