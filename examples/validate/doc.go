// Package validate checks the example files for Prometheus and
// Kubernetes (examples/prometheus, examples/kubernetes) with the tools
// that ship as Go modules: promtool (github.com/prometheus/prometheus)
// checks the scrape configuration and the alert rules and runs the rules'
// unit tests, and the Kubernetes manifests are decoded strictly into the
// types of k8s.io/api and of the Prometheus Operator. It is a module of
// its own so that vigil's go.mod does not carry Prometheus' and
// Kubernetes' dependencies; vigil's examples_test.go runs its tests.
package validate
