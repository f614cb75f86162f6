// Waiting helpers for asynchronous assertions: poll a condition until it holds or a
// deadline passes, and fail with a message that says what was awaited.

export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}.`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Collects values pushed by a handler and waits for a count. */
export class Inbox<T> {
  readonly items: T[] = [];
  push = (item: T): void => {
    this.items.push(item);
  };
  async waitFor(count: number, what = `${count} messages`, timeoutMs = 5000): Promise<T[]> {
    await waitFor(() => this.items.length >= count, `${what} (have ${this.items.length})`, timeoutMs);
    return this.items;
  }
}
