// The chaos run's judge of history delivery (bench/lib/chaos-run.ts: analyseHistory): a
// checker that cannot fail proves nothing, so each kind of fault it must find is fed to it
// here, against a stream of ten entries.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { analyseHistory, type Entry } from '../../bench/lib/chaos-run.ts';

const ids = Array.from({ length: 10 }, (_, i) => `${1000 + i}-0`);
const entries = new Map<string, Entry[]>([['AAPL', ids.map((id, i) => ({ id, ms: 1000 + i, sender: 'b' }))]]);
const judge = (log: string[], cutoffMs = 2000) =>
  analyseHistory(entries, { clients: [{ id: 'c', urls: [], connects: 1, symbols: { AAPL: log } }] }, { clientsFrom: 1000, cutoffMs, recorderBreaks: 0 });
const pos = (i: number) => ids[i] as string;

describe('chaos run: the history judge', () => {
  it('passes a client that got every entry once, in order', () => {
    const h = judge(['!snapshot', ...ids]);
    assert.deepEqual([h.gapsReported, h.gapsUnreported, h.duplicates, h.reorders, h.unknownPositions, h.received], [0, 0, 0, 0, 0, 10]);
  });

  it('finds a gap nobody told the client about, and counts what it missed', () => {
    const h = judge([pos(0), pos(1), '~reconnecting', '~open', '!sub:live', pos(5), ...ids.slice(6)]);
    assert.equal(h.gapsUnreported, 1);
    assert.equal(h.missedUnreported, 3);
    assert.equal(h.unreportedSample[0]?.after, pos(1));
  });

  it('counts a gap the gateway answered with a snapshot (or a dropped notice) as reported', () => {
    assert.equal(judge([pos(0), '!sub:snapshot', '!snapshot', pos(4), ...ids.slice(5)]).gapsReported, 1);
    const notice = judge([pos(0), '!notice:TB_ERR_SLOW_CONSUMER:2', pos(3), ...ids.slice(4)]);
    assert.deepEqual([notice.gapsReported, notice.missedReported, notice.gapsUnreported], [1, 2, 0]);
  });

  it('counts a resume answered with `gap`, and a notice that the gateway itself missed a room, as reported; a notice of nothing dropped is not', () => {
    assert.deepEqual([judge([pos(0), '!sub:live:gap', pos(3), ...ids.slice(4)]).gapsReported, judge([pos(0), '!sub:live:gap', pos(3), ...ids.slice(4)]).gapsUnreported], [1, 0]);
    assert.equal(judge([pos(0), '!notice:TB_ERR_STREAM_TRIMMED:0', pos(3), ...ids.slice(4)]).gapsReported, 1);
    assert.equal(judge([pos(0), '!notice:TB_ERR_SLOW_CONSUMER:0', pos(3), ...ids.slice(4)]).gapsUnreported, 1);
  });

  it('finds a client that stalled: entries before the cut-off that never arrived', () => {
    const h = judge(ids.slice(0, 6), 1008);
    assert.deepEqual([h.gapsUnreported, h.missedUnreported], [1, 2]);
    assert.equal(judge([], 1005).missedUnreported, 5, 'a client that got nothing missed everything');
  });

  it('finds duplicates, reorders and positions the streams never held', () => {
    const h = judge([pos(0), pos(1), pos(1), pos(3), pos(2), ...ids.slice(4), '999999-0']);
    assert.equal(h.duplicates, 1);
    assert.equal(h.reorders, 1);
    assert.equal(h.unknownPositions, 1);
  });
});
