// The message functions of seed 001: validate data for a channel, wrap it in the
// {data, timestamp, sender} envelope, and read envelopes back. Pure: no connection needed.
import { resolveSender } from '../core/config.ts';
import { DEFAULTS } from '../core/defaults.ts';
import { createEnvelope, decodePayload, encodePayload, type Envelope } from '../core/envelope.ts';
import { DecodeError } from '../core/errors.ts';
import { validateSync } from '../core/schema.ts';
import { requireChannel } from './channels.ts';

// One class, two names: code written against the seed catches MessageValidationError, code
// written against the bus catches ValidationError, and both match the same throw.
export { ValidationError as MessageValidationError } from '../core/errors.ts';

/**
 * Checks `data` against the channel's schema and returns the validated value (with the
 * schema's normalisations applied, e.g. a registration's ticker upper-cased). Throws
 * MessageValidationError when the data is invalid, UnknownChannelError when no shipped
 * catalog defines the channel.
 */
export function validateMessage(channel: string, data: unknown): unknown {
  const result = validateSync(requireChannel(channel).schema, data, channel);
  if (!result.ok) throw result.error;
  return result.value;
}

/** Wraps data in the envelope. The sender defaults to the bus's (TICKBUS_SENDER, else 'tickbus'). */
export function createMessage<T>(data: T, sender?: string): Envelope<T> {
  return createEnvelope(data, resolveSender(sender));
}

/**
 * Validates `data` for the channel and returns the JSON a publisher would send. For seed
 * 001's channels that is the envelope; channels whose catalog declares the bare wire format
 * (TickStock, trading events) get the bare data, since that is what their readers expect.
 */
export function formatForChannel(channel: string, data: unknown, sender?: string): string {
  const definition = requireChannel(channel);
  const result = validateSync(definition.schema, data, channel);
  if (!result.ok) throw result.error;
  return encodePayload(definition.wire, result.value, resolveSender(sender));
}

/**
 * Reads an envelope from JSON. Throws DecodeError (code TB_ERR_INVALID_JSON or
 * TB_ERR_INVALID_ENVELOPE, or TB_ERR_MESSAGE_TOO_LARGE past the bus's size limit).
 * `channel` only names the source in error messages; `data` is not validated here.
 */
export function parseMessage(json: string, channel?: string): Envelope {
  const decoded = decodePayload(json, channel ?? '(no channel)', 'envelope', DEFAULTS.maxMessageBytes);
  if (decoded instanceof DecodeError) {
    if (channel !== undefined) throw decoded;
    // Without a channel the error must not claim one: BusError.channel is matched on.
    throw new DecodeError(decoded.code as ConstructorParameters<typeof DecodeError>[0], decoded.message, decoded.preview, { cause: decoded.cause });
  }
  // The envelope wire format guarantees both strings; decodePayload checked them.
  const envelope: Envelope = { data: decoded.data, timestamp: decoded.timestamp as string, sender: decoded.sender as string };
  if (decoded.id !== undefined) envelope.id = decoded.id;
  return envelope;
}

/** The `data` of an envelope. */
export function extractData<T>(message: Pick<Envelope<T>, 'data'>): T {
  return message.data;
}
