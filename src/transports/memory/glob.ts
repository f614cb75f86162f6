// Redis's glob semantics (the matcher behind PSUBSCRIBE and KEYS), reimplemented so the
// in-memory transport delivers to exactly the channels Redis would:
//   *  any sequence, ?  one character, [abc] [^abc] [a-z] classes (reversed ranges allowed,
//   an unterminated class ends at the pattern's end), \x  the literal x.
// Redis matches bytes; this matches UTF-16 units, which agree for ASCII channel names.

/** Does `pattern` match all of `text`, as Redis would decide? */
export function globMatch(pattern: string, text: string): boolean {
  // Redis matches nothing but the empty pattern against an empty name (not even `*`).
  if (text.length === 0) return pattern.length === 0;
  let p = 0;
  let t = 0;
  // Backtracking point of the last `*`: where the pattern resumes, and how far the star reached.
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    const step = p < pattern.length ? matchOne(pattern, p, text.charCodeAt(t)) : -1;
    if (step === STAR) {
      starP = ++p;
      starT = t;
      continue;
    }
    if (step > 0) {
      p = step;
      t++;
      continue;
    }
    if (starP >= 0) {
      p = starP;
      t = ++starT;
      continue;
    }
    return false;
  }
  while (p < pattern.length && pattern.charCodeAt(p) === 42 /* * */) p++;
  return p === pattern.length;
}

const STAR = -2;

/**
 * Tries the pattern element at `p` against one character. Returns the index after the
 * element on a match, -1 on a mismatch, STAR for `*`.
 */
function matchOne(pattern: string, p: number, c: number): number {
  const ch = pattern.charCodeAt(p);
  switch (ch) {
    case 42: // *
      return STAR;
    case 63: // ?
      return p + 1;
    case 92: // backslash: escapes the next character, or is literal when last
      if (p + 1 < pattern.length) return pattern.charCodeAt(p + 1) === c ? p + 2 : -1;
      return c === 92 ? p + 1 : -1;
    case 91: // [
      return matchClass(pattern, p + 1, c);
    default:
      return ch === c ? p + 1 : -1;
  }
}

function matchClass(pattern: string, start: number, c: number): number {
  let p = start;
  const negate = pattern.charCodeAt(p) === 94; /* ^ */
  if (negate) p++;
  let matched = false;
  for (;;) {
    if (p >= pattern.length) break; // unterminated: the class ends with the pattern
    const ch = pattern.charCodeAt(p);
    if (ch === 92 /* \ */ && p + 1 < pattern.length) {
      if (pattern.charCodeAt(p + 1) === c) matched = true;
      p += 2;
      continue;
    }
    if (ch === 93 /* ] */) {
      p++;
      break;
    }
    if (p + 2 < pattern.length && pattern.charCodeAt(p + 1) === 45 /* - */) {
      let lo = ch;
      let hi = pattern.charCodeAt(p + 2);
      if (lo > hi) [lo, hi] = [hi, lo];
      if (c >= lo && c <= hi) matched = true;
      p += 3;
      continue;
    }
    if (ch === c) matched = true;
    p++;
  }
  return matched !== negate ? p : -1;
}
