// Lint rules: typescript-eslint's type-aware set, because floating promises and
// misused async callbacks are the bugs an event bus is most prone to.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { importX, createNodeResolver } from 'eslint-plugin-import-x';

// The layering of docs/architecture.md: CLI → services → bus → transports → core. Each
// folder lists the folders of ours it may import; anything else under src/ is refused.
const parts = ['core', 'transports', 'catalogs', 'patterns', 'bus', 'ops', 'broker', 'jobs', 'tickstock', 'client', 'gateway', 'seed', 'runtime', 'cli'];
const mayImport = {
  core: [],
  transports: ['core'],
  catalogs: ['core'],
  // The reference pattern library: pure code (bars, indicators, detectors, messages, backtests).
  patterns: ['core', 'catalogs'],
  bus: ['core', 'transports', 'catalogs'],
  ops: ['core', 'bus', 'catalogs', 'transports'],
  broker: ['core', 'bus', 'catalogs', 'ops', 'transports'],
  jobs: ['core', 'bus', 'catalogs', 'ops', 'transports'],
  // The TickStock loop's reference services (issue 16), built on the library's parts.
  tickstock: ['core', 'transports', 'catalogs', 'bus', 'ops', 'patterns', 'jobs'],
  client: ['core', 'bus', 'catalogs', 'broker', 'transports'],
  // transports: the command seam only (the alert preferences, claims and inboxes).
  gateway: ['core', 'bus', 'catalogs', 'ops', 'broker', 'jobs', 'patterns', 'transports'],
  seed: ['core', 'bus', 'catalogs', 'transports'],
  runtime: ['core', 'transports', 'patterns'],
  cli: parts,
};
const layerZones = parts.flatMap((part) =>
  parts
    .filter((other) => other !== part && !mayImport[part].includes(other))
    .map((other) => ({ target: `./src/${part}`, from: `./src/${other}`, message: `src/${part} may import only ${mayImport[part].join(', ') || 'nothing of ours'} (docs/architecture.md).` })),
);
// Services reach Redis through the transport's seam (transports/transport.ts), never a
// Redis transport's internals: the bus and the CLI are the only ones that pick one.
const services = ['ops', 'broker', 'jobs', 'tickstock', 'client', 'gateway', 'seed'];
const seamZones = services.flatMap((part) =>
  ['redis', 'memory'].map((impl) => ({ target: `./src/${part}`, from: `./src/transports/${impl}`, message: `src/${part} talks to Redis through the seam in src/transports/transport.ts, not src/transports/${impl} (docs/architecture.md).` })),
);

// node:test's describe/it return promises that the runner itself awaits.
const NODE_TEST = [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }];

export default tseslint.config(
  { ignores: ['node_modules/**', 'artifacts/**', 'dist/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: NODE_TEST }],
      '@typescript-eslint/only-throw-error': 'error',
    },
  },
  {
    // In the product, a promise nobody awaits must end in .catch (or run through
    // core/background.ts): `void` is not enough. On a timer or an event path a rejection
    // nobody observes ends the process, and Redis restarting is all it takes (issue 14).
    files: ['src/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: false, allowForKnownSafeCalls: NODE_TEST }],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/**/*.spec.ts'],
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js'] })] },
    rules: {
      'import-x/no-restricted-paths': ['error', { zones: [...layerZones, ...seamZones] }],
      // Cycles of values; import-x skips `import type`, so scripts/check-cycles.mjs (also run by
      // `npm run lint`) refuses cycles that type imports make.
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
    },
  },
  {
    // The dashboard and the client library run in browsers as they are (no build step).
    files: ['src/gateway/public/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { window: 'readonly', document: 'readonly', location: 'readonly', localStorage: 'readonly', history: 'readonly', globalThis: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly', URLSearchParams: 'readonly', crypto: 'readonly' },
    },
  },
  {
    files: ['bin/**/*.js', 'scripts/**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: { process: 'readonly', console: 'readonly' } },
  },
);
