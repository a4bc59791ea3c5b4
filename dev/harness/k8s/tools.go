//go:build tools

// Package tools pins the commands that dev/harness/kubernetes.py builds, so that go mod tidy keeps
// their dependencies. The build tag keeps this file out of every build.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
