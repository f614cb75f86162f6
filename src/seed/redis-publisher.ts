// RedisPublisher from seed 001: publish(channelName, data) over the typed bus, so every
// message is checked against its channel's schema before it reaches Redis.
import type { Publisher } from '../bus/publisher.ts';
import { createPublisher } from '../bus/tick-bus.ts';
import { toBusOptions, type RedisClientOptions } from './client-options.ts';

export class RedisPublisher {
  /** The typed publisher underneath, for its events and the channel-object API. */
  readonly bus: Publisher;

  /** Connects on the first publish (or connect()); the address is resolved now. */
  constructor(options: RedisClientOptions = {}) {
    this.bus = createPublisher(toBusOptions(options));
  }

  /** Connects now rather than on the first publish, to find a missing Redis early. */
  async connect(): Promise<this> {
    await this.bus.connect();
    return this;
  }

  /**
   * Validates `data` against the channel's schema, wraps it in the envelope and publishes
   * it. Resolves with the number of subscribers Redis delivered it to. Rejects with
   * MessageValidationError for invalid data and UnknownChannelError for a channel no
   * catalog defines; in both cases nothing is sent.
   */
  publish(channel: string, data: unknown): Promise<number> {
    return this.bus.publish(channel, data).then((receipt) => receipt.receivers);
  }

  close(): Promise<void> {
    return this.bus.close();
  }
}
