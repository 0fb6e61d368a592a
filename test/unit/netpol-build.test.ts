import { readFileSync } from 'node:fs';
import { buildModFile, patchController } from '../../tools/localcluster/src/netpol-build.js';

// Upstream v0.8.0 builds its queue verdict this way, once for POSTROUTING and once for the DNS workaround.
const queueBlock = `	queue := &expr.Queue{Num: uint16(c.config.QueueID)}
	if c.config.FailOpen {
		queue.Flag = expr.QueueFlagBypass
	}
`;

describe('kube-network-policies build patch', () => {
  it('replaces both nftables queue expressions by the xtables NFQUEUE target', () => {
    const source = `func a() {\n${queueBlock}\tuse(queue)\n}\nfunc b() {\n${queueBlock}\tuse(queue)\n}\n`;
    const patched = patchController(source);
    expect(patched).not.toContain('expr.Queue');
    expect(
      patched.match(/queue := nfqueueTarget\(uint16\(c\.config\.QueueID\), c\.config\.FailOpen\)/g),
    ).toHaveLength(2);
    expect(patched).toContain('\tuse(queue)\n}\nfunc b()');
  });

  it('refuses an upstream whose code no longer matches, instead of building an unpatched binary', () => {
    expect(() => patchController(`func a() {\n${queueBlock}}\n`)).toThrow(/expected 2 .* found 1/);
    expect(() => patchController('package networkpolicy\n')).toThrow(/found 0/);
  });

  it('builds against the patched copy through a replace in an alternative go.mod', () => {
    const mod = buildModFile('module x\n\nrequire sigs.k8s.io/kube-network-policies v0.8.0\n', '/c/upstream');
    expect(mod).toBe(
      'module x\n\nrequire sigs.k8s.io/kube-network-policies v0.8.0\n\nreplace sigs.k8s.io/kube-network-policies => /c/upstream\n',
    );
  });
});

/** `module => version` of a go.mod's require and replace directives (a replace wins). */
function versions(goMod: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = goMod.split('\n').map((l) => l.replace(/\/\/.*$/, '').trim());
  let block = '';
  for (const line of lines) {
    const open = /^(require|replace)\s*\($/.exec(line);
    if (open) {
      block = open[1]!;
      continue;
    }
    if (line === ')') {
      block = '';
      continue;
    }
    const single = /^(require|replace)\s+(.*)$/.exec(line);
    const kind = single ? single[1]! : block;
    const body = single ? single[2]! : line;
    if (kind === 'require') {
      const [mod, version] = body.split(/\s+/);
      if (mod && version && !(kind === 'require' && out.has(mod))) out.set(mod, version);
    } else if (kind === 'replace') {
      const m = /^(\S+)(?:\s+\S+)?\s*=>\s*(\S+)\s+(\S+)$/.exec(body);
      if (m) out.set(m[1]!, m[3]!);
    }
  }
  return out;
}

describe('kube-network-policies and the control plane share compiled packages', () => {
  it('pins every module the two have in common to the control plane version', () => {
    const root = new URL('../../tools/localcluster/', import.meta.url);
    const controlPlane = versions(readFileSync(new URL('controlplane/go.mod', root), 'utf8'));
    const netpol = versions(readFileSync(new URL('netpol/go.mod', root), 'utf8'));
    // nri v0.9 (kube-network-policies') does not build with runtime-spec v1.3 (the control plane's).
    const unpinned = new Set(['github.com/opencontainers/runtime-spec']);
    const differ = [...netpol]
      .filter(([mod, v]) => controlPlane.has(mod) && controlPlane.get(mod) !== v && !unpinned.has(mod))
      .map(([mod, v]) => `${mod}: ${v}, control plane ${controlPlane.get(mod)}`);
    expect(differ).toEqual([]);
    expect(netpol.get('k8s.io/client-go')).toBe(controlPlane.get('k8s.io/client-go'));
  });
});
