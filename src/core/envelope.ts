// The wire format. A message is JSON: {"data": {...}, "timestamp": "<ISO-8601>",
// "sender": "<service>"}, exactly as seed 001 shows, so Python services read and write it.
// Two optional fields follow seed 001's three: `id`, a message id that durable channels
// always carry (handlers de-duplicate with it), and `position`, the stream entry id of a
// message on a channel with history (a subscriber resumes after it). With tracing on (an
// OpenTelemetry SDK registered), `traceparent` and `tracestate` carry the W3C trace context
// (core/tracing.ts). Readers that know only the seed's three fields ignore them.
import { DecodeError, ErrorCode, preview } from './errors.ts';
import type { WireFormat } from './channel.ts';
import { isStreamId } from './stream-id.ts';
import type { TraceFields } from './tracing.ts';

export interface Envelope<T = unknown> {
  data: T;
  timestamp: string;
  sender: string;
  /** Optional message id; writers that do not send one are accepted. */
  id?: string;
  /** The stream position, on channels with history (added by Redis as it publishes). */
  position?: string;
  /** W3C trace context of the publish (with tracing on). */
  traceparent?: string;
  tracestate?: string;
}

/** What a decoded payload yields before schema validation. */
export interface DecodedPayload {
  data: unknown;
  timestamp: string | undefined;
  sender: string | undefined;
  id: string | undefined;
  position: string | undefined;
  /** As written, unchecked: core/tracing.ts reads it (a malformed one is ignored, never rejected). */
  traceparent?: unknown;
  tracestate?: unknown;
}

/** The UTF-8 size of a string, computed only when the cheap bounds cannot decide. */
export function exceedsBytes(text: string, maxBytes: number): boolean {
  if (text.length > maxBytes) return true; // a UTF-16 unit is at least one UTF-8 byte
  if (text.length * 3 <= maxBytes) return false; // and at most three
  return Buffer.byteLength(text, 'utf8') > maxBytes;
}

export function createEnvelope<T>(data: T, sender: string, now: Date = new Date()): Envelope<T> {
  return { data, timestamp: now.toISOString(), sender };
}

/** One payload, written the way the publisher writes it (see EnvelopeWriter). */
export function encodePayload(wire: WireFormat, data: unknown, sender: string): string {
  return new EnvelopeWriter(sender).write(wire, data);
}

/**
 * Decodes one received payload. Never throws: a bad payload comes back as a DecodeError
 * for the caller to count and report, so the read loop goes on.
 */
export function decodePayload(payload: string, channel: string, wire: WireFormat, maxBytes: number): DecodedPayload | DecodeError {
  if (exceedsBytes(payload, maxBytes)) {
    return new DecodeError(
      ErrorCode.MessageTooLarge,
      `Message on "${preview(channel)}" is larger than the ${maxBytes}-byte limit (${payload.length} characters).`,
      preview(payload, 60),
      { channel },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch (cause) {
    return new DecodeError(ErrorCode.InvalidJson, `Message on "${preview(channel)}" is not valid JSON.`, preview(payload, 60), { channel, cause });
  }
  if (wire === 'bare') return { data: parsed, timestamp: undefined, sender: undefined, id: undefined, position: undefined };
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return envelopeError(channel, payload, 'it is not a JSON object');
  }
  const env = parsed as Record<string, unknown>;
  if (env.data === undefined) return envelopeError(channel, payload, 'it has no "data" field');
  if (typeof env.timestamp !== 'string') return envelopeError(channel, payload, '"timestamp" is missing or not a string');
  if (typeof env.sender !== 'string') return envelopeError(channel, payload, '"sender" is missing or not a string');
  if (env.id !== undefined && typeof env.id !== 'string') return envelopeError(channel, payload, '"id" is not a string');
  if (env.position !== undefined && (typeof env.position !== 'string' || !isStreamId(env.position))) return envelopeError(channel, payload, '"position" is not a stream id');
  // The parsed object already has the shape (extra fields are ignored): no copy.
  return env as unknown as DecodedPayload;
}

function envelopeError(channel: string, payload: string, why: string): DecodeError {
  return new DecodeError(
    ErrorCode.InvalidEnvelope,
    `Not a tickbus envelope {data, timestamp, sender} on "${preview(channel)}": ${why}.`,
    preview(payload, 60),
    { channel },
  );
}

/**
 * Writes envelopes on the publish hot path: the sender's JSON is escaped once, and the ISO
 * timestamp is formatted once per millisecond rather than once per message.
 */
export class EnvelopeWriter {
  readonly #tail: string;
  #lastMs = -1;
  #lastIso = '';

  constructor(sender: string) {
    this.#tail = `","sender":${JSON.stringify(sender)}}`;
  }

  /** A message's payload; a bare one leaves the trace context out (its format is someone else's). */
  write(wire: WireFormat, data: unknown, traced?: TraceFields): string {
    const json = JSON.stringify(data);
    if (wire === 'bare') return json;
    if (traced) return '{"data":' + json + ',"timestamp":"' + this.#iso() + this.#tail.slice(0, -1) + traceJson(traced) + '}';
    return '{"data":' + json + ',"timestamp":"' + this.#iso() + this.#tail;
  }

  /** An envelope with a message id (`id` goes last: Redis appends `position` after it). */
  writeWithId(data: unknown, id: string, traced?: TraceFields): string {
    return '{"data":' + JSON.stringify(data) + ',"timestamp":"' + this.#iso() + this.#tail.slice(0, -1) + (traced ? traceJson(traced) : '') + ',"id":' + JSON.stringify(id) + '}';
  }

  #iso(): string {
    const now = Date.now();
    if (now !== this.#lastMs) {
      this.#lastMs = now;
      this.#lastIso = new Date(now).toISOString();
    }
    return this.#lastIso;
  }
}

function traceJson(traced: TraceFields): string {
  return ',"traceparent":' + JSON.stringify(traced.traceparent) + (traced.tracestate === undefined ? '' : ',"tracestate":' + JSON.stringify(traced.tracestate));
}
