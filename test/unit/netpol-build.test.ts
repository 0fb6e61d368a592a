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
