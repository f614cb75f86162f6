// Structured logs (pino, JSON lines on stderr so stdout stays free for program output).
// TICKBUS_LOG_LEVEL sets the level; TICKBUS_LOG_LEVEL=silent turns logging off (read and
// checked by config.ts's resolveLogLevel).
import { pino, type Logger } from 'pino';
import { BusError, DecodeError, ErrorCode, preview, ValidationError } from './errors.ts';
import { LogThrottle } from './log-throttle.ts';
import { resolveLogLevel } from './config.ts';

export type { Logger };

/**
 * Codes of errors about what someone else sent (a payload, a channel name, a parameter):
 * the input is the problem, not the code path, so a stack trace says nothing and only
 * costs bytes: a flood of garbage must not become megabytes of logs.
 */
const INPUT_CODES: ReadonlySet<string> = new Set<string>([
  ErrorCode.Validation,
  ErrorCode.InvalidJson,
  ErrorCode.InvalidEnvelope,
  ErrorCode.MessageTooLarge,
  ErrorCode.InvalidChannelParam,
  ErrorCode.UnknownChannel,
  ErrorCode.BadRequest,
]);

/** True for a BusError that reports bad input rather than a fault of this process. */
export function isInputError(error: unknown): error is BusError {
  return error instanceof BusError && INPUT_CODES.has(error.code);
}

/** Characters of a rejected payload a log line shows. */
const PREVIEW_CHARS = 24;

/**
 * pino's `err` serializer: a rejected input is one short object (its code, channel, a
 * bounded message, the payload's first bytes, how many schema issues); anything else (a handler crash,
 * a Redis failure, a bug) keeps pino's full form with its stack and causes.
 */
export function serializeError(error: unknown): unknown {
  if (!isInputError(error)) return error instanceof Error ? pino.stdSerializers.err(error) : error;
  // Each part bounded, so that the line stays under about 400 bytes whatever came in; the
  // channel is a field of its own, so the message does not repeat it.
  const channel = error.channel === undefined ? undefined : preview(error.channel);
  const message = channel === undefined ? error.message : error.message.replace(` on "${channel}"`, '').replace(` for channel "${channel}"`, '');
  return {
    code: error.code,
    ...(channel === undefined ? {} : { channel }),
    message: preview(message, 100),
    // 24 characters tell the payload apart; JSON escaping may double them in the line.
    ...(error instanceof DecodeError ? { preview: error.preview.length > PREVIEW_CHARS ? `${error.preview.slice(0, PREVIEW_CHARS)}…` : error.preview } : {}),
    ...(error instanceof ValidationError ? { issues: error.issues.length } : {}),
  };
}

export function createLogger(name: string, level: string = resolveLogLevel('info')): Logger {
  return pino({ name, level, base: { pid: process.pid }, serializers: { err: serializeError } }, pino.destination({ fd: 2, sync: false }));
}

export { LogThrottle };

/**
 * Logs the `error` events of a part of the bus that nobody listens to. Bad input and real
 * faults are throttled apart: a flood of garbage stays a few compact lines a second, and
 * never hides a handler crash (whose line keeps its stack).
 */
export class ErrorEventLog {
  readonly #input = new LogThrottle();
  readonly #faults = new LogThrottle();
  readonly #logger: Logger;
  readonly #message: string;

  constructor(logger: Logger, message: string) {
    this.#logger = logger;
    this.#message = message;
  }

  log(error: unknown, fields: Record<string, unknown> = {}): void {
    const suppressed = (isInputError(error) ? this.#input : this.#faults).take();
    if (suppressed >= 0) this.#logger.warn({ err: error, ...fields, suppressed }, this.#message);
  }
}
