// Pure translation of a Pod's container spec into what the local kubelet executes.
import type { V1Container, V1EnvVar, V1Pod } from '@kubernetes/client-node';

/** Runs the container's `command` and `args` verbatim: any program can be a Pod in a test. */
export const EXEC_IMAGE = 'localcluster/exec';

export interface ImageEntry {
  command: string[];
}
export type ImageMap = Record<string, ImageEntry>;

/** `registry/name:tag` or `name@sha256:...` without tag or digest. */
export function imageName(image: string): string {
  const at = image.indexOf('@');
  const withoutDigest = at >= 0 ? image.slice(0, at) : image;
  const colon = withoutDigest.lastIndexOf(':');
  return colon > withoutDigest.lastIndexOf('/') ? withoutDigest.slice(0, colon) : withoutDigest;
}

export type Resolved = { ok: true; argv: string[] } | { ok: false; reason: string; message: string };

/** Expands $(VAR) references in command and args as the kubelet does; $$(VAR) escapes. */
export function expand(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) =>
    m === '$$' ? '$' : name !== undefined && name in env ? env[name]! : m,
  );
}

/** Docker semantics: `command` replaces the image entry point, `args` replaces its default arguments. */
export function resolveCommand(
  container: V1Container,
  images: ImageMap,
  env: Record<string, string>,
): Resolved {
  const name = imageName(container.image ?? '');
  let argv: string[];
  if (name === EXEC_IMAGE) {
    if (!container.command?.length) {
      return { ok: false, reason: 'CreateContainerConfigError', message: `${EXEC_IMAGE} needs a command` };
    }
    argv = [...container.command, ...(container.args ?? [])];
  } else {
    const entry = images[name];
    if (!entry) {
      const known = [EXEC_IMAGE, ...Object.keys(images)].join(', ');
      return {
        ok: false,
        reason: 'ErrImagePull',
        message: `image ${container.image} is not known to the local cluster; known images: ${known}`,
      };
    }
    argv = container.command?.length ? [...container.command] : [...entry.command];
    argv.push(...(container.args ?? []));
  }
  return { ok: true, argv: argv.map((a) => expand(a, env)) };
}

export interface PodFacts {
  podIP: string;
  hostIP: string;
  nodeName: string;
}

/** Resolves env entries: literal values and the downward-API fieldRefs a simulated node can answer. */
export function resolveEnv(
  container: V1Container,
  pod: V1Pod,
  facts: PodFacts,
): { ok: true; env: Record<string, string> } | { ok: false; message: string } {
  const env: Record<string, string> = {};
  const fields: Record<string, string | undefined> = {
    'metadata.name': pod.metadata?.name,
    'metadata.namespace': pod.metadata?.namespace,
    'metadata.uid': pod.metadata?.uid,
    'spec.nodeName': facts.nodeName,
    'spec.serviceAccountName': pod.spec?.serviceAccountName,
    'status.podIP': facts.podIP,
    'status.hostIP': facts.hostIP,
  };
  for (const v of container.env ?? ([] as V1EnvVar[])) {
    if (v.value !== undefined) env[v.name] = expand(v.value, env);
    else if (v.valueFrom?.fieldRef) {
      const path = v.valueFrom.fieldRef.fieldPath;
      const value = fields[path];
      if (value === undefined) {
        return {
          ok: false,
          message: `env ${v.name}: fieldRef ${path} is not supported; supported: ${Object.keys(fields).join(', ')}`,
        };
      }
      env[v.name] = value;
    } else if (v.valueFrom) {
      return {
        ok: false,
        message: `env ${v.name}: only value and fieldRef are supported by the local cluster`,
      };
    } else env[v.name] = '';
  }
  return { ok: true, env };
}

/** Exponential restart back-off: 1 s doubling to 60 s (shorter than kubelet's 10 s..300 s, for tests). */
export function restartDelayMs(restarts: number): number {
  return Math.min(60_000, 1000 * 2 ** Math.max(0, restarts - 1));
}

export function shouldRestart(policy: string | undefined, exitCode: number): boolean {
  if (policy === 'Never') return false;
  if (policy === 'OnFailure') return exitCode !== 0;
  return true;
}
