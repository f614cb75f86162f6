// Reading what Alpaca sends: its frames hold JSON, an array of messages (possibly batched).
// Shared by both streams and the order client; nothing here knows a socket.

/** A frame's messages: Alpaca sends arrays (possibly batched); a lone object is read as one. */
export function frameItems(text: string): unknown[] | undefined {
  const parsed = parseJson(text);
  if (Array.isArray(parsed)) return parsed as unknown[];
  return isRecord(parsed) ? [parsed] : undefined;
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}
