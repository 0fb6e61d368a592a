// etcd at the version the pinned Kubernetes release was tested with; Debian's 3.4 lacks watch progress.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
