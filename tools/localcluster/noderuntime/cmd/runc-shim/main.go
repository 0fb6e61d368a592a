// runc-shim is the OCI runtime binary containerd calls on the local cluster's nodes. It passes every call to
// the real runc unchanged, except `create` of a container from the `localcluster/exec` image: that one gets
// the host's /usr and /etc bind-mounted read-only, so any program installed on the machine (node, python3, a
// Go binary) runs as a Pod without an image of its own. Mounts the kubelet adds (ServiceAccount token,
// /etc/hosts, volumes) come after ours in the spec, so they stay on top.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

const (
	imageAnnotation = "io.kubernetes.cri.image-name"
	execImage       = "localcluster/exec"
)

func main() {
	real := os.Getenv("LOCALCLUSTER_RUNC")
	if real == "" {
		real = "/usr/sbin/runc"
	}
	if bundle := createBundle(os.Args[1:]); bundle != "" {
		if err := addHostMounts(filepath.Join(bundle, "config.json")); err != nil {
			fmt.Fprintf(os.Stderr, "runc-shim: %v\n", err)
			os.Exit(1)
		}
	}
	argv := append([]string{real}, os.Args[1:]...)
	if err := syscall.Exec(real, argv, os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "runc-shim: exec %s: %v\n", real, err)
		os.Exit(127)
	}
}

// createBundle returns the bundle directory of a `create` call, or "" for any other call.
func createBundle(args []string) string {
	create := false
	bundle := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "create":
			create = true
		case (a == "--bundle" || a == "-b") && i+1 < len(args):
			bundle = args[i+1]
			i++
		case strings.HasPrefix(a, "--bundle="):
			bundle = strings.TrimPrefix(a, "--bundle=")
		}
	}
	if !create {
		return ""
	}
	if bundle == "" {
		bundle, _ = os.Getwd()
	}
	return bundle
}

func isExecImage(ref string) bool {
	name := ref
	if at := strings.Index(name, "@"); at >= 0 {
		name = name[:at]
	}
	if colon := strings.LastIndex(name, ":"); colon > strings.LastIndex(name, "/") {
		name = name[:colon]
	}
	return name == execImage || strings.HasSuffix(name, "/"+execImage)
}

func addHostMounts(configPath string) error {
	raw, err := os.ReadFile(configPath)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	annotations, _ := spec["annotations"].(map[string]any)
	image, _ := annotations[imageAnnotation].(string)
	if !isExecImage(image) {
		return nil
	}
	var host []any
	for _, dir := range []string{"/usr", "/etc"} {
		host = append(host, map[string]any{
			"destination": dir, "type": "bind", "source": dir,
			"options": []string{"rbind", "ro", "nosuid", "nodev"},
		})
	}
	mounts, _ := spec["mounts"].([]any)
	spec["mounts"] = append(host, mounts...)
	out, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return os.WriteFile(configPath, out, 0o600)
}
