// Jest's order (failed first, then slowest first), except that the GitOps test runs last: it needs Argo CD,
// which `npm test` builds in the background while the other test files run (tools/test.sh).
import TestSequencer from '@jest/test-sequencer';

const DefaultSequencer = TestSequencer.default ?? TestSequencer;
const LAST = /[\\/]gitops\.test\.ts$/;

export default class GitOpsLast extends DefaultSequencer {
  async sort(tests) {
    const sorted = await super.sort(tests);
    return [...sorted.filter((t) => !LAST.test(t.path)), ...sorted.filter((t) => LAST.test(t.path))];
  }
}
