// How many files (sockets included) this process may hold open: the soft RLIMIT_NOFILE, read
// from /proc on Linux. Node has no call for it, and a gateway that knows it can refuse the
// connection past its limit with an answer instead of letting the kernel drop it unexplained.
import { readFileSync } from 'node:fs';

/** The soft open-file limit, or undefined where it cannot be read (not Linux, or unlimited). */
export function openFileLimit(limitsFile = '/proc/self/limits'): number | undefined {
  let text: string;
  try {
    text = readFileSync(limitsFile, 'utf8');
  } catch {
    return undefined;
  }
  const line = text.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  const value = soft === undefined ? NaN : Number(soft);
  return Number.isSafeInteger(value) && value > 0 ? value : undefined;
}
