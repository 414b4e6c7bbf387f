// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

// Workflow code runs in Temporal's deterministic sandbox: no Node built-ins, no side-effecting SDK
// packages, no zod (it bloats every cached workflow), nothing from the activity or API layers.
export const workflowRestrictedImports = {
  paths: [
    ...builtinModules.filter((m) => !['assert', 'url', 'util'].includes(m)),
    ...builtinModules.map((m) => `node:${m}`),
    '@temporalio/activity',
    '@temporalio/client',
    '@temporalio/worker',
    '@temporalio/testing',
    'express',
    'zod',
  ],
  // Types may cross the boundary (workflows proxy activities by their types); values may not.
  patterns: [
    {
      group: ['**/activities', '**/activities/*', '**/api', '**/api/*', '**/ccfs', '**/ccfs/*', '**/lib', '**/lib/*', '**/simulator', '**/simulator/*', '**/worker', '**/worker/*'],
      allowTypeImports: true,
    },
  ],
};

export default tseslint.config(
  { ignores: ['.tmp/**', 'node_modules/**', '.venv/**', 'data/**', 'dist/**', 'bench/results/**', 'coverage/**', 'test/fixtures/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: { allowDefaultProject: ['*.mjs', 'bin/*.mjs', 'scripts/*.mjs'] }, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/only-throw-error': 'error',
    },
  },
  { files: ['**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  { files: ['**/*.mjs'], languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } } },
  {
    files: ['workflows/**/*.ts', 'domain/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', workflowRestrictedImports] },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off', '@typescript-eslint/unbound-method': 'off' },
  },
);
