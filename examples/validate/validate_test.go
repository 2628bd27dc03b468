package validate

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/vigild/vigil/internal/config"
)

// promtoolBin is promtool, built once by TestMain from the Prometheus
// module this module requires.
var promtoolBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-validate-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	promtoolBin = filepath.Join(dir, "promtool")
	build := exec.Command("go", "build", "-o", promtoolBin, "github.com/prometheus/prometheus/cmd/promtool")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	code := 1
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building promtool:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// promtool runs promtool in examples/prometheus.
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtoolBin, args...)
	cmd.Dir = filepath.Join("..", "prometheus")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestPrometheusConfigAndRules: promtool's checks of the scrape
// configuration (with its rule files) and of the rules, and the rules'
// unit tests.
func TestPrometheusConfigAndRules(t *testing.T) {
	if out := promtool(t, "check", "config", "prometheus.yml"); !strings.Contains(out, "SUCCESS: prometheus.yml is valid") ||
		!strings.Contains(out, "SUCCESS: 1 rule files found") {
		t.Errorf("promtool check config:\n%s", out)
	}
	if out := promtool(t, "check", "rules", "rules.yml"); !strings.Contains(out, "SUCCESS: 6 rules found") {
		t.Errorf("promtool check rules:\n%s", out)
	}
	if out := promtool(t, "test", "rules", "rules_test.yml"); !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules:\n%s", out)
	}
}

// decodeStrict decodes a manifest into v, failing on a field v's type
// does not have.
func decodeStrict(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "kubernetes", file))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// metricsPort checks a pod spec's scrape annotations against its
// container's port named metrics, and returns that port.
func metricsPort(t *testing.T, file string, annotations map[string]string, spec corev1.PodSpec) int32 {
	t.Helper()
	if annotations["prometheus.io/scrape"] != "true" || annotations["prometheus.io/path"] != "/metrics" {
		t.Errorf("%s: scrape annotations %v", file, annotations)
	}
	var port int32
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Name == "metrics" {
				port = p.ContainerPort
			}
		}
	}
	if port == 0 || annotations["prometheus.io/port"] != strconv.Itoa(int(port)) {
		t.Errorf("%s: prometheus.io/port %q, the container's metrics port %d", file, annotations["prometheus.io/port"], port)
	}
	return port
}

// TestKubernetesManifests: the pod, the DaemonSet, the PodMonitor and the
// ConfigMap decode strictly into their types; the scrape annotations name
// the metrics port; the PodMonitor selects the pods by their labels and
// that port; vigil.toml of the ConfigMap is valid and listens there.
func TestKubernetesManifests(t *testing.T) {
	var pod corev1.Pod
	decodeStrict(t, "pod.yaml", &pod)
	var ds appsv1.DaemonSet
	decodeStrict(t, "daemonset.yaml", &ds)
	var pm monitoringv1.PodMonitor
	decodeStrict(t, "podmonitor.yaml", &pm)
	var cm corev1.ConfigMap
	decodeStrict(t, "configmap.yaml", &cm)

	if pod.Kind != "Pod" || ds.Kind != "DaemonSet" || pm.Kind != "PodMonitor" || cm.Kind != "ConfigMap" {
		t.Fatalf("kinds: %s %s %s %s", pod.Kind, ds.Kind, pm.Kind, cm.Kind)
	}
	port := metricsPort(t, "pod.yaml", pod.Annotations, pod.Spec)
	if p := metricsPort(t, "daemonset.yaml", ds.Spec.Template.Annotations, ds.Spec.Template.Spec); p != port {
		t.Errorf("the DaemonSet's metrics port %d, the pod's %d", p, port)
	}
	sel, err := labels.ValidatedSelectorFromSet(pm.Spec.Selector.MatchLabels)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(pod.Labels)) || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("the PodMonitor's selector %v selects neither the pod %v nor the DaemonSet's pods %v", sel, pod.Labels, ds.Spec.Template.Labels)
	}
	dsSel, err := labels.ValidatedSelectorFromSet(ds.Spec.Selector.MatchLabels)
	if err != nil || !dsSel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("the DaemonSet's selector does not select its template: %v", err)
	}
	if len(pm.Spec.PodMetricsEndpoints) != 1 || pm.Spec.PodMetricsEndpoints[0].Port == nil || *pm.Spec.PodMetricsEndpoints[0].Port != "metrics" {
		t.Errorf("the PodMonitor's endpoints: %+v", pm.Spec.PodMetricsEndpoints)
	}
	for _, v := range append(pod.Spec.Volumes, ds.Spec.Template.Spec.Volumes...) {
		if v.ConfigMap != nil && v.ConfigMap.Name != cm.Name {
			t.Errorf("a volume mounts the ConfigMap %q, not %q", v.ConfigMap.Name, cm.Name)
		}
	}

	toml, ok := cm.Data["vigil.toml"]
	if !ok {
		t.Fatal("the ConfigMap has no vigil.toml")
	}
	c, err := config.Parse([]byte(toml), "/etc/vigil", func(string) string { return "" })
	if err != nil {
		t.Fatalf("the ConfigMap's vigil.toml: %v", err)
	}
	if c.Metrics.Listen != fmt.Sprintf(":%d", port) {
		t.Errorf("[metrics] listen %q, the pods' metrics port %d", c.Metrics.Listen, port)
	}
	for _, e := range pod.Spec.Containers[0].Env {
		if e.Name == "VIGIL_SUPERVISOR_SOCKET" && e.Value != c.Supervisor.Socket {
			t.Errorf("VIGIL_SUPERVISOR_SOCKET %q, the supervisor's socket %q", e.Value, c.Supervisor.Socket)
		}
	}
}
