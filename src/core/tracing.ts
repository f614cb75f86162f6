// OpenTelemetry tracing through @opentelemetry/api. The W3C trace context of a message travels
// in its envelope (`traceparent`, and `tracestate` when there is one); publishing, handling,
// the gateway's delivery and a job's run make spans, and a handler runs inside its message's
// context, so whatever it publishes joins the same trace. Nothing here costs anything until
// the application registers an SDK (a tracer provider): each message asks once whether one
// is registered, and goes on untouched when not.
//
// The trace context is written and read here, in the W3C format, rather than through the
// application's propagator: the envelope's fields are W3C trace context whatever propagator
// the application uses for its HTTP calls (or none).
import {
  ProxyTracerProvider,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  createTraceState,
  isSpanContextValid,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';

export type { Attributes, Context as TraceContext, Span } from '@opentelemetry/api';

const tracer = trace.getTracer('tickbus');
/** What the API hands out while no SDK is registered. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/** True when the application has registered a tracer provider: only then are spans made. */
export function tracingOn(): boolean {
  const provider = trace.getTracerProvider();
  return (provider instanceof ProxyTracerProvider ? provider.getDelegate() : provider) !== NOOP_PROVIDER;
}

/** The envelope's trace fields. */
export interface TraceFields {
  readonly traceparent: string;
  readonly tracestate?: string | undefined;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The W3C trace context of a span, for an envelope. */
export function traceFieldsOf(span: Span): TraceFields | undefined {
  const sc = span.spanContext();
  if (!isSpanContextValid(sc)) return undefined;
  const flags = (sc.traceFlags & 0xff).toString(16).padStart(2, '0');
  const state = sc.traceState?.serialize();
  return { traceparent: `00-${sc.traceId}-${sc.spanId}-${flags}`, ...(state ? { tracestate: state } : {}) };
}

/**
 * The remote parent an envelope names, or undefined for a missing or malformed one (a trace
 * context is advice: a bad one starts a new trace, it never rejects the message).
 */
export function parentFrom(traceparent: unknown, tracestate: unknown): Context | undefined {
  if (typeof traceparent !== 'string') return undefined;
  const m = TRACEPARENT.exec(traceparent);
  if (!m) return undefined;
  const sc: SpanContext = {
    traceId: m[1] as string,
    spanId: m[2] as string,
    traceFlags: Number.parseInt(m[3] as string, 16),
    isRemote: true,
    ...(typeof tracestate === 'string' && tracestate.length > 0 && tracestate.length <= 512 ? { traceState: createTraceState(tracestate) } : {}),
  };
  return isSpanContextValid(sc) ? trace.setSpanContext(ROOT_CONTEXT, sc) : undefined;
}

/** Messaging attributes of a span about one channel (OpenTelemetry's semantic conventions). */
function messaging(channel: string, operation: 'publish' | 'process', extra?: Attributes): Attributes {
  return { 'messaging.system': 'redis', 'messaging.destination.name': channel, 'messaging.operation.type': operation, ...extra };
}

/** A producer span for one message published on `channel` (its template names the span), child of `parent` or the active context. */
export function startPublishSpan(template: string, channel: string, parent?: Context): Span {
  return tracer.startSpan(`publish ${template}`, { kind: SpanKind.PRODUCER, attributes: messaging(channel, 'publish') }, parent ?? context.active());
}

/** Ends a span when `result` settles: an error (or a rejection) marks it failed. */
export function endWith<T>(span: Span, result: Promise<T>, describe?: (value: T) => Attributes | undefined): Promise<T> {
  result.then(
    (value) => {
      const attributes = describe?.(value);
      if (attributes) span.setAttributes(attributes);
      span.end();
    },
    (error: unknown) => failSpan(span, error),
  );
  return result;
}

/** Ends a span as failed. */
export function failSpan(span: Span, error: unknown): void {
  if (error instanceof Error) span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
  span.end();
}

/**
 * Runs `fn` in a span (a child of `parent`, else of the active context) and in that span's
 * context, so that what it publishes joins the trace; the span ends when `fn`'s result settles.
 */
export function inSpan<R>(name: string, kind: SpanKind, attributes: Attributes, parent: Context | undefined, fn: () => R): R {
  const span = tracer.startSpan(name, { kind, attributes }, parent ?? context.active());
  let result: R;
  try {
    result = context.with(trace.setSpan(parent ?? context.active(), span), fn);
  } catch (error) {
    failSpan(span, error);
    throw error;
  }
  if (result !== null && typeof result === 'object' && typeof (result as unknown as PromiseLike<unknown>).then === 'function') {
    (result as unknown as PromiseLike<unknown>).then(
      () => span.end(),
      (error: unknown) => failSpan(span, error),
    );
  } else {
    span.end();
  }
  return result;
}

/** Handling one message of `channel`: a consumer span, child of the publisher's (from the envelope). */
export function inProcessSpan<R>(template: string, channel: string, envelope: { traceparent?: unknown; tracestate?: unknown }, fn: () => R, extra?: Attributes): R {
  return inSpan(`process ${template}`, SpanKind.CONSUMER, messaging(channel, 'process', extra), parentFrom(envelope.traceparent, envelope.tracestate), fn);
}

/** The active context, to carry a message's trace across a queue (undefined when tracing is off). */
export function activeTraceContext(): Context | undefined {
  return tracingOn() ? context.active() : undefined;
}

/** A fresh start: what is published under it begins a trace of its own (undefined when tracing is off). */
export function newTraceContext(): Context | undefined {
  return tracingOn() ? ROOT_CONTEXT : undefined;
}

/** A short span that marks a moment (the gateway handing an update to its clients), child of the active context. */
export function markSpan(name: string, attributes: Attributes): void {
  tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes }).end();
}

export { SpanKind };
