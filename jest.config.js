// Jest runs in native ESM mode (NODE_OPTIONS=--experimental-vm-modules, set by the npm scripts) because
// @kubernetes/client-node 1.x ships ESM only; ts-jest transpiles our TypeScript to ESM without type-checking
// (tsc does that in `npm run lint`), and the mapper strips the `.js` suffix NodeNext imports carry.
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }] },
  testEnvironment: 'node',
  // The local cluster's image staging holds a copy of package.json and node_modules.
  modulePathIgnorePatterns: ['<rootDir>/.local/', '<rootDir>/dist/'],
};

// SKIP_ARGOCD=1 leaves Argo CD and the GitOps test out of a local run, never in CI (global-setup.ts agrees).
const skipArgoCd = process.env.SKIP_ARGOCD === '1' && process.env.CI !== 'true';

export default {
  // Integration tests wait for real controllers and processes; unit tests finish far below this.
  testTimeout: 180_000,
  testSequencer: '<rootDir>/test/integration/sequencer.js',
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      // The controller in-process against etcd and kube-apiserver only (no nodes): `npm run test:apiserver`.
      ...common,
      displayName: 'apiserver',
      testMatch: ['<rootDir>/test/apiserver/**/*.test.ts'],
      globalSetup: '<rootDir>/test/apiserver/global-setup.ts',
      globalTeardown: '<rootDir>/test/apiserver/global-teardown.ts',
      slowTestThreshold: 20,
    },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      testPathIgnorePatterns: skipArgoCd
        ? ['/node_modules/', '<rootDir>/test/integration/gitops.test.ts']
        : [],
      globalSetup: '<rootDir>/test/integration/global-setup.ts',
      globalTeardown: '<rootDir>/test/integration/global-teardown.ts',
      setupFilesAfterEnv: ['<rootDir>/test/integration/leave-clean.ts'],
      slowTestThreshold: 60,
    },
  ],
};
