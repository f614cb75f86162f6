// One error hierarchy for the whole bus. Every error carries a stable `code` that
// callers (and metrics) match on, and `retryable`, which says whether the same operation
// may succeed later unchanged; messages are for humans and may change. A class raises one
// code (docs/architecture.md, "Errors", lists each with its class).

export const ErrorCode = {
  /** A payload does not match its channel's schema. */
  Validation: 'TB_ERR_VALIDATION',
  /** A received payload is not valid JSON. */
  InvalidJson: 'TB_ERR_INVALID_JSON',
  /** A received payload is JSON but not a `{data, timestamp, sender}` envelope. */
  InvalidEnvelope: 'TB_ERR_INVALID_ENVELOPE',
  /** A payload is larger than `maxMessageBytes`. */
  MessageTooLarge: 'TB_ERR_MESSAGE_TOO_LARGE',
  /** A channel parameter (a ticker, a symbol) is not allowed in a channel name. */
  InvalidChannelParam: 'TB_ERR_INVALID_CHANNEL_PARAM',
  /** A channel name matches no channel of the catalogs in use. */
  UnknownChannel: 'TB_ERR_UNKNOWN_CHANNEL',
  /** The transport is not connected (publishing while Redis is unreachable). */
  NotConnected: 'TB_ERR_NOT_CONNECTED',
  /** The publisher or subscriber was closed. */
  Closed: 'TB_ERR_CLOSED',
  /** A subscriber's handler threw or rejected. */
  HandlerFailed: 'TB_ERR_HANDLER_FAILED',
  /** A handler fell so far behind on one channel that queued messages were dropped. */
  HandlerBacklog: 'TB_ERR_HANDLER_BACKLOG',
  /**
   * A position given to resume from (`resumeAfter`, `history()`, the gateway's `since`,
   * `tickbus tail --after`) is not a stream id Redis can read after.
   */
  InvalidPosition: 'TB_ERR_INVALID_POSITION',
  /**
   * A live message carried a position its channel's history does not vouch for (far ahead
   * of the clock, or not in the stream when checked): it was delivered without it, and no
   * resume point moved to it.
   */
  UntrustedPosition: 'TB_ERR_UNTRUSTED_POSITION',
  /** Configuration is missing or malformed. */
  Config: 'TB_ERR_CONFIG',
  /** The transport reported a failure (a Redis error reply, a socket error). */
  Transport: 'TB_ERR_TRANSPORT',
  /** The publisher's fallback buffer is full and its overflow policy is 'reject'. */
  BufferFull: 'TB_ERR_BUFFER_FULL',
  /** A durable message failed its handler on every attempt and went to the dead-letter stream. */
  DeadLettered: 'TB_ERR_DEAD_LETTERED',
  /** Messages of a durable channel were trimmed before a consumer group read them. */
  StreamTrimmed: 'TB_ERR_STREAM_TRIMMED',
  /** Gateway: no valid token (missing, malformed, expired, wrong signature). */
  Unauthorized: 'TB_ERR_UNAUTHORIZED',
  /** Gateway: the token does not allow this symbol or channel. */
  Forbidden: 'TB_ERR_FORBIDDEN',
  /** Gateway: a client sent requests faster than its rate limit. */
  RateLimited: 'TB_ERR_RATE_LIMITED',
  /** Gateway: it holds its maximum of connections (maxConnections); the upgrade was answered 503 with Retry-After. */
  GatewayFull: 'TB_ERR_GATEWAY_FULL',
  /** Gateway: a client asked for more subscriptions than its limit. */
  TooManySubscriptions: 'TB_ERR_TOO_MANY_SUBSCRIPTIONS',
  /** Gateway: opening one more room would pass a room limit (the gateway's, the connection's or the user's). */
  RoomLimit: 'TB_ERR_ROOM_LIMIT',
  /** Gateway: a request that is not JSON or not a known operation. */
  BadRequest: 'TB_ERR_BAD_REQUEST',
  /** Gateway: a client reads too slowly; updates were conflated or dropped. */
  SlowConsumer: 'TB_ERR_SLOW_CONSUMER',
  /** Jobs: a job with this id was already submitted. */
  DuplicateJob: 'TB_ERR_DUPLICATE_JOB',
  /** Jobs: no record of this job (never submitted, or older than 24 hours). */
  UnknownJob: 'TB_ERR_UNKNOWN_JOB',
  /** Gateway: a client_order_id another user already placed (the same user's resend is answered `duplicate: true`). */
  DuplicateOrder: 'TB_ERR_DUPLICATE_ORDER',
  /**
   * A publish carried a fencing token that is no longer the holder of its lease (another
   * broker took the ticker over); Redis refused it, and nothing was written.
   */
  Fenced: 'TB_ERR_FENCED',
  /** A service could not listen on its HTTP port (taken by another process, or not allowed). */
  Listen: 'TB_ERR_LISTEN',
  /** Redis refused a command, key or channel to this connection's ACL user (NOPERM): a permission to grant, not a fault to wait out. */
  NoPermission: 'TB_ERR_NO_PERMISSION',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Which codes are worth trying again unchanged: those that say Redis is unreachable or
 * failing, not that the request is wrong. A record, so that a new code cannot be added
 * without this decision. Everything else is false: bad input stays bad, a closed part stays
 * closed, a refusal (a full buffer, a limit, a lease lost) is a decision that a retry at
 * once would meet again.
 */
const RETRYABLE: Readonly<Record<ErrorCode, boolean>> = Object.freeze({
  TB_ERR_VALIDATION: false,
  TB_ERR_INVALID_JSON: false,
  TB_ERR_INVALID_ENVELOPE: false,
  TB_ERR_MESSAGE_TOO_LARGE: false,
  TB_ERR_INVALID_CHANNEL_PARAM: false,
  TB_ERR_UNKNOWN_CHANNEL: false,
  TB_ERR_NOT_CONNECTED: true,
  TB_ERR_CLOSED: false,
  TB_ERR_HANDLER_FAILED: false,
  TB_ERR_HANDLER_BACKLOG: false,
  TB_ERR_INVALID_POSITION: false,
  TB_ERR_UNTRUSTED_POSITION: false,
  TB_ERR_CONFIG: false,
  TB_ERR_TRANSPORT: true,
  TB_ERR_BUFFER_FULL: false,
  TB_ERR_DEAD_LETTERED: false,
  TB_ERR_STREAM_TRIMMED: false,
  TB_ERR_UNAUTHORIZED: false,
  TB_ERR_FORBIDDEN: false,
  TB_ERR_RATE_LIMITED: false,
  TB_ERR_GATEWAY_FULL: true,
  TB_ERR_TOO_MANY_SUBSCRIPTIONS: false,
  TB_ERR_ROOM_LIMIT: false,
  TB_ERR_BAD_REQUEST: false,
  TB_ERR_SLOW_CONSUMER: false,
  TB_ERR_DUPLICATE_JOB: false,
  TB_ERR_UNKNOWN_JOB: false,
  TB_ERR_DUPLICATE_ORDER: false,
  TB_ERR_FENCED: false,
  TB_ERR_LISTEN: false,
  TB_ERR_NO_PERMISSION: false,
});

/** Whether an error of this code may succeed if tried again unchanged (see RETRYABLE). */
export function isRetryableCode(code: ErrorCode): boolean {
  return RETRYABLE[code];
}

export interface BusErrorOptions {
  cause?: unknown;
  /** The concrete channel the error concerns, when there is one. */
  channel?: string;
}

/** The root of every error tickbus raises or emits. */
export class BusError extends Error {
  override name = 'BusError';
  readonly code: ErrorCode;
  readonly channel: string | undefined;
  /**
   * True when the cause is Redis being unreachable or failing (NotConnectedError,
   * TransportError): the same call may succeed later. False for bad input, a closed part,
   * a refusal.
   */
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: BusErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.channel = options.channel;
    this.retryable = RETRYABLE[code];
  }
}

/** One problem found by a schema: where, and what. */
export interface ValidationIssue {
  path: string;
  message: string;
}

/** A payload failed its channel's schema. `issues` lists every problem the schema found. */
export class ValidationError extends BusError {
  override name = 'ValidationError';
  readonly issues: readonly ValidationIssue[];

  constructor(message: string, issues: readonly ValidationIssue[], options: BusErrorOptions = {}) {
    super(ErrorCode.Validation, message, options);
    this.issues = issues;
  }
}

/** A received payload could not be decoded: not JSON, not an envelope, or too large. */
export class DecodeError extends BusError {
  override name = 'DecodeError';
  /** The first bytes of the offending payload, for logs; never the whole thing. */
  readonly preview: string;

  constructor(
    code: typeof ErrorCode.InvalidJson | typeof ErrorCode.InvalidEnvelope | typeof ErrorCode.MessageTooLarge,
    message: string,
    preview: string,
    options: BusErrorOptions = {},
  ) {
    super(code, message, options);
    this.preview = preview;
  }
}

/** A channel parameter failed its allow-list: it would never reach Redis. */
export class ChannelParamError extends BusError {
  override name = 'ChannelParamError';
  readonly param: string;

  constructor(param: string, message: string, options: BusErrorOptions = {}) {
    super(ErrorCode.InvalidChannelParam, message, options);
    this.param = param;
  }
}

export class UnknownChannelError extends BusError {
  override name = 'UnknownChannelError';
  constructor(channel: string) {
    super(ErrorCode.UnknownChannel, `No channel in the catalogs in use is named "${preview(channel)}". Define it in a catalog, or pass a schema.`, { channel });
  }
}

/** Redis is unreachable, or not serving yet (loading its data): the call did not complete. */
export class NotConnectedError extends BusError {
  override name = 'NotConnectedError';
  constructor(message: string, options: BusErrorOptions = {}) {
    super(ErrorCode.NotConnected, message, options);
  }
}

/**
 * A link used after its own close(): a NotConnectedError (the call did not reach anything,
 * and callers that wait for a connection treat it so), but with TB_ERR_CLOSED, and not
 * worth retrying.
 */
export class LinkClosedError extends NotConnectedError {
  override name = 'LinkClosedError';
  override readonly code: ErrorCode = ErrorCode.Closed;
  override readonly retryable: boolean = RETRYABLE[ErrorCode.Closed];
}

export class ClosedError extends BusError {
  override name = 'ClosedError';
  constructor(what: string) {
    super(ErrorCode.Closed, `The ${what} is closed; create a new one.`);
  }
}

/** A handler threw or rejected; `cause` is what it threw. */
export class HandlerError extends BusError {
  override name = 'HandlerError';
  constructor(message: string, options: BusErrorOptions = {}) {
    super(ErrorCode.HandlerFailed, message, options);
  }
}

/** A handler fell so far behind on one channel that its oldest queued messages were dropped. */
export class HandlerBacklogError extends HandlerError {
  override name = 'HandlerBacklogError';
  override readonly code: ErrorCode = ErrorCode.HandlerBacklog;
}

/**
 * A durable message delivered more than maxAttempts times without an acknowledgement (its
 * consumers failed or died): dead-lettered without running it again.
 */
export class DeadLetteredError extends HandlerError {
  override name = 'DeadLetteredError';
  override readonly code: ErrorCode = ErrorCode.DeadLettered;
}

export class ConfigError extends BusError {
  override name = 'ConfigError';
  constructor(message: string, options: BusErrorOptions = {}) {
    super(ErrorCode.Config, message, options);
  }
}

/** A position to resume from that is not a stream id (caught before it reaches Redis). */
export class PositionError extends BusError {
  override name = 'PositionError';
  constructor(what: string, position: unknown) {
    super(ErrorCode.InvalidPosition, `${what} must be a position such as 1700000000000-0 (a message's position), got "${preview(describeValue(position))}".`);
  }
}

/** Redis answered with an error, or the socket failed: the transport's own failure. */
export class TransportError extends BusError {
  override name = 'TransportError';
  constructor(message: string, options: BusErrorOptions = {}) {
    super(ErrorCode.Transport, message, options);
  }
}

/**
 * Redis answered NOGROUP: the stream or its consumer group is gone (a Redis restarted
 * without persistence, a deleted key). Raised by the transport, where Redis's replies are
 * known, so that a consumer asks for the class instead of reading the message.
 */
export class MissingGroupError extends TransportError {
  override name = 'MissingGroupError';
}

/**
 * Redis answered NOPERM: the ACL user lacks a command, key or channel permission. Not
 * retryable: the same call meets the same ACL until an operator grants it.
 */
export class PermissionError extends BusError {
  override name = 'PermissionError';
  constructor(message: string, options: BusErrorOptions = {}) {
    super(ErrorCode.NoPermission, message, options);
  }
}

/** The publisher's fallback buffer is full and its policy is 'reject': the message was not kept. */
export class BufferFullError extends BusError {
  override name = 'BufferFullError';
  constructor(message: string, channel: string) {
    super(ErrorCode.BufferFull, message, { channel });
  }
}

/** A fenced publish whose lease has passed to another holder: refused by Redis, not written. */
export class FencedError extends BusError {
  override name = 'FencedError';
  constructor(channel: string) {
    super(ErrorCode.Fenced, `Publishing on "${preview(channel)}" was refused: this process no longer holds its lease (another one took it over). Stop publishing it.`, { channel });
  }
}

/** A service's HTTP server could not listen: `reason` is the system's code (EADDRINUSE, EACCES, …). */
export class ListenError extends BusError {
  override name = 'ListenError';
  readonly port: number;
  readonly host: string;
  readonly reason: string;

  constructor(host: string, port: number, cause: unknown) {
    const code = (cause as { code?: unknown } | null)?.code;
    const reason = typeof code === 'string' ? code : 'unknown';
    const what = reason === 'EADDRINUSE' ? 'is in use' : reason === 'EACCES' ? 'is not allowed for this user' : `cannot be listened on (${(cause as Error)?.message ?? reason})`;
    super(ErrorCode.Listen, `Port ${port} on ${host} ${what}.`, { cause });
    this.port = port;
    this.host = host;
    this.reason = reason;
  }
}

/**
 * Any value as text for a message, without running code of its own: `String(value)` calls
 * the value's toString, which an object from the wire or a handler's throw may replace, or
 * null out (`{"toString": null}` made String() throw, and a request got no reply).
 */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Error) return value.message;
  if (value === null || typeof value !== 'object') return typeof value === 'symbol' ? 'a symbol' : typeof value === 'function' ? 'a function' : `${value as number | boolean | bigint | undefined}`;
  try {
    return JSON.stringify(value) ?? Object.prototype.toString.call(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** A short, printable preview of untrusted text for error messages and logs. */
export function preview(text: string, max = 80): string {
  const cut = text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text;
  // Control characters would let hostile input forge log lines.
  // eslint-disable-next-line no-control-regex
  return cut.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
