// After every integration test file: the namespaces it made (all are named it-*) are deleted, and the next
// file starts once they are gone. Each file then meets the cluster as a fresh install finds it: protected Pods
// left behind by earlier files would be checkpointed, probed and evacuated with every later fault, and made
// the last files (the chaos run above all) slower and less predictable than they are on a user's cluster.
import { core } from './cluster.js';

const PREFIX = 'it-';
const WAIT_MS = 120_000;

afterAll(async () => {
  const mine = async () =>
    (await core.listNamespace()).items.map((n) => n.metadata!.name!).filter((n) => n.startsWith(PREFIX));
  let left: string[];
  try {
    left = await mine();
  } catch {
    return; // the cluster is down (a test of the cluster tool itself took it down): nothing to clean
  }
  // Pods first, without their grace periods (nothing of theirs is looked at any more): a namespace is gone
  // once its Pods are, and the apps' grace periods would add up over the files.
  await Promise.all(
    left.map(async (namespace) => {
      await core.deleteCollectionNamespacedPod({ namespace, gracePeriodSeconds: 0 }).catch(() => undefined);
      await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    }),
  );
  const deadline = Date.now() + WAIT_MS;
  while ((left = await mine()).length > 0) {
    if (Date.now() > deadline)
      throw new Error(`namespaces still terminating ${WAIT_MS / 1000} s after the file: ${left.join(', ')}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}, WAIT_MS + 30_000);
