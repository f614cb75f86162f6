// The publisher worker of a delivery benchmark (bench/pubsub-publisher.ts,
// bench/durable-publisher.ts). Connects through the benchmark's Sender, says ready, and on
// each `run` publishes a phase of messages: as fast as a bounded window of publishes in
// flight allows (throughput), or paced at a fixed rate in 1 ms ticks (latency). Every
// implementation goes through the same loops; only `publish` differs.
import { epochMs, startClock } from './clock.ts';
import type { DeliveryWorkerConfig, Phase, PublisherCommand, PublisherEvent } from './delivery.ts';
import { serveParent } from './proc.ts';
import { Window } from './window.ts';

/** One implementation's connection, as the loops use it. */
export interface Sender {
  /** Publishes the i-th message of the run. */
  publish(i: number): Promise<unknown>;
  close(): Promise<void>;
}

/** Publishes messages first..first+count-1 as fast as the window allows. */
async function flood(sender: Sender, first: number, count: number, window: Window): Promise<void> {
  for (let i = first; i < first + count; i++) {
    if (window.full) await window.slot();
    window.add(sender.publish(i));
  }
  await window.drain();
}

/**
 * Publishes at `rate` messages a second: every tick (a 1 ms timer) sends what is due by
 * then, so late timers catch up and the average rate holds.
 */
async function paced(sender: Sender, first: number, count: number, rate: number, window: Window): Promise<void> {
  const start = epochMs();
  const perMs = rate / 1000;
  let sent = 0;
  while (sent < count) {
    // What is due by the end of the current millisecond.
    const due = Math.min(count, Math.floor((epochMs() - start + 1) * perMs));
    while (sent < due) {
      if (window.full) await window.slot();
      window.add(sender.publish(first + sent));
      sent++;
    }
    if (sent < count) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await window.drain();
}

/**
 * Serves the parent's `run` commands with the sender `connecting` resolves to; says ready
 * once it is connected. The message numbers go on from one phase to the next.
 */
export async function servePublisher(cfg: DeliveryWorkerConfig, connecting: Promise<Sender>): Promise<void> {
  let next = 0;
  const run = async (phase: Phase): Promise<void> => {
    const sender = await connecting;
    const count = phase === 'warmup' ? cfg.warmup : cfg.messages;
    const window = new Window(cfg.window);
    const clock = await startClock(phase === 'measure' ? cfg.profile : undefined);
    if (cfg.mode === 'throughput') await flood(sender, next, count, window);
    else await paced(sender, next, count, cfg.rate, window);
    const { endedAt, cpuMicros } = await clock.stop();
    next += count;
    send({ type: 'sent', phase, count, startedAt: clock.startedAt, endedAt, cpuMicros });
  };
  const send = serveParent<PublisherCommand, PublisherEvent>((command) => run(command.phase), async () => (await connecting).close());
  await connecting;
  send({ type: 'ready' });
}
