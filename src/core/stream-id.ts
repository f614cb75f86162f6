// Redis stream ids, `<milliseconds>-<sequence>`: the positions of durable messages and of
// messages on channels with history.

const STREAM_ID = /^(\d{1,24})-(\d{1,24})$/;
/** Redis keeps both parts of an id as unsigned 64-bit numbers and refuses anything larger. */
const U64_MAX = '18446744073709551615';

export function isStreamId(text: string): boolean {
  const m = STREAM_ID.exec(text);
  return m !== null && fitsU64(m[1] as string) && fitsU64(m[2] as string);
}

function fitsU64(digits: string): boolean {
  const d = digits.replace(/^0+(?=\d)/, '');
  return d.length < U64_MAX.length || (d.length === U64_MAX.length && d <= U64_MAX);
}

/** The milliseconds part of a stream id (Redis's clock when it wrote the entry), as a number. */
export function streamIdMs(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}

/**
 * Orders two stream ids as Redis does (numerically, milliseconds then sequence). On the
 * receive path of every history channel, so it compares digit strings (a longer one is
 * larger) instead of parsing numbers, and does not re-validate: ids are checked where they
 * come in (decodePayload, resumeAfter, history()) with isStreamId. It only refuses what has
 * no `-` at all.
 */
export function compareStreamIds(a: string, b: string): number {
  const ad = a.indexOf('-');
  const bd = b.indexOf('-');
  if (ad <= 0 || bd <= 0) throw new TypeError(`Not a stream id: "${(ad <= 0 ? a : b).slice(0, 40)}"`);
  return compareDigits(a, 0, ad, b, 0, bd) || compareDigits(a, ad + 1, a.length, b, bd + 1, b.length);
}

function compareDigits(a: string, as: number, ae: number, b: string, bs: number, be: number): number {
  // Leading zeros (never written by Redis, but legal input) do not make a number larger.
  while (ae - as > 1 && a.charCodeAt(as) === 48) as++;
  while (be - bs > 1 && b.charCodeAt(bs) === 48) bs++;
  if (ae - as !== be - bs) return ae - as < be - bs ? -1 : 1;
  for (let i = 0; i < ae - as; i++) {
    const d = a.charCodeAt(as + i) - b.charCodeAt(bs + i);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}
