// The publish path of the Redis transport: a publish goes out at once while the connection
// is not busy, else with the others of its turn (publish-batcher.ts) in one script call
// (publish-scripts.ts); a history message is appended and published in one atomic step, and
// a fenced one only while its channel's owner key holds its token. Where Redis refuses
// scripts (an ACL, scripting disabled, a proxy) each message takes its own commands, in
// order, and fenced publishing is refused.
import type { Outbound, PublishLink, PublishReceipt, StreamWrite } from '../transport.ts';
import { isErrorReply, RedisLink, type RedisTransportOptions } from './redis-link.ts';
import { FencedError, TransportError } from '../../core/errors.ts';
import { MISPLACED, NOT_READY_REPLY, scriptCall, scriptReceipt, sent } from './publish-scripts.ts';
import { BatchReceipts, OneReceipt, PublishBatcher, type PendingPublish } from './publish-batcher.ts';

/**
 * Below this many commands in flight a publish is sent on its own, at once: an unloaded
 * publisher pays no batching delay. Above it, publishes queue and go out together.
 */
const DIRECT_IN_FLIGHT = 8;

export class RedisPublishLink extends RedisLink implements PublishLink {
  readonly #batcher: PublishBatcher;
  /** Commands sent and not yet answered (resends included). */
  #inFlight = 0;
  /** Scripted batches not yet answered: while any is, nothing may overtake it. */
  #scriptsInFlight = 0;
  #idle: Array<() => void> = [];
  /** 'script' coalesces; 'plain' sends one command per message (scripts off, or not allowed). */
  #mode: 'script' | 'plain';
  /** In plain mode, stream messages take two commands each: chained, to keep their order. */
  #plainChain: Promise<unknown> = Promise.resolve();
  readonly #isSharded: (channel: string) => boolean;

  constructor(options: RedisTransportOptions) {
    super(options, 'pub');
    this.#mode = options.coalescePublishes === false ? 'plain' : 'script';
    // Sharded pub/sub exists only on a cluster; on one Redis the seeds' services SUBSCRIBE.
    this.#isSharded = this.clustered && options.isSharded ? options.isSharded : () => false;
    this.#batcher = new PublishBatcher((chunk) => this.#send(chunk), this.clustered ? (channel) => this.conn.nodeOf(channel) : undefined);
  }

  readonly #rethrow = (error: unknown): never => {
    const translated = this.translate(error);
    this.emit('publishFailed', translated);
    throw translated;
  };

  readonly #sentOne = (receivers: number): PublishReceipt => {
    this.#answered();
    return { status: 'sent', receivers, position: undefined };
  };
  readonly #failedOne = (error: unknown): never => {
    this.#answered();
    return this.#rethrow(error);
  };

  /** Decides once whether scripts may run, before any message depends on it. */
  override async connect(): Promise<void> {
    await super.connect();
    if (this.#mode !== 'script') return;
    try {
      await this.conn.send(['EVAL', 'return 1', '0'], undefined);
    } catch (error) {
      if (isErrorReply(error)) this.#mode = 'plain'; // NOPERM, scripting disabled, a proxy
    }
  }

  publish(channel: string, payload: string, stream?: StreamWrite): Promise<PublishReceipt> {
    // A durable append is one XADD: no script to batch it in (Redis runs a command faster
    // than a script), and node-redis pipelines what is issued together anyway. Every message
    // of a channel takes the same path, so a channel's order holds.
    if (isAppend({ stream })) return this.#append(stream as StreamWrite, payload);
    const sharded = this.#isSharded(channel);
    if (this.#mode === 'plain') {
      if (stream) return this.#plainStream(channel, payload, stream, sharded);
      return this.conn.publish(channel, payload, sharded).then(sent, this.#rethrow);
    }
    // Nothing queued or scripted ahead of it (order holds) and the connection is not busy:
    // send it now (a history message as a script of one), with no batching delay.
    if (this.#batcher.empty && this.#scriptsInFlight === 0 && this.#inFlight < DIRECT_IN_FLIGHT) {
      if (stream !== undefined) return new Promise<PublishReceipt>((resolve, reject) => this.#send([{ channel, payload, stream, sharded, settle: new OneReceipt(resolve, reject), index: 0 }]));
      this.#inFlight++;
      return this.conn.publish(channel, payload, sharded).then(this.#sentOne, this.#failedOne);
    }
    return new Promise<PublishReceipt>((resolve, reject) => this.#batcher.push({ channel, payload, stream, sharded, settle: new OneReceipt(resolve, reject), index: 0 }));
  }

  /**
   * A batch gathered by the caller (the broker's 256 updates): one promise for all of it,
   * not one per message, and sent at once when nothing is queued ahead of it (no wait for
   * the end of the turn). It rejects with the first message's error, as Promise.all of
   * publish() would; the others are still sent and answered.
   */
  publishBatch(messages: readonly Outbound[]): Promise<PublishReceipt[]> {
    if (this.#mode === 'plain' || messages.some(isAppend)) return Promise.all(messages.map((m) => this.publish(m.channel, m.payload, m.stream)));
    return new Promise<PublishReceipt[]>((resolve, reject) => {
      const settle = new BatchReceipts(messages.length, resolve, reject);
      const pending = new Array<PendingPublish>(messages.length);
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i] as Outbound;
        pending[i] = { channel: m.channel, payload: m.payload, stream: m.stream, sharded: this.#isSharded(m.channel), settle, index: i };
      }
      // On a cluster a chunk's misplaced messages are resent after it is answered: while a
      // script is out, a later batch queues, so that none of its messages overtakes them.
      if (this.#batcher.empty && (!this.clustered || this.#scriptsInFlight === 0)) this.#batcher.dispatch(pending);
      else for (const p of pending) this.#batcher.push(p);
    });
  }

  /** Sends what is queued and waits for every answer (resends included) before closing. */
  override async close(): Promise<void> {
    this.#batcher.flush();
    if (this.#inFlight > 0 && this.conn.isReady) await new Promise<void>((resolve) => this.#idle.push(resolve));
    await this.#plainChain.catch(() => undefined);
    await super.close();
  }

  #answered(): void {
    this.#inFlight--;
    if (this.#inFlight === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  #send(chunk: PendingPublish[]): void {
    if (this.#mode === 'plain') {
      for (const p of chunk) {
        this.publish(p.channel, p.payload, p.stream).then(
          (receipt) => p.settle.resolve(p.index, receipt),
          (error: Error) => p.settle.reject(p.index, error),
        );
      }
      return;
    }
    const first = chunk[0] as PendingPublish;
    const withStream = chunk.some((p) => p.stream !== undefined);
    if (chunk.length === 1 && !withStream) {
      this.#inFlight++;
      this.conn.publish(first.channel, first.payload, first.sharded).then(
        (receivers) => {
          this.#answered();
          first.settle.resolve(first.index, sent(receivers));
        },
        (error: unknown) => {
          this.#answered();
          this.#fail(first, error);
        },
      );
      return;
    }
    const call = scriptCall(chunk, this.clustered);
    this.#inFlight++;
    this.#scriptsInFlight++;
    this.conn.send<unknown[]>(call.args, call.route).then(
      (replies) => {
        this.#scriptsInFlight--;
        // On a cluster whose slots moved since the chunk was grouped, the node refuses the
        // messages whose keys it no longer serves: they go again, one at a time, by the
        // cluster client, which follows the redirection (their order within a channel holds).
        const misplaced: PendingPublish[] = [];
        const settle = (p: PendingPublish, receipt: PublishReceipt | Error) => {
          if (!(receipt instanceof Error)) p.settle.resolve(p.index, receipt);
          else if (this.clustered && p.resent !== true && MISPLACED.test(receipt.message)) misplaced.push(p);
          else this.#fail(p, receipt);
        };
        for (let i = 0; i < chunk.length; i++) {
          const p = chunk[i] as PendingPublish;
          settle(p, scriptReceipt(call, replies, i, p.channel));
        }
        for (const p of misplaced) this.#send([{ ...p, resent: true }]);
        this.#answered();
      },
      (error: unknown) => {
        this.#scriptsInFlight--;
        if (isErrorReply(error) && !NOT_READY_REPLY.test(String((error as Error).message))) {
          // The script did not run (scripts became unavailable after connect): publish one
          // by one from now on, starting with this chunk, in its place in the order.
          this.#mode = 'plain';
          this.#send(chunk);
        } else {
          for (const p of chunk) this.#fail(p, error);
        }
        this.#answered();
      },
    );
  }

  #append(stream: StreamWrite, payload: string): Promise<PublishReceipt> {
    const args = stream.maxLen !== undefined ? ['XADD', stream.key, 'MAXLEN', '~', String(stream.maxLen)] : ['XADD', stream.key, 'MINID', '~', `${Date.now() - (stream.maxAgeMs as number)}-0`];
    args.push('*', 'payload', payload);
    this.#inFlight++;
    return this.conn.send<string>(args, stream.key).then(this.#appended, this.#failedOne);
  }

  readonly #appended = (position: string): PublishReceipt => {
    this.#answered();
    return { status: 'sent', receivers: 0, position };
  };

  /** Without scripts: XADD, then PUBLISH with the position; not atomic, but in order. */
  #plainStream(channel: string, payload: string, stream: StreamWrite, sharded: boolean): Promise<PublishReceipt> {
    const run = async (): Promise<PublishReceipt> => {
      // A fence needs the check and the write in one step; without scripts there is none.
      if (stream.fence !== undefined) throw new TransportError(`Fenced publishing on "${channel}" needs Lua scripts (EVAL), which this Redis refuses.`, { channel });
      const xadd = [stream.key];
      if (stream.maxLen !== undefined) xadd.push('MAXLEN', '~', String(stream.maxLen));
      const position = await this.conn.send<string>(['XADD', ...xadd, '*', 'payload', payload], stream.key);
      if (stream.maxAgeMs !== undefined) await this.conn.send(['XTRIM', stream.key, 'MINID', '~', `${Date.now() - stream.maxAgeMs}-0`], stream.key);
      const receivers = stream.publish ? await this.conn.publish(channel, `${payload.slice(0, -1)},"position":"${position}"}`, sharded) : 0;
      return { status: 'sent', receivers, position };
    };
    const result = this.#plainChain.then(run, run).catch(this.#rethrow);
    this.#plainChain = result.catch(() => undefined);
    return result;
  }

  #fail(p: PendingPublish, error: unknown): void {
    const translated = error instanceof FencedError ? error : this.translate(error);
    this.emit('publishFailed', translated);
    p.settle.reject(p.index, translated);
  }
}

/** A durable append: one XADD of its own, never in a script (see publish()). */
function isAppend(m: { readonly stream: StreamWrite | undefined }): boolean {
  const s = m.stream;
  return s !== undefined && !s.publish && s.fence === undefined && (s.maxLen === undefined || s.maxAgeMs === undefined);
}
