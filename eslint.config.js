import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'petri-data/', 'test-artifacts/', 'bench/out/', '.cache/', '.*.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The evolution core is pure: no ambient randomness or clock.
    files: ['shared/evolution/**/*.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'Use the seeded Rng from shared/evolution/rng.ts.' },
        { object: 'Date', property: 'now', message: 'The evolution core has no clock.' },
      ],
      'no-restricted-globals': ['error', 'performance', 'setTimeout', 'setInterval'],
    },
  },
  {
    files: ['bin/**/*.mjs', 'scripts/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
