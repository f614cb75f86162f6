// The receiving worker of a delivery benchmark (bench/pubsub-subscriber.ts,
// bench/durable-consumer.ts). Connects through the benchmark's code, says ready, counts
// the warm-up messages, then times the measured ones: when the last reaches the handler
// (throughput) and how long each took from its `sent_at` to the handler (latency).
// Reports once every message arrived, or when the parent asks.
import { cpuMicrosSince, epochMs } from './clock.ts';
import type { DeliveryWorkerConfig, ReceiverCommand, ReceiverEvent } from './delivery.ts';
import { serveParent } from './proc.ts';
import { startCpuProfile } from './profiler.ts';
import { summarize } from './stats.ts';

/** What an implementation's handler calls. */
export interface Receiver {
  /** A price message reached the handler at `now`; `sentAt` in latency runs. */
  price(sentAt: number | undefined, now?: number): void;
  /** Anything that should not have arrived, or a bus error. */
  error(what: string): void;
}

/** Closes an implementation's connections. */
export type Close = () => Promise<void>;

/**
 * Counts and times what `connect`'s handlers pass to the receiver, and serves the parent:
 * `ready` once connected, `warm` after the warm-up, `result` after the last message.
 */
export async function serveReceiver(cfg: DeliveryWorkerConfig, connect: (receiver: Receiver) => Promise<Close>): Promise<void> {
  const total = cfg.warmup + cfg.messages;
  const latencies = cfg.mode === 'latency' ? new Float64Array(cfg.messages) : undefined;
  let received = 0;
  let lastAt = Number.NaN;
  let errors = 0;
  let firstError: string | undefined;
  let cpuAtWarm = process.cpuUsage();
  let profiling: Promise<() => Promise<void>> | undefined;
  let reported = false;

  const report = async (): Promise<void> => {
    if (reported) return;
    reported = true;
    const measured = Math.max(0, received - cfg.warmup);
    const cpuMicros = cpuMicrosSince(cpuAtWarm);
    const latency = latencies ? summarize(latencies.subarray(0, Math.min(measured, latencies.length))) : undefined;
    await (await profiling)?.();
    send({ type: 'result', complete: measured === cfg.messages, count: measured, lastAt, cpuMicros, latency, errors, firstError });
  };

  const warm = (): void => {
    if (cfg.profile) profiling = startCpuProfile(cfg.profile);
    cpuAtWarm = process.cpuUsage();
    send({ type: 'warm' });
  };

  const receiver: Receiver = {
    price(sentAt, now = epochMs()) {
      const n = ++received;
      if (latencies && n > cfg.warmup) {
        const idx = n - cfg.warmup - 1;
        if (idx < latencies.length) latencies[idx] = now - (sentAt ?? Number.NaN);
      }
      if (n === cfg.warmup) warm();
      else if (n === total) {
        lastAt = now;
        void report();
      } else if (n > total) receiver.error('more messages than were published');
    },
    error(what) {
      errors++;
      firstError ??= what;
    },
  };

  const connecting = connect(receiver);
  const send = serveParent<ReceiverCommand, ReceiverEvent>(report, async () => (await connecting)());
  await connecting;
  send({ type: 'ready' });
  if (cfg.warmup === 0) warm();
}
