import tseslint from 'typescript-eslint';

/** Import rules that keep the layers apart: each entry is the import paths a group of files may not use. */
const noTest = {
  group: ['**/test/*', '**/test/**'],
  message: 'only tests import from test/; shared code lives in harness/',
};
const layering = (...patterns) => ({
  'no-restricted-imports': ['error', { patterns: [noTest, ...patterns] }],
});

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.local/', 'coverage/', 'src/api/generated/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
      eqeqeq: ['error', 'always'],
      'prefer-const': 'error',
    },
  },
  { files: ['**/*.ts', '**/*.js', '**/*.mjs'], ignores: ['test/**'], rules: layering() },
  {
    files: ['src/controller/**/*.ts'],
    rules: layering({
      group: ['**/helper/*', '**/helper/**'],
      message: 'the controller reaches helpers over HTTP; their wire contract is in src/api/helper-api.ts',
    }),
  },
  {
    files: ['src/helper/**/*.ts'],
    rules: layering({
      group: ['**/controller/*', '**/controller/**'],
      message: 'the helper does not use controller code; shared types are in src/api/',
    }),
  },
);
