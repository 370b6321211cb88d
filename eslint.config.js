// ESLint for the whole tree (npm run lint, in npm test): typescript-eslint's
// type-aware recommended rules, plus the size limits the code keeps (no
// function over 80 lines, none with more than 4 parameters: pass a context
// object instead). Formatting is Prettier's (.prettierrc.json), not ESLint's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.build-test-*/**', '.bench-out/**', 'deploy/**', '*.config.js', '.dependency-cruiser.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }],
      'max-params': ['error', 4],
      // node:test's test(), it(), describe() and hooks return promises the runner awaits itself.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] },
          ],
        },
      ],
      // Interfaces return promises; an implementation that has nothing to wait for is still async (its errors become rejections).
      '@typescript-eslint/require-await': 'off',
      // Objects here are records of closures, never methods that use `this`: passing one on is safe.
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // A test file is a list of cases: a describe() body is as long as its cases.
    files: ['**/*.test.ts'],
    rules: { 'max-lines-per-function': 'off' },
  },
);
