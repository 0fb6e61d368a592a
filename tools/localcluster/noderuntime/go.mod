// The node runtime of the local cluster's real nodes: containerd v2 (with ctr and the runc shim) from the Go
// module proxy, plus two small programs of our own: the pause image's binary and the runc wrapper that gives
// the `localcluster/exec` image the host's /usr and /etc. KUBE_VERSION's sibling CONTAINERD_VERSION in
// ../src/paths.ts must match the require below.
module github.com/hitachienergy/pull-state-operator/tools/localcluster/noderuntime

go 1.26.6

require github.com/containerd/containerd/v2 v2.4.2
