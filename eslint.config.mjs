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
      group: [
        '**/activities',
        '**/activities/*',
        '**/api',
        '**/api/*',
        '**/ccfs',
        '**/ccfs/*',
        '**/lib',
        '**/lib/*',
        '**/simulator',
        '**/simulator/*',
        '**/worker',
        '**/worker/*',
      ],
      allowTypeImports: true,
    },
  ],
};

// Outside workflows/, a workflow file's values stay out of reach: importing one loads workflow code
// (and what it imports) into the API, the CLI or the worker's activities, and invites helpers that
// belong to domain/ or workflows/definitions.ts. Types may be imported, so a client still checks a
// start with `client.workflow.start<typeof exportWorkflow>(WorkflowType.export, …)`.
export const workflowFileImport = {
  // The bundle's index and every `*-workflow` file; definitions.ts and search-attributes.ts are shared on purpose.
  regex: '(^|/)workflows(/index)?(\\.[cm]?[jt]s)?$|(^|/)workflows/[^/]+-workflow(\\.[cm]?[jt]s)?$',
  allowTypeImports: true,
  message:
    'import workflow functions as types only (import type); shared IDs, types and workflow names are in workflows/definitions.ts, pure helpers in domain/',
};
export const clientRestrictedImports = { patterns: [workflowFileImport] };

export default tseslint.config(
  {
    ignores: [
      '.tmp/**',
      'node_modules/**',
      '.venv/**',
      'data/**',
      'dist/**',
      'bench/results/**',
      'coverage/**',
      'test/fixtures/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['*.mjs', 'bin/*.mjs', 'scripts/*.mjs'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/only-throw-error': 'error',
    },
  },
  { files: ['**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', workflowRestrictedImports] },
  },
  {
    files: ['domain/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          ...workflowRestrictedImports,
          patterns: [...workflowRestrictedImports.patterns, workflowFileImport],
        },
      ],
    },
  },
  {
    files: ['**/*.ts', '**/*.mjs'],
    ignores: ['workflows/**', 'domain/**'],
    rules: { 'no-restricted-imports': ['error', clientRestrictedImports] },
  },
  {
    // callbackMatches and candidateFileNames are pure helpers still inside chunk-workflow.ts; this test
    // may import them until they move to domain/ (issue 15, with the chunk workflow's next change).
    files: ['test/unit/probe-names.test.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off', '@typescript-eslint/unbound-method': 'off' },
  },
);
