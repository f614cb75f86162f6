import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MARKET_DATA_KINDS, SubscriptionState, type MarketDataKind, type SubscriptionOutcome, type SubscriptionRequest, type SubscriptionStep } from './subscription-state.ts';

const sorted = (list: readonly string[]) => [...list].sort();

/** A state already online with `tickers` subscribed and confirmed. */
function online(tickers: readonly string[], kinds: readonly MarketDataKind[] = ['trades']): SubscriptionState {
  const state = new SubscriptionState(kinds);
  state.update(tickers, []);
  state.authenticated();
  state.echoed(Object.fromEntries(kinds.map((k) => [k, tickers])));
  return state;
}

describe('SubscriptionState', () => {
  it('sends nothing offline, then asks for everything wanted once authenticated', () => {
    const state = new SubscriptionState(['trades', 'quotes']);
    assert.deepEqual(state.update(['AAPL', 'MSFT', 'AAPL'], []), { send: [] });
    assert.deepEqual(state.update(['AMD'], ['MSFT']), { send: [] }, 'offline changes only change what the next session asks for');
    assert.deepEqual(sorted(state.tickers), ['AAPL', 'AMD']);
    assert.equal(state.online, false);
    const step = state.authenticated();
    assert.deepEqual(step, { send: [{ action: 'subscribe', trades: ['AAPL', 'AMD'], quotes: ['AAPL', 'AMD'] }] });
    assert.equal(state.online, true);
    assert.equal(state.outstanding, 1);
  });

  it('settles at once when a session starts with nothing wanted', () => {
    const state = new SubscriptionState(['trades']);
    assert.deepEqual(state.authenticated(), { send: [], settled: { result: 'confirmed' } });
  });

  it('confirms once the echo holds every wanted ticker in every kind', () => {
    const state = new SubscriptionState(['trades', 'bars']);
    state.update(['AAPL', 'MSFT'], []);
    state.authenticated();
    const step = state.echoed({ trades: ['AAPL', 'MSFT'], quotes: [], bars: ['MSFT', 'AAPL'] });
    assert.deepEqual(step, { send: [], settled: { result: 'confirmed' } });
    assert.deepEqual(state.subscription, { trades: ['AAPL', 'MSFT'], quotes: [], bars: ['MSFT', 'AAPL'] });
    assert.equal(state.outstanding, 0);
  });

  it('unsubscribes before it subscribes, and sends nothing for changes that change nothing', () => {
    const state = online(['AAPL', 'MSFT'], ['trades', 'quotes']);
    assert.deepEqual(state.update(['AMD', 'AAPL'], ['MSFT', 'NVDA', 'MSFT']).send, [
      { action: 'unsubscribe', trades: ['MSFT'], quotes: ['MSFT'] },
      { action: 'subscribe', trades: ['AMD'], quotes: ['AMD'] },
    ]);
    assert.equal(state.outstanding, 2);
    assert.deepEqual(state.update(['AAPL'], ['NVDA']), { send: [] });
  });

  it('waits for every outstanding request before it settles', () => {
    const state = online(['AAPL']);
    state.update(['AMD'], []);
    state.update(['MSFT'], []);
    assert.equal(state.echoed({ trades: ['AAPL', 'AMD'] }).settled, undefined, 'one request is still unanswered');
    assert.deepEqual(state.echoed({ trades: ['AAPL', 'AMD', 'MSFT'] }).settled, { result: 'confirmed' });
  });

  it('reports a ticker the echo lacks without a refusal, and keeps wanting it', () => {
    const state = new SubscriptionState(['trades', 'quotes']);
    state.update(['AAPL', 'MSFT'], []);
    state.authenticated();
    const step = state.echoed({ trades: ['AAPL', 'MSFT'], quotes: ['AAPL'] });
    assert.deepEqual(step.settled, { result: 'unconfirmed', symbols: ['MSFT'] }, 'confirmed means confirmed in every kind');
    assert.deepEqual(sorted(state.tickers), ['AAPL', 'MSFT']);
  });

  it('retries a refused request one symbol at a time, keeps those accepted and forgets those refused', () => {
    const state = online(['AAPL']);
    state.update(['AMD', 'BAD1', 'MSFT', 'BAD2'], []);
    const probe = state.refused({ code: 400, msg: 'invalid syntax' });
    assert.deepEqual(probe?.send, [
      { action: 'subscribe', trades: ['AMD'] },
      { action: 'subscribe', trades: ['BAD1'] },
      { action: 'subscribe', trades: ['MSFT'] },
      { action: 'subscribe', trades: ['BAD2'] },
    ]);
    assert.equal(probe?.settled, undefined);
    state.echoed({ trades: ['AAPL', 'AMD'] });
    state.refused({ code: 400, msg: 'invalid syntax' });
    state.echoed({ trades: ['AAPL', 'AMD', 'MSFT'] });
    const last = state.refused({ code: 400, msg: 'invalid syntax' });
    assert.deepEqual(last, {
      send: [],
      settled: { result: 'refused', symbols: ['BAD1', 'BAD2'], errors: [{ code: 400, msg: 'invalid syntax' }, { code: 400, msg: 'invalid syntax' }, { code: 400, msg: 'invalid syntax' }] },
    });
    assert.deepEqual(sorted(state.tickers), ['AAPL', 'AMD', 'MSFT']);
    assert.equal(state.wants('BAD1'), false);
  });

  it('reports a lone refused symbol without retrying it', () => {
    const state = online(['AAPL']);
    state.update(['BAD'], []);
    assert.deepEqual(state.refused({ code: 405, msg: 'symbol limit exceeded' }), {
      send: [],
      settled: { result: 'refused', symbols: ['BAD'], errors: [{ code: 405, msg: 'symbol limit exceeded' }] },
    });
    assert.deepEqual(state.tickers, ['AAPL']);
  });

  it('retries a symbol left alone in a refused request: the one refused may have been unsubscribed meanwhile', () => {
    const state = online(['AAPL']);
    state.update(['AMD', 'BAD'], []);
    state.update([], ['BAD']);
    assert.equal(state.refused({ code: 400, msg: 'invalid syntax' })?.settled, undefined);
    const step = state.echoed({ trades: ['AAPL'] });
    assert.deepEqual(step, { send: [{ action: 'subscribe', trades: ['AMD'] }] }, 'AMD is asked for on its own');
    assert.deepEqual(state.echoed({ trades: ['AAPL', 'AMD'] }).settled, { result: 'confirmed' });
    assert.deepEqual(sorted(state.tickers), ['AAPL', 'AMD']);
  });

  it('does not take an error for an answer when no request is outstanding', () => {
    const state = online(['AAPL']);
    assert.equal(state.refused({ code: 400, msg: 'invalid syntax' }), undefined);
    assert.equal(state.outstanding, 0);
  });

  it('treats a wildcard as every symbol, in the echo and in what is wanted', () => {
    const state = new SubscriptionState(['trades']);
    state.update(['*', 'AAPL'], []);
    state.authenticated();
    assert.deepEqual(state.echoed({ trades: ['*'] }).settled, { result: 'confirmed' });
    assert.equal(state.wants('ANYTHING'), true);
  });

  it('stops wanting prints for a ticker once it is unsubscribed, before Alpaca confirms', () => {
    const state = online(['AAPL', 'MSFT']);
    state.update([], ['MSFT']);
    assert.equal(state.wants('MSFT'), false);
    assert.equal(state.wants('AAPL'), true);
  });

  it('does not wait for a request that could not be sent', () => {
    const state = online(['AAPL']);
    state.update(['AMD'], []);
    state.update(['MSFT'], []);
    state.notSent();
    assert.equal(state.outstanding, 1);
    assert.deepEqual(state.echoed({ trades: ['AAPL', 'AMD'] }).settled, { result: 'unconfirmed', symbols: ['MSFT'] });
  });

  it('starts each session from nothing: the old echo and the unanswered requests are dropped', () => {
    const state = online(['AAPL']);
    state.update(['AMD'], []);
    state.disconnected();
    assert.equal(state.online, false);
    assert.deepEqual(state.update(['MSFT'], []), { send: [] });
    assert.deepEqual(state.subscription.trades, ['AAPL'], 'the last echo stays visible while offline');
    assert.deepEqual(state.authenticated().send, [{ action: 'subscribe', trades: ['AAPL', 'AMD', 'MSFT'] }]);
    assert.equal(state.outstanding, 1);
    assert.deepEqual(state.subscription.trades, []);
    assert.equal(state.echoed({ trades: ['AAPL', 'AMD'] }).settled?.result, 'unconfirmed');
  });

  it('settles nothing while offline, even when the answers add up', () => {
    const state = online(['AAPL']);
    state.update(['AMD'], []);
    state.disconnected();
    assert.deepEqual(state.echoed({ trades: ['AAPL', 'AMD'] }), { send: [] });
  });
});

// ---- property: random sessions against a model of Alpaca --------------------------------

/** Symbols Alpaca refuses: a subscribe naming one is refused whole (400), as Alpaca does. */
const BAD = new Set(['X', 'Y']);
const SYMBOLS = ['A', 'B', 'C', 'D', 'X', 'Y'];

type Answer = { readonly echo: Record<MarketDataKind, string[]> } | { readonly error: number };
type Command =
  | { readonly op: 'update'; readonly add: string[]; readonly remove: string[] }
  /** Alpaca reads one request. */
  | { readonly op: 'serve' }
  /** The client reads one answer. */
  | { readonly op: 'read' }
  /** The socket is terminated: what is in flight is lost, sends fail until the close. */
  | { readonly op: 'drop' }
  /** The close arrives. */
  | { readonly op: 'close' }
  /** A new session authenticates. */
  | { readonly op: 'reconnect' };

const symbols = fc.uniqueArray(fc.constantFrom(...SYMBOLS), { maxLength: 4 });
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('update' as const), add: symbols, remove: symbols }) },
  { weight: 5, arbitrary: fc.constant({ op: 'serve' as const }) },
  { weight: 5, arbitrary: fc.constant({ op: 'read' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'drop' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'close' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'reconnect' as const }) },
);
const kindSets = fc.constantFrom<MarketDataKind[]>(['trades'], ['trades', 'quotes'], ['trades', 'quotes', 'bars']);

class Model {
  readonly state: SubscriptionState;
  /** What the user asked for, in the end. */
  readonly wanted = new Set<string>();
  readonly outcomes: SubscriptionOutcome[] = [];
  connection: 'up' | 'dropping' | 'down' = 'down';
  server = emptyLists();
  inbox: SubscriptionRequest[] = [];
  outbox: Answer[] = [];

  constructor(kinds: readonly MarketDataKind[]) {
    this.state = new SubscriptionState(kinds);
  }

  run(c: Command): void {
    switch (c.op) {
      case 'update':
        for (const s of c.remove) this.wanted.delete(s);
        for (const s of c.add) if (!c.remove.includes(s)) this.wanted.add(s);
        // The state removes first, then adds: a symbol in both ends up wanted.
        for (const s of c.add) if (c.remove.includes(s)) this.wanted.add(s);
        this.apply(this.state.update(c.add, c.remove));
        return;
      case 'serve':
        if (this.connection === 'up') this.serve();
        return;
      case 'read':
        if (this.connection === 'up') this.read();
        return;
      case 'drop':
        if (this.connection !== 'up') return;
        this.connection = 'dropping';
        this.inbox = [];
        this.outbox = [];
        return;
      case 'close':
        if (this.connection === 'down') return;
        this.connection = 'down';
        this.inbox = [];
        this.outbox = [];
        this.state.disconnected();
        return;
      case 'reconnect':
        if (this.connection !== 'down') return;
        this.connection = 'up';
        this.server = emptyLists();
        this.apply(this.state.authenticated());
        return;
    }
  }

  /** Ends connected with nothing in flight. */
  settle(): void {
    if (this.connection !== 'up') {
      this.run({ op: 'close' });
      this.run({ op: 'reconnect' });
    }
    for (let guard = 0; this.inbox.length > 0 || this.outbox.length > 0; guard++) {
      assert.ok(guard < 1000, 'the exchange ends');
      if (this.inbox.length > 0) this.serve();
      if (this.outbox.length > 0) this.read();
    }
  }

  apply(step: SubscriptionStep): void {
    for (const request of step.send) {
      if (this.connection === 'up') this.inbox.push(request);
      else this.state.notSent();
    }
    if (step.settled) this.outcomes.push(step.settled);
  }

  serve(): void {
    const request = this.inbox.shift();
    if (!request) return;
    const named = MARKET_DATA_KINDS.flatMap((k) => request[k] ?? []);
    if (request.action === 'subscribe' && named.some((s) => BAD.has(s))) {
      this.outbox.push({ error: 400 });
      return;
    }
    for (const kind of MARKET_DATA_KINDS) {
      for (const s of request[kind] ?? []) {
        if (request.action === 'subscribe') this.server[kind].add(s);
        else this.server[kind].delete(s);
      }
    }
    this.outbox.push({ echo: { trades: [...this.server.trades], quotes: [...this.server.quotes], bars: [...this.server.bars] } });
  }

  read(): void {
    const answer = this.outbox.shift();
    if (!answer) return;
    if ('echo' in answer) this.apply(this.state.echoed(answer.echo));
    else {
      const step = this.state.refused({ code: answer.error, msg: 'invalid syntax' });
      assert.ok(step, 'every error of this model answers a request');
      this.apply(step);
    }
  }
}

function emptyLists(): Record<MarketDataKind, Set<string>> {
  return { trades: new Set(), quotes: new Set(), bars: new Set() };
}

describe('SubscriptionState against a model of Alpaca', () => {
  it('ends with the server streaming exactly what is wanted, whatever the order of changes, answers and reconnections', () => {
    fc.assert(
      fc.property(kindSets, fc.array(command, { maxLength: 60 }), (kinds, commands) => {
        const model = new Model(kinds);
        for (const c of commands) model.run(c);
        model.settle();
        const { state, server } = model;
        const expected = sorted([...model.wanted].filter((s) => !BAD.has(s)));
        assert.deepEqual(sorted(state.tickers), expected, 'wanted, less what Alpaca refused');
        for (const kind of kinds) {
          assert.deepEqual(sorted([...server[kind]]), expected, `the server's ${kind}`);
          assert.deepEqual(sorted(state.subscription[kind]), expected, `the echo's ${kind}`);
        }
        for (const kind of MARKET_DATA_KINDS.filter((k) => !kinds.includes(k))) assert.equal(server[kind].size, 0, `nothing asked of ${kind}`);
        assert.equal(state.outstanding, 0);
        for (const s of SYMBOLS) assert.equal(state.wants(s), expected.includes(s), `wants(${s})`);
        for (const outcome of model.outcomes) {
          assert.notEqual(outcome.result, 'unconfirmed', 'an in-order server confirms whatever it did not refuse');
          if (outcome.result === 'refused') for (const s of outcome.symbols) assert.ok(BAD.has(s), `${s} was refused, and only bad symbols are`);
        }
        assert.ok(model.outcomes.length > 0, 'the last session settled');
      }),
      { numRuns: 500 },
    );
  });

  it('settles every session that stays up, with refusals reported only for symbols Alpaca refuses', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ add: symbols, remove: symbols }), { minLength: 1, maxLength: 10 }), (updates) => {
        const model = new Model(['trades']);
        model.run({ op: 'reconnect' });
        for (const u of updates) {
          model.run({ op: 'update', ...u });
          model.settle();
        }
        const refused = new Set(model.outcomes.flatMap((o) => (o.result === 'refused' ? o.symbols : [])));
        const everAddedBad = new Set(updates.flatMap((u) => u.add.filter((s) => BAD.has(s))));
        assert.deepEqual(sorted([...refused]), sorted([...everAddedBad]));
      }),
      { numRuns: 300 },
    );
  });
});
