import type { V1OwnerReference, V1Pod } from '@kubernetes/client-node';
import { workloadOf } from '../../../../src/controller/kube/workload-of.js';

const pod = (name: string, owner?: Partial<V1OwnerReference>, labels?: Record<string, string>): V1Pod => ({
  metadata: {
    name,
    labels,
    ownerReferences: owner
      ? [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'x', uid: 'u', controller: true, ...owner }]
      : undefined,
  },
});

describe('workloadOf', () => {
  it("names a Deployment's Pods after the Deployment, across its ReplicaSets (rollouts)", () => {
    const hash = { 'pod-template-hash': '6f6468974f' };
    expect(workloadOf(pod('web-6f6468974f-abcde', { name: 'web-6f6468974f' }, hash))).toBe('Deployment/web');
    const next = { 'pod-template-hash': '7fbd7f5b96' };
    expect(workloadOf(pod('web-7fbd7f5b96-xyz12', { name: 'web-7fbd7f5b96' }, next))).toBe('Deployment/web');
    expect(workloadOf(pod('a-b-c-1234-x', { name: 'a-b-c-1234' }, { 'pod-template-hash': '1234' }))).toBe(
      'Deployment/a-b-c',
    );
  });

  it('names a ReplicaSet of its own, a StatefulSet, another controller and a bare Pod as they are', () => {
    expect(workloadOf(pod('rs-abc', { name: 'rs' }))).toBe('ReplicaSet/rs');
    expect(workloadOf(pod('rs-abc', { name: 'rs' }, { 'pod-template-hash': 'zzz' }))).toBe('ReplicaSet/rs');
    expect(workloadOf(pod('db-0', { kind: 'StatefulSet', name: 'db' }))).toBe('StatefulSet/db');
    expect(workloadOf(pod('job-x', { kind: 'Job', name: 'job' }))).toBe('Job/job');
    expect(workloadOf(pod('solo'))).toBe('Pod/solo');
    // An owner that is not the controller does not make the workload.
    expect(workloadOf(pod('solo', { kind: 'StatefulSet', name: 'db', controller: false }))).toBe('Pod/solo');
  });

  it('gives none for an owner no copy could carry', () => {
    expect(workloadOf(pod('p', { kind: 'Bad Kind', name: 'x' }))).toBeUndefined();
    expect(workloadOf(pod('p', { kind: 'Thing', name: 'UPPER' }))).toBeUndefined();
    expect(workloadOf(pod('p', { kind: 'Thing', name: 'x'.repeat(300) }))).toBeUndefined();
  });
});
