// The paced publisher worker of the fan-out benchmarks (bench/gateway-publisher.ts,
// bench/tickstock-publisher.ts): on `start`, publishes `rate` messages a second in 1 ms
// ticks (a late tick sends what is due, so the rate holds), never more than MAX_IN_FLIGHT
// unanswered (a stalled Redis shows up as an error, not as memory); reports its count on
// `mark` and `stop`. Only what one message is differs between the benchmarks.
import { epochMs } from './clock.ts';
import { serveParent } from './proc.ts';

export type PacedCommand = { type: 'start' } | { type: 'mark' } | { type: 'stop' };
export type PacedEvent = { type: 'ready' } | { type: 'marked'; published: number; at: number } | { type: 'stopped'; published: number; errors: number; firstError: string | undefined };

const MAX_IN_FLIGHT = 10_000;

/** Serves the parent: `publish(i, nowMs)` sends the i-th message of the run. */
export function servePacedPublisher(rate: number, publish: (i: number, nowMs: number) => Promise<unknown>, close: () => Promise<void>): void {
  let published = 0;
  let inFlight = 0;
  let errors = 0;
  let firstError: string | undefined;
  let running = false;
  let stopped: Promise<void> = Promise.resolve();
  const settle = () => inFlight--;
  const fail = (error: unknown) => {
    inFlight--;
    errors++;
    firstError ??= error instanceof Error ? error.message : String(error);
  };

  async function loop(): Promise<void> {
    const start = epochMs();
    const perMs = rate / 1000;
    let sent = 0;
    while (running) {
      const due = Math.floor((epochMs() - start + 1) * perMs);
      while (sent < due && running) {
        if (inFlight >= MAX_IN_FLIGHT) throw new Error(`${MAX_IN_FLIGHT} publishes unanswered: Redis cannot keep up with ${rate}/s.`);
        inFlight++;
        publish(published, epochMs()).then(settle, fail);
        published++;
        sent++;
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    while (inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 1));
  }

  const send = serveParent<PacedCommand, PacedEvent>(async (command): Promise<void> => {
    switch (command.type) {
      case 'start':
        running = true;
        stopped = loop();
        return;
      case 'mark':
        return send({ type: 'marked', published, at: epochMs() });
      case 'stop':
        running = false;
        await stopped;
        return send({ type: 'stopped', published, errors, firstError });
    }
  }, close);
  send({ type: 'ready' });
}
