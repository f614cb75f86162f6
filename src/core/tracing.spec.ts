// The W3C trace context the envelope carries: written from a span, read back as a remote
// parent, and anything malformed or forged read as no parent at all (never an error).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { trace } from '@opentelemetry/api';
import { EnvelopeWriter, decodePayload } from './envelope.ts';
import { parentFrom, traceFieldsOf, tracingOn } from './tracing.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('trace context in the envelope', () => {
  it('is off until an SDK is registered', () => {
    assert.equal(tracingOn(), false);
  });

  it('reads a valid traceparent (and its tracestate) as a remote parent', () => {
    const parent = parentFrom(`00-${TRACE}-${SPAN}-01`, 'vendor=abc');
    const sc = parent && trace.getSpanContext(parent);
    assert.deepEqual([sc?.traceId, sc?.spanId, sc?.traceFlags, sc?.isRemote, sc?.traceState?.get('vendor')], [TRACE, SPAN, 1, true, 'abc']);
  });

  it('ignores what is not a W3C traceparent: wrong types, versions, lengths, case, all-zero ids', () => {
    for (const [i, bad] of [undefined, null, 42, {}, { toString: null }, '', 'not-a-traceparent', `01-${TRACE}-${SPAN}-01`, `00-${TRACE.toUpperCase()}-${SPAN}-01`, `00-${TRACE}-${SPAN}-1`, `00-${'0'.repeat(32)}-${SPAN}-01`, `00-${TRACE}-${'0'.repeat(16)}-01`, `00-${TRACE}-${SPAN}-01-extra`].entries()) {
      assert.equal(parentFrom(bad, undefined), undefined, `case ${i}`);
    }
  });

  it('writes the fields inside the envelope, where a history position can still be appended', () => {
    const parent = parentFrom(`00-${TRACE}-${SPAN}-01`, 'k=v');
    const span = trace.wrapSpanContext(trace.getSpanContext(parent as never) as never);
    const fields = traceFieldsOf(span);
    assert.deepEqual(fields, { traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'k=v' });
    const writer = new EnvelopeWriter('svc');
    const payload = writer.write('envelope', { n: 1 }, fields);
    // What the history script does: the position goes in before the closing brace.
    const withPosition = `${payload.slice(0, -1)},"position":"1-0"}`;
    const decoded = decodePayload(withPosition, 'ch', 'envelope', 1 << 20);
    assert.ok(!(decoded instanceof Error));
    assert.deepEqual([decoded.data, decoded.traceparent, decoded.tracestate, decoded.position], [{ n: 1 }, `00-${TRACE}-${SPAN}-01`, 'k=v', '1-0']);
    const durable = JSON.parse(writer.writeWithId({ n: 2 }, 'id-1', fields)) as Record<string, unknown>;
    assert.deepEqual([durable.id, durable.traceparent], ['id-1', `00-${TRACE}-${SPAN}-01`]);
    assert.equal(writer.write('bare', { n: 3 }, fields), '{"n":3}', 'a bare payload is the data alone');
  });
});
