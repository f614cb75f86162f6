// Redis stream ids, `<milliseconds>-<sequence>`: the positions of durable messages and of
// messages on channels with history.

const STREAM_ID = /^(\d{1,20})-(\d{1,20})$/;

export function isStreamId(text: string): boolean {
  return STREAM_ID.test(text);
}

/** Orders two stream ids as Redis does (numerically, milliseconds then sequence). */
export function compareStreamIds(a: string, b: string): number {
  const [am, as] = split(a);
  const [bm, bs] = split(b);
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}

function split(id: string): [bigint, bigint] {
  const m = STREAM_ID.exec(id);
  if (!m) throw new TypeError(`Not a stream id: "${id.slice(0, 40)}"`);
  return [BigInt(m[1] as string), BigInt(m[2] as string)];
}
