// Lint rules: typescript-eslint's type-aware set, because floating promises and
// misused async callbacks are the bugs an event bus is most prone to.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
    // The dashboard and the client library run in browsers as they are (no build step).
    files: ['src/gateway/public/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { window: 'readonly', document: 'readonly', location: 'readonly', localStorage: 'readonly', history: 'readonly', globalThis: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly', URLSearchParams: 'readonly' },
    },
  },
  {
    files: ['bin/**/*.js', 'scripts/**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: { process: 'readonly', console: 'readonly' } },
  },
);
