// The Argo CD processes the local cluster runs: the application controller and the repo server (and the
// git askpass helper the repo server calls). Upstream's cmd/main.go links every Argo CD command; this
// one builds in less time. The binary dispatches on its name, as upstream's does.
package main

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	appcontroller "github.com/argoproj/argo-cd/v3/cmd/argocd-application-controller/commands"
	gitaskpass "github.com/argoproj/argo-cd/v3/cmd/argocd-git-ask-pass/commands"
	reposerver "github.com/argoproj/argo-cd/v3/cmd/argocd-repo-server/commands"
	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/util/log"
)

func init() { klog.SetLogger(log.NewLogrusLogger(log.NewWithCurrentConfig())) }

func main() {
	// NOT calling grpc.DisableSRVLookups(): it panics unless grpclb is linked (only the full binary links it);
	// without grpclb, SRV lookups are already off.
	name := filepath.Base(os.Args[0])
	if v := os.Getenv("ARGOCD_BINARY_NAME"); v != "" {
		name = v
	}
	var cmd *cobra.Command
	switch name {
	case common.CommandApplicationController:
		cmd = appcontroller.NewCommand()
	case common.CommandRepoServer:
		cmd = reposerver.NewCommand()
	case common.CommandGitAskPass:
		cmd = gitaskpass.NewCommand()
	default:
		os.Stderr.WriteString("unknown binary name " + name + "\n")
		os.Exit(2)
	}
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
