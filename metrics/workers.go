package metrics

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vigild/vigil/supervisor"
	"github.com/vigild/vigil/worker/workermetrics"
)

// offered is a worker that offers its metrics, by the service and instance
// it registered.
type offered struct {
	conn     *supervisor.Connection
	service  string
	instance int // -1: none registered
	families []*dto.MetricFamily
	ok       bool
}

// name is the worker's label: SERVICE.INSTANCE, or SERVICE alone.
func (o *offered) name() string {
	if o.instance < 0 {
		return o.service
	}
	return o.service + "." + strconv.Itoa(o.instance)
}

// workerMetrics asks every worker that offers its metrics for them, at
// most DefaultWorkerConcurrency at once, until ctx ends. It returns their
// families, each sample labelled by service and worker (the worker's own
// labels of those names renamed exported_service and exported_worker),
// merged by name, and vigil_worker_metrics_up. Families named vigil_* are
// vigil's: a worker's are left out.
func (c *Collector) workerMetrics(ctx context.Context) ([]*dto.MetricFamily, *dto.MetricFamily) {
	// When two registrations name the same instance (the old process and
	// its replacement, during a restart), the latest is asked.
	var list []*offered
	index := map[string]int{}
	for _, conn := range c.opts.Server.Connections() {
		st := conn.State()
		if st[workermetrics.StateKey] != workermetrics.StateValue || !conn.Verified() || conn.Role() == "controller" {
			continue
		}
		o := &offered{conn: conn, service: conn.Service(), instance: conn.Instance()}
		k := o.name()
		if i, ok := index[k]; ok {
			list[i] = o
			continue
		}
		index[k] = len(list)
		list = append(list, o)
	}

	var wg sync.WaitGroup
	sem := make(chan struct{}, DefaultWorkerConcurrency)
	for _, o := range list {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.askWorker(ctx, o)
		})
	}
	wg.Wait()

	var b builder
	up := b.gauge("vigil_worker_metrics_up", "Whether the worker answered this scrape with its own metrics (workers that offer them, when [metrics] workers = true).", len(list))
	byName := map[string]*dto.MetricFamily{}
	var out []*dto.MetricFamily
	slices.SortFunc(list, func(a, b *offered) int {
		if c := strings.Compare(a.service, b.service); c != 0 {
			return c
		}
		return a.instance - b.instance
	})
	for _, o := range list {
		svc, name := o.service, o.name()
		own := []*dto.LabelPair{{Name: &lService, Value: &svc}, {Name: &lWorker, Value: &name}}
		up.add(own, bool01(o.ok))
		for _, mf := range o.families {
			if strings.HasPrefix(mf.GetName(), "vigil_") {
				continue
			}
			for _, m := range mf.Metric {
				m.Label = relabel(m.Label, own)
			}
			prev := byName[mf.GetName()]
			switch {
			case prev == nil:
				byName[mf.GetName()] = mf
				out = append(out, mf)
			case prev.GetType() == mf.GetType():
				prev.Metric = append(prev.Metric, mf.Metric...)
			default:
				c.logger.Warn("metrics: a worker's family has the type of another worker's of the same name otherwise: left out",
					"family", mf.GetName(), "worker", name, "type", mf.GetType().String(), "other_type", prev.GetType().String())
			}
		}
	}
	return out, up.mf
}

// askWorker asks one worker for its metrics and parses them.
func (c *Collector) askWorker(ctx context.Context, o *offered) {
	reply, err := o.conn.Call(ctx, workermetrics.Operation, nil, nil)
	if err != nil {
		c.logger.Warn("metrics: no metrics from a worker", "worker", o.name(),
			"process_id", o.conn.ProcessID(), "error", err)
		return
	}
	data, ok := reply.GetString("data")
	if !ok {
		c.logger.Warn("metrics: a worker's metrics reply has no \"data\"", "worker", o.name())
		return
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(data))
	if err != nil {
		c.logger.Warn("metrics: a worker's metrics do not parse", "worker", o.name(), "error", err)
		return
	}
	names := make([]string, 0, len(families))
	for name := range families {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		o.families = append(o.families, families[name])
	}
	o.ok = true
}

// relabel returns a sample's labels with own's (service, worker) added,
// a label of the worker's with either name renamed exported_NAME, sorted.
// (Their "instance" is left as it is: Prometheus renames it
// exported_instance, as it does any label that clashes with its own.)
func relabel(theirs, own []*dto.LabelPair) []*dto.LabelPair {
	out := make([]*dto.LabelPair, 0, len(theirs)+len(own))
	for _, lp := range theirs {
		if n := lp.GetName(); n == lService || n == lWorker {
			renamed := "exported_" + n
			lp = &dto.LabelPair{Name: &renamed, Value: lp.Value}
		}
		out = append(out, lp)
	}
	return labels(append(out, own...)...)
}
