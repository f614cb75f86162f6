// A consumer of a durable channel: one member of a Redis consumer group. Each message goes
// to one member of the group, and is acknowledged only after its handler has succeeded.
//
// - A handler that fails is retried with back-off. Each retry is an XCLAIM by this consumer,
//   so Redis counts the attempt (a crash does not reset it) and the message does not look
//   idle to the others. After `maxAttempts` it moves to the dead-letter stream with the
//   error, in one atomic step with its acknowledgement.
// - A message that cannot be decoded or fails the schema goes there at once: retrying
//   would not change it.
// - Messages a consumer took and never acknowledged (it died) are claimed by the others
//   after `claimIdleMs` (XAUTOCLAIM); one delivered more than `maxAttempts` times is
//   dead-lettered without running it again (it may be what kills its consumers).
// - On start, and after every reconnection, a consumer first reads what it already holds
//   (its pending entries), then new ones.
// - An acknowledgement that does not reach Redis is kept and sent again before the next
//   read, and an entry this consumer finished is never run again (see acknowledgements.ts).
import { hostname } from 'node:os';
import type { Channel } from '../core/channel.ts';
import { streamKey } from '../core/keys.ts';
import { backoffDelay, resolveReconnect } from '../core/config.ts';
import { BusError, ClosedError, DeadLetteredError, ErrorCode, HandlerError, MissingGroupError, NotConnectedError, describeValue, preview, TransportError } from '../core/errors.ts';
import { ErrorEventLog } from '../core/logger.ts';
import { TypedEmitter } from '../core/typed-emitter.ts';
import type { StreamEntry, StreamLink } from '../transports/transport.ts';
import { Acknowledgements } from './acknowledgements.ts';
import type { BusContext } from './context.ts';
import { InboundReader, type Inbound } from './inbound.ts';
import type { MessageContext } from './message-context.ts';
import { resolveConsumerSettings, type ConsumeOptions, type ConsumerSettings } from './consumer-settings.ts';
import { DeadLetterWriter, type DeadLetter } from './dead-letters.ts';
import { TrimWatch } from './trim-watch.ts';
import { inProcessSpan, tracingOn } from '../core/tracing.ts';

export type { ConsumeOptions } from './consumer-settings.ts';
export type { DeadLetter } from './dead-letters.ts';

/** A durable message's context: its stream position, and which attempt this is. */
export interface DurableContext<P = Readonly<Record<string, string>>> extends MessageContext<P> {
  /** The stream entry id: the message's position, unique within the channel. */
  readonly position: string;
  /** 1 on first delivery; more after a failure, a claim or a crash. */
  readonly attempt: number;
  readonly group: string;
}

export type DurableHandler<D, P = Readonly<Record<string, string>>> = (data: D, context: DurableContext<P>) => unknown;

export type ConsumerEvents = {
  /** A handler failure, a rejected message, or a transport failure; the consumer goes on. */
  error: (error: BusError) => void;
  /** A message moved to the dead-letter stream. */
  deadLettered: (letter: DeadLetter) => void;
};

export interface ConsumerStats {
  handled: number;
  retried: number;
  deadLettered: number;
  claimed: number;
}

/** How often a slow batch sends the acknowledgements of what it finished so far. */
const ACK_EVERY_MS = 20;

/** What a handler run decided. */
type Outcome = 'ack' | 'retry' | 'dead' | 'gone';

export class Consumer<D = unknown, P = Readonly<Record<string, string>>> extends TypedEmitter<ConsumerEvents> {
  readonly channel: string;
  readonly group: string;
  readonly consumer: string;
  readonly #def: Channel;
  readonly #params: Readonly<Record<string, string>>;
  readonly #handler: DurableHandler<D, P>;
  readonly #ctx: BusContext;
  readonly #opts: ConsumerSettings;
  readonly #link: StreamLink;
  readonly #key: string;
  readonly #deadLetters: DeadLetterWriter;
  readonly #trim: TrimWatch;
  readonly #stats: ConsumerStats = { handled: 0, retried: 0, deadLettered: 0, claimed: 0 };
  /** Entries being handled or waiting for a retry: a re-read of pending ones skips them. */
  readonly #busy = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #sleepers = new Set<() => void>();
  readonly #acks: Acknowledgements;
  readonly #inbound: InboundReader;
  #running: Promise<void> | undefined;
  #closed = false;
  #lastClaim = 0;
  #claimCursor = '0-0';
  /** '0' re-reads this consumer's pending entries (after a start or a reconnection), '>' reads new ones. */
  #from = '0';

  constructor(ctx: BusContext, link: StreamLink, def: Channel, name: string, params: Readonly<Record<string, string>>, handler: DurableHandler<D, P>, options: ConsumeOptions) {
    super();
    this.#opts = resolveConsumerSettings(options);
    this.#ctx = ctx;
    this.#link = link;
    this.#def = def;
    this.#params = params;
    this.#handler = handler;
    this.channel = name;
    this.group = options.group;
    this.consumer = options.consumer ?? `${hostname()}-${process.pid}`;
    this.#key = streamKey(name);
    const logger = ctx.logger;
    const errors = new ErrorEventLog(logger, 'consumer error');
    this.setUnhandled((event, args) => {
      if (event === 'error') errors.log(args[0], { channel: name, group: this.group });
    });
    const report = (error: BusError) => this.emit('error', error);
    this.#inbound = new InboundReader(ctx, report);
    this.#acks = new Acknowledgements(link, this.#key, this.group, name, {
      confirmed: (n) => {
        this.#stats.handled += n;
        ctx.metrics.durable.labels(def.template, this.group, 'acked').inc(n);
      },
      report,
      catcher: ctx.background.catcher('consumer_ack'),
    });
    this.#deadLetters = new DeadLetterWriter(ctx, link, { channel: name, def, group: this.group, consumer: this.consumer, maxLen: this.#opts.deadLetterMaxLen });
    this.#trim = new TrimWatch(ctx, link, this.#key, name, def, this.group, report);
    link.on('error', (error) => this.emit('error', error as BusError));
    link.on('reconnected', () => {
      this.#from = '0';
    });
  }

  get stats(): Readonly<ConsumerStats> {
    return { ...this.#stats };
  }

  /**
   * Keeps a message this consumer is still working on from looking idle to the others (a
   * long job): resets its idle time without counting a delivery. Call it well within
   * claimIdleMs, as often as the work lasts.
   */
  async keepAlive(position: string): Promise<void> {
    if (this.#closed) return;
    await this.#link.touch(this.#key, this.group, this.consumer, position);
  }

  /** Creates the group if needed and starts reading. */
  async start(): Promise<this> {
    if (this.#closed) throw new ClosedError('consumer');
    await this.#link.connect();
    if (await this.#link.ensureGroup(this.#key, this.group, this.#opts.start)) await this.#trim.groupCreated();
    this.#running ??= this.#loop();
    return this;
  }

  /**
   * Stops reading at once (a blocked read is cut short), lets the handlers at work finish
   * and acknowledge, and releases the connections. Messages waiting for a retry stay
   * pending in Redis: this consumer takes them back when it starts again under the same
   * name, and the others claim them after claimIdleMs.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const wake of this.#sleepers) wake();
    this.#sleepers.clear();
    this.#link.abortReads();
    // The handler at work finishes and its batch is acknowledged before the link goes.
    await this.#running?.catch(() => undefined);
    await this.#acks.settled();
    // One last try for what an outage held back; what still fails stays pending (and is
    // redone by whoever takes it: at least once).
    if (this.#acks.owed) await this.#acks.resend().catch(() => undefined);
    await this.#link.close();
    this.removeAllListeners();
  }

  async #loop(): Promise<void> {
    const reconnect = resolveReconnect(this.#ctx.reconnect);
    let failures = 0;
    while (!this.#closed) {
      try {
        // Finished work first: reading more while acknowledgements fail would only pile up
        // work that a re-read of the pending entries hands back.
        if (this.#acks.owed) await this.#acks.resend();
        if (Date.now() - this.#lastClaim >= this.#opts.claimIntervalMs) await this.#claim();
        const from = this.#from;
        // Wake up in time for the next claim round, however long the configured block.
        const block = Math.min(this.#opts.blockMs, this.#opts.claimIntervalMs);
        const entries = await this.#link.readGroup(this.#key, this.group, this.consumer, from, this.#opts.batchSize, block);
        failures = 0;
        if (from !== '>') {
          // Pending entries are read after an id: move past them, and on to new ones when none are left.
          const last = entries.at(-1);
          this.#from = last ? last.id : '>';
          const fresh = this.#acks.notYetDone(entries, this.#busy);
          if (fresh.length > 0) await this.#handleRedelivered(fresh);
        } else if (entries.length > 0) {
          await this.#handleBatch(entries.map((e) => ({ entry: e, attempt: 1 })));
        }
      } catch (error) {
        if (this.#closed) break;
        if (error instanceof MissingGroupError) {
          // The stream or the group is gone (Redis restarted without persistence, or someone
          // deleted the key): make it again, from the start of whatever the stream holds now.
          this.#ctx.logger.warn({ channel: this.channel, group: this.group }, 'consumer group missing; creating it again');
          await this.#link.ensureGroup(this.#key, this.group, '0').catch(() => undefined);
          this.#from = '0';
          continue;
        }
        if (!(error instanceof NotConnectedError)) this.emit('error', error instanceof BusError ? error : new TransportError(String((error as Error).message), { cause: error, channel: this.channel }));
        this.#from = '0';
        await this.#sleep(backoffDelay(failures++, reconnect));
      }
    }
  }

  async #claim(): Promise<void> {
    await this.#trim.check();
    this.#lastClaim = Date.now();
    const { cursor, entries, deleted } = await this.#link.claim(this.#key, this.group, this.consumer, this.#opts.claimIdleMs, this.#claimCursor, this.#opts.batchSize);
    this.#claimCursor = cursor;
    const fresh = this.#acks.notYetDone(entries, this.#busy);
    if (deleted.length > 0) this.#ctx.logger.warn({ channel: this.channel, group: this.group, ids: deleted.length }, 'pending messages were trimmed from the stream before anyone acknowledged them');
    if (fresh.length === 0) return;
    this.#stats.claimed += fresh.length;
    this.#ctx.metrics.durable.labels(this.#def.template, this.group, 'claimed').inc(fresh.length);
    this.#ctx.logger.info({ channel: this.channel, group: this.group, messages: fresh.length }, 'claimed messages another consumer held too long');
    await this.#handleRedelivered(fresh);
  }

  /** Entries delivered before (pending or claimed): their attempt is Redis's delivery count. */
  async #handleRedelivered(entries: StreamEntry[]): Promise<void> {
    const counts = await this.#link.deliveries(this.#key, this.group, entries.map((e) => e.id));
    await this.#handleBatch(entries.map((entry) => ({ entry, attempt: counts.get(entry.id) ?? 1 })));
  }

  /**
   * Handles a batch in order. Acknowledgements go out together at the end of the batch, and
   * along the way every ACK_EVERY_MS, so that a consumer that dies in a slow batch has not
   * held back the acknowledgements of everything it finished. They are not waited for: the
   * next read goes out at once (on its own connection), and close() waits for them.
   */
  async #handleBatch(batch: Array<{ entry: StreamEntry; attempt: number }>): Promise<void> {
    let acks: string[] = [];
    let flushedAt = Date.now();
    for (const { entry, attempt } of batch) {
      if (this.#closed) break;
      let outcome = this.#handle(entry, attempt);
      if (outcome instanceof Promise) outcome = await outcome;
      if (outcome === 'ack') acks.push(entry.id);
      if (acks.length > 0 && Date.now() - flushedAt >= ACK_EVERY_MS) {
        this.#acks.send(acks);
        acks = [];
        flushedAt = Date.now();
      }
    }
    if (acks.length > 0) this.#acks.send(acks);
  }

  /**
   * Runs the handler for one entry and decides what becomes of it. Synchronous all the way
   * when the schema and the handler are: no promise per message on the common path.
   */
  #handle(entry: StreamEntry, attempt: number): Outcome | Promise<Outcome> {
    if (entry.payload === undefined) {
      // Written by something other than tickbus (no payload field): it can never be handled.
      return this.#reject(entry, attempt, new BusError(ErrorCode.InvalidEnvelope, `Entry ${entry.id} of "${this.channel}" has no "payload" field.`, { channel: this.channel }));
    }
    if (attempt > this.#opts.maxAttempts) {
      const error = new DeadLetteredError(`Delivered ${attempt - 1} times without an acknowledgement (its consumers failed or died); not running it again.`, { channel: this.channel });
      return this.#deadLetter(entry, attempt - 1, error).then(() => 'dead' as const);
    }
    const read = this.#inbound.read(entry.payload, this.channel, this.#def);
    if (read instanceof Promise) return read.then((r) => this.#run(entry, attempt, r));
    return this.#run(entry, attempt, read);
  }

  #run(entry: StreamEntry, attempt: number, read: Inbound): Outcome | Promise<Outcome> {
    // Undecodable or invalid (counted and reported): retrying would not change it.
    if (read instanceof BusError) return this.#deadLetter(entry, attempt, read).then(() => 'dead' as const);
    const decoded = read.envelope;
    const context: DurableContext<P> = {
      channel: this.channel,
      pattern: undefined,
      params: this.#params as P,
      timestamp: decoded.timestamp,
      sender: decoded.sender,
      id: decoded.id,
      position: entry.id,
      replayed: attempt > 1,
      attempt,
      group: this.group,
    };
    let result: unknown;
    try {
      result = tracingOn() ? inProcessSpan(this.#def.template, this.channel, decoded, () => this.#handler(read.data as D, context), { 'messaging.consumer.group.name': this.group, 'tickbus.attempt': attempt }) : this.#handler(read.data as D, context);
    } catch (cause) {
      return this.#failed(entry, attempt, cause);
    }
    if (result === null || typeof result !== 'object' || typeof (result as PromiseLike<unknown>).then !== 'function') {
      this.#ctx.metrics.receivedCell(this.#def.template).n++;
      return 'ack';
    }
    // At work: a re-read of this consumer's pending entries must not start it twice.
    this.#busy.add(entry.id);
    return Promise.resolve(result as PromiseLike<unknown>).then(
      () => {
        this.#busy.delete(entry.id);
        this.#ctx.metrics.receivedCell(this.#def.template).n++;
        return 'ack' as const;
      },
      (cause: unknown) => {
        this.#busy.delete(entry.id);
        return this.#failed(entry, attempt, cause);
      },
    );
  }

  /** A message that can never be handled (undecodable, invalid): dead-lettered at once. */
  async #reject(entry: StreamEntry, attempt: number, error: BusError): Promise<Outcome> {
    this.#inbound.reject(error, this.#def.template);
    await this.#deadLetter(entry, attempt, error);
    return 'dead';
  }

  /** The handler failed: retry later, or dead-letter after the last attempt. */
  async #failed(entry: StreamEntry, attempt: number, cause: unknown): Promise<Outcome> {
    this.#ctx.metrics.handlerFailed.labels(this.#def.template).inc();
    const error = new HandlerError(`Handler for "${preview(this.channel)}" failed on ${entry.id} (attempt ${attempt} of ${this.#opts.maxAttempts}): ${describeValue(cause)}`, { cause, channel: this.channel });
    this.emit('error', error);
    if (attempt >= this.#opts.maxAttempts) {
      await this.#deadLetter(entry, attempt, error);
      return 'dead';
    }
    this.#scheduleRetry(entry.id, attempt);
    return 'retry';
  }

  /** Entries with a retry timer set. */
  readonly #timersFor = new Set<string>();

  #scheduleRetry(id: string, attempt: number): void {
    if (this.#closed) return; // left pending, for this consumer's next start or the others
    this.#busy.add(id);
    this.#stats.retried++;
    this.#ctx.metrics.durable.labels(this.#def.template, this.group, 'retried').inc();
    this.#timersFor.add(id);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#ctx.background.run('consumer_retry', () => this.#retry(id, attempt + 1));
    }, backoffDelay(attempt - 1, this.#opts.retry));
    this.#timers.add(timer);
  }

  async #retry(id: string, attempt: number): Promise<void> {
    this.#timersFor.delete(id);
    if (this.#closed) return;
    try {
      const entry = await this.#link.reclaim(this.#key, this.group, this.consumer, id);
      if (!entry) {
        this.#busy.delete(id); // trimmed, or acknowledged meanwhile
        return;
      }
      const outcome = await this.#handle(entry, attempt);
      if (!this.#timersFor.has(id)) this.#busy.delete(id);
      if (outcome === 'ack') this.#acks.send([id]);
    } catch (error) {
      // Left pending: a re-read or a claim brings it back.
      this.#busy.delete(id);
      if (!this.#closed && !(error instanceof NotConnectedError)) this.emit('error', error as BusError);
    }
  }

  async #deadLetter(entry: StreamEntry, attempts: number, error: BusError): Promise<void> {
    const letter = await this.#deadLetters.write(entry, attempts, error);
    this.#stats.deadLettered++;
    this.emit('deadLettered', letter);
  }

  /** Waits, or less if close() is called meanwhile. */
  #sleep(ms: number): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.#sleepers.delete(resolve);
        resolve();
      }, ms);
      this.#timers.add(timer);
      this.#sleepers.add(resolve);
    });
  }
}
