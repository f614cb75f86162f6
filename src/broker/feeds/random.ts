// The simulated market's PRNG lives in core (src/core/random.ts), so that the backtest worker
// (src/tickstock) draws the same seeded history as the sim feed; re-exported for the feeds.
export { gaussian, hashString, mulberry32 } from '../../core/random.ts';
