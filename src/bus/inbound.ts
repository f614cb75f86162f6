// Reading one received payload, written once for the subscriber (live and from history)
// and the consumer: the size check, the envelope (or bare JSON), the schema. Never throws
// into a read loop: a payload that fails comes back as its typed error (a DecodeError or
// a ValidationError, naming the channel), already counted in
// tickbus_messages_rejected_total by its code and reported, and the caller goes on.
import type { Channel } from '../core/channel.ts';
import { decodePayload, type DecodedPayload } from '../core/envelope.ts';
import { BusError } from '../core/errors.ts';
import type { BusMetrics } from '../core/metrics.ts';
import { check, validationError, type CheckResult } from '../core/schema.ts';
import type { BusContext } from './context.ts';
import type { MessageContext } from './message-context.ts';
import type { ResolvedTarget } from './targets.ts';

/** A payload that passed: its envelope's fields, and its data (validated, when a definition is known). */
export interface Accepted {
  readonly envelope: DecodedPayload;
  readonly data: unknown;
}

export type Inbound = Accepted | BusError;

export class InboundReader {
  readonly #metrics: BusMetrics;
  readonly #maxBytes: number;
  readonly #report: (error: BusError) => void;

  /** `report` hears each rejection (the 'error' event of the subscriber or the consumer). */
  constructor(ctx: BusContext, report: (error: BusError) => void) {
    this.#metrics = ctx.metrics;
    this.#maxBytes = ctx.limits.maxMessageBytes;
    this.#report = report;
  }

  /**
   * Decodes a payload by its definition's wire format ('envelope' when no catalog knows the
   * channel, which is then not validated) and checks it against the schema. Synchronous
   * unless the schema is.
   */
  read(payload: string, channel: string, def: Channel | undefined): Inbound | Promise<Inbound> {
    const decoded = decodePayload(payload, channel, def?.wire ?? 'envelope', this.#maxBytes);
    if (decoded instanceof BusError) return this.reject(decoded, def?.template);
    if (!def) return { envelope: decoded, data: decoded.data };
    const checked = check(def.schema, decoded.data);
    if (checked instanceof Promise) return checked.then((r) => this.#accept(r, decoded, def.template, channel));
    return this.#accept(checked, decoded, def.template, channel);
  }

  /** A message that will not be delivered: counted by its code and reported. */
  reject(error: BusError, template: string | undefined): BusError {
    this.#metrics.countRejected(template, error.code);
    this.#report(error);
    return error;
  }

  #accept(result: CheckResult<unknown>, envelope: DecodedPayload, template: string, channel: string): Inbound {
    if (result.issues) return this.reject(validationError(result.issues, channel), template);
    return { envelope, data: result.value };
  }
}

/** What a subscriber's handler is given. */
export interface Delivered {
  data: unknown;
  context: MessageContext;
  /** The envelope's W3C trace context, as written (core/tracing.ts reads it). */
  traceparent: unknown;
  tracestate: unknown;
}

/**
 * A subscriber's message from an accepted payload, counted as received. `position`: the
 * stream entry id for one read from history, else what the live message may carry.
 */
export function toDelivered(metrics: BusMetrics, accepted: Accepted, target: ResolvedTarget, channel: string, pattern: string | undefined, position: string | undefined, replayed: boolean): Delivered {
  const { envelope } = accepted;
  metrics.receivedCell(target.channel?.template).n++;
  return {
    data: accepted.data,
    context: { channel, pattern, params: target.params, timestamp: envelope.timestamp, sender: envelope.sender, id: envelope.id, position, replayed },
    traceparent: envelope.traceparent,
    tracestate: envelope.tracestate,
  };
}
