// Copied into a patched copy of upstream's package sigs.k8s.io/kube-network-policies/pkg/networkpolicy at
// build time (see ../../src/netpol-build.ts), together with an edit of controller.go that calls it instead
// of building an nftables `queue` expression. Some kernels (this project's development VMs among
// them) are built without CONFIG_NFT_QUEUE, so nftables rejects upstream's rules with ENOENT and nothing is
// enforced; the xtables NFQUEUE target, which nftables runs through nft_compat as iptables-nft does, sends
// the same packets to the same nfnetlink queue.
package networkpolicy

import (
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// nfqueueTarget is `queue num <num> [bypass]` as xt_NFQUEUE revision 3 (struct xt_NFQ_info_v3).
func nfqueueTarget(num uint16, bypass bool) *expr.Target {
	var flags uint16
	if bypass {
		flags = 0x01 // NFQ_FLAG_BYPASS
	}
	info := append(binaryutil.NativeEndian.PutUint16(num), binaryutil.NativeEndian.PutUint16(1)...) // queues_total
	info = append(info, binaryutil.NativeEndian.PutUint16(flags)...)
	u := xt.Unknown(info)
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &u}
}
