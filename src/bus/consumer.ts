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
// - An acknowledgement that does not reach Redis (the connection is down) is kept and sent
//   again before the next read: no new work is taken while finished work cannot be
//   acknowledged, and an entry this consumer finished is never run again when a re-read of
//   its pending entries or a claim hands it back (it is acknowledged instead). The two
//   connections of a link come back from an outage at different times; without this, every
//   batch read in between was redone.
import { hostname } from 'node:os';
import { deadLetterKey, streamKey, type Channel, type ChannelRef } from '../core/channel.ts';
import { backoffDelay, resolveReconnect } from '../core/config.ts';
import { decodePayload, type DecodedPayload } from '../core/envelope.ts';
import { BusError, ClosedError, ConfigError, DeadLetteredError, ErrorCode, HandlerError, MissingGroupError, NotConnectedError, preview, TransportError } from '../core/errors.ts';
import { check, validationError, type CheckResult, type InferOutput, type StandardSchemaV1 } from '../core/schema.ts';
import { ErrorEventLog, isInputError, LogThrottle } from '../core/logger.ts';
import { TypedEmitter } from '../core/typed-emitter.ts';
import type { StreamEntry, StreamLink } from '../transports/transport.ts';
import type { BusContext } from './context.ts';
import type { MessageContext } from './message-context.ts';
import { resolveConsumerSettings, type ConsumeOptions, type ConsumerSettings } from './consumer-settings.ts';

export type { ConsumeOptions } from './consumer-settings.ts';

/** A durable message's context: its stream position, and which attempt this is. */
export interface DurableContext<P = Readonly<Record<string, string>>> extends MessageContext<P> {
  /** The stream entry id: the message's position, unique within the channel. */
  readonly position: string;
  /** 1 on first delivery; more after a failure, a claim or a crash. */
  readonly attempt: number;
  readonly group: string;
}

export type DurableHandler<D, P = Readonly<Record<string, string>>> = (data: D, context: DurableContext<P>) => unknown;

export interface DeadLetter {
  readonly channel: string;
  readonly position: string;
  readonly attempts: number;
  readonly error: BusError;
  /** The message as it was on the stream (undefined when it had no payload field). */
  readonly payload: string | undefined;
}

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

const ACK_EVERY_MS = 20;
/** Acknowledgements per XACK when an outage held many back. */
const ACK_RESEND_CHUNK = 500;

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
  readonly #deadKey: string;
  readonly #stats: ConsumerStats = { handled: 0, retried: 0, deadLettered: 0, claimed: 0 };
  /** Entries being handled or waiting for a retry: a re-read of pending ones skips them. */
  readonly #busy = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #sleepers = new Set<() => void>();
  readonly #acking = new Set<Promise<void>>();
  /** Handled, but Redis has not confirmed the acknowledgement (on its way, or failed): never run again. */
  readonly #unacked = new Set<string>();
  /** Of those, the ones whose XACK failed: sent again before the next read. */
  readonly #resend = new Set<string>();
  #running: Promise<void> | undefined;
  #closed = false;
  #lastClaim = 0;
  #claimCursor = '0-0';
  /** Messages already reported lost to trimming, so that one loss is reported once. */
  #trimReported = 0;
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
    this.#deadKey = deadLetterKey(name);
    const logger = ctx.logger;
    const errors = new ErrorEventLog(logger, 'consumer error');
    this.setUnhandled((event, args) => {
      if (event === 'error') errors.log(args[0], { channel: name, group: this.group });
    });
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
    if (await this.#link.ensureGroup(this.#key, this.group, this.#opts.start)) {
      // What was trimmed before the group existed was never its to read.
      const info = await this.#link.info(this.#key);
      this.#trimReported = info ? info.entriesAdded - info.length : 0;
    }
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
    await Promise.all(this.#acking);
    // One last try for what an outage held back; what still fails stays pending (and is
    // redone by whoever takes it: at least once).
    if (this.#resend.size > 0) await this.#resendAcks().catch(() => undefined);
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
        if (this.#resend.size > 0) await this.#resendAcks();
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
          const fresh = this.#notYetDone(entries);
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

  /**
   * Messages trimmed from the stream before this group read them are skipped by Redis
   * without a word. Say so: of the entries ever appended, those no longer in the stream
   * number more than those the group has read.
   */
  async #checkTrimmed(): Promise<void> {
    const [info, group] = await Promise.all([this.#link.info(this.#key), this.#link.groupPosition(this.#key, this.group)]);
    if (!info || !group) return;
    // A group that never read has read nothing; otherwise Redis may not know (then: no verdict).
    // (A group another process created on an already-trimmed stream, that has not read yet,
    // is reported too: a warning that errs on the side of saying.)
    const read = group.entriesRead ?? (group.lastDeliveredId === '0-0' ? 0 : undefined);
    if (read === undefined) return;
    const lost = info.entriesAdded - info.length - read;
    if (lost <= this.#trimReported) return;
    this.#ctx.metrics.durable.labels(this.#def.template, this.group, 'trimmed_unread').inc(lost - this.#trimReported);
    this.#trimReported = lost;
    this.emit(
      'error',
      new BusError(
        ErrorCode.StreamTrimmed,
        `Group "${this.group}" fell behind on "${preview(this.channel)}": ${lost} message(s) were trimmed (retention ${this.#def.retention?.maxLen ?? '-'} messages / ${this.#def.retention?.maxAgeMs ?? '-'} ms) before it read them. Raise the channel's retention, or add consumers.`,
        { channel: this.channel },
      ),
    );
  }

  async #claim(): Promise<void> {
    await this.#checkTrimmed();
    this.#lastClaim = Date.now();
    const { cursor, entries, deleted } = await this.#link.claim(this.#key, this.group, this.consumer, this.#opts.claimIdleMs, this.#claimCursor, this.#opts.batchSize);
    this.#claimCursor = cursor;
    const fresh = this.#notYetDone(entries);
    if (deleted.length > 0) this.#ctx.logger.warn({ channel: this.channel, group: this.group, ids: deleted.length }, 'pending messages were trimmed from the stream before anyone acknowledged them');
    if (fresh.length === 0) return;
    this.#stats.claimed += fresh.length;
    this.#ctx.metrics.durable.labels(this.#def.template, this.group, 'claimed').inc(fresh.length);
    this.#ctx.logger.info({ channel: this.channel, group: this.group, messages: fresh.length }, 'claimed messages another consumer held too long');
    await this.#handleRedelivered(fresh);
  }

  /**
   * Of entries handed back (this consumer's pending ones, or claimed), those to run: not
   * the ones at work or waiting for a retry, and not the ones already handled whose
   * acknowledgement has not been confirmed; those are acknowledged (again) instead.
   */
  #notYetDone(entries: readonly StreamEntry[]): StreamEntry[] {
    const done: string[] = [];
    const fresh: StreamEntry[] = [];
    for (const e of entries) {
      if (this.#unacked.has(e.id)) done.push(e.id);
      else if (!this.#busy.has(e.id)) fresh.push(e);
    }
    if (done.length > 0) {
      for (const id of done) this.#resend.delete(id);
      this.#ack(done);
    }
    return fresh;
  }

  /** Sends again the acknowledgements an outage held back; rejects while Redis is unreachable. */
  async #resendAcks(): Promise<void> {
    const ids = [...this.#resend];
    for (let i = 0; i < ids.length; i += ACK_RESEND_CHUNK) {
      const chunk = ids.slice(i, i + ACK_RESEND_CHUNK);
      await this.#link.ack(this.#key, this.group, chunk);
      for (const id of chunk) this.#resend.delete(id);
      this.#acked(chunk);
    }
  }

  /** Counts the confirmed acknowledgements (each id once, however often it was sent). */
  #acked(ids: readonly string[]): void {
    let n = 0;
    for (const id of ids) if (this.#unacked.delete(id)) n++;
    if (n === 0) return;
    this.#stats.handled += n;
    this.#ctx.metrics.durable.labels(this.#def.template, this.group, 'acked').inc(n);
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
        this.#ack(acks);
        acks = [];
        flushedAt = Date.now();
      }
    }
    if (acks.length > 0) this.#ack(acks);
  }

  /**
   * Sends an acknowledgement; close() waits for those still on their way. One that fails is
   * kept for #resendAcks, which the loop runs before its next read.
   */
  #ack(ids: string[]): void {
    for (const id of ids) this.#unacked.add(id);
    const sending = this.#link.ack(this.#key, this.group, ids).then(
      () => this.#acked(ids),
      (error: unknown) => {
        for (const id of ids) if (this.#unacked.has(id)) this.#resend.add(id);
        if (!(error instanceof NotConnectedError)) this.emit('error', error instanceof BusError ? error : new TransportError(String(error), { cause: error, channel: this.channel }));
      },
    );
    this.#acking.add(sending);
    sending.finally(() => this.#acking.delete(sending)).catch(this.#ctx.background.catcher('consumer_ack'));
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
    const decoded = decodePayload(entry.payload, this.channel, this.#def.wire, this.#ctx.limits.maxMessageBytes);
    if (decoded instanceof BusError) return this.#reject(entry, attempt, decoded);
    const checked = check(this.#def.schema, decoded.data);
    if (checked instanceof Promise) return checked.then((result) => this.#run(entry, attempt, decoded, result));
    return this.#run(entry, attempt, decoded, checked);
  }

  #run(entry: StreamEntry, attempt: number, decoded: DecodedPayload, checked: CheckResult<unknown>): Outcome | Promise<Outcome> {
    if (checked.issues) return this.#reject(entry, attempt, validationError(checked.issues, this.channel));
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
      result = this.#handler(checked.value as D, context);
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
    this.#ctx.metrics.countRejected(this.#def.template, error.code);
    this.emit('error', error);
    await this.#deadLetter(entry, attempt, error);
    return 'dead';
  }

  /** The handler failed: retry later, or dead-letter after the last attempt. */
  async #failed(entry: StreamEntry, attempt: number, cause: unknown): Promise<Outcome> {
    this.#ctx.metrics.handlerFailed.labels(this.#def.template).inc();
    const error = new HandlerError(`Handler for "${preview(this.channel)}" failed on ${entry.id} (attempt ${attempt} of ${this.#opts.maxAttempts}): ${cause instanceof Error ? cause.message : String(cause)}`, { cause, channel: this.channel });
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
      if (outcome === 'ack') this.#ack([id]);
    } catch (error) {
      // Left pending: a re-read or a claim brings it back.
      this.#busy.delete(id);
      if (!this.#closed && !(error instanceof NotConnectedError)) this.emit('error', error as BusError);
    }
  }

  /** Dead letters of bad input (garbage in the stream) are logged a few a second; those of failed handlers, each. */
  readonly #badInputLog = new LogThrottle();

  async #deadLetter(entry: StreamEntry, attempts: number, error: BusError): Promise<void> {
    await this.#link.deadLetter(this.#key, this.group, entry.id, this.#deadKey, {
      payload: entry.payload ?? '',
      channel: this.channel,
      position: entry.id,
      group: this.group,
      consumer: this.consumer,
      attempts: String(attempts),
      code: error.code,
      error: error.message,
      failed_at: new Date().toISOString(),
    }, this.#opts.deadLetterMaxLen);
    this.#stats.deadLettered++;
    this.#ctx.metrics.durable.labels(this.#def.template, this.group, 'dead_lettered').inc();
    const suppressed = isInputError(error) ? this.#badInputLog.take() : 0;
    // The error names the channel (err.channel): once per line is enough.
    if (suppressed >= 0) this.#ctx.logger.error({ ...(error.channel === undefined ? { channel: this.channel } : {}), group: this.group, position: entry.id, attempts, err: error, ...(suppressed > 0 ? { suppressed } : {}) }, 'message moved to the dead-letter stream');
    this.emit('deadLettered', { channel: this.channel, position: entry.id, attempts, error, payload: entry.payload });
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

/** Builds a consumer for a durable channel (a reference, a fixed channel, or a name). */
export function createConsumer<T extends string, S extends StandardSchemaV1>(
  ctx: BusContext,
  target: ChannelRef<T, S> | Channel<T, S> | string,
  handler: DurableHandler<InferOutput<S>, Readonly<Record<string, string>>>,
  options: ConsumeOptions,
): Consumer<InferOutput<S>> {
  let def: Channel;
  let name: string;
  let params: Readonly<Record<string, string>> = {};
  if (typeof target === 'string') {
    const found = ctx.resolver.resolve(target);
    if (!found) throw new ConfigError(`No channel in the catalogs in use is named "${preview(target)}".`);
    def = found.channel;
    name = target;
    params = found.params;
  } else if (target.kind === 'ref') {
    def = target.channel;
    name = target.name;
    params = target.params;
  } else {
    if (target.isTemplate) throw new ConfigError(`"${target.template}" is a template: consume one channel of it, e.g. channel.of({ … }); each has a stream of its own.`);
    def = target;
    name = target.template;
  }
  if (def.delivery !== 'durable') throw new ConfigError(`"${name}" is not a durable channel: declare it with durable: true in its catalog (or subscribe() to it).`);
  const link = ctx.transport.createStreamLink?.();
  if (!link) throw new ConfigError(`"${name}" is a durable channel: it needs Redis Streams, which the ${ctx.transport.kind} transport does not have.`);
  return new Consumer(ctx, link, def, name, params, handler, options);
}
