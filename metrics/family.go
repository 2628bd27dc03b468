package metrics

import (
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// A scrape of 1,000 workers makes some 15,000 samples: the families are
// built as client_model's structures directly (no Collector, no Desc, no
// per-sample checks), their samples allocated a family at a time, and a
// worker's label pairs shared by all its samples. Label pairs are sorted
// by name.

// Label names, shared by every label pair that uses them.
var (
	lService   = "service"
	lWorker    = "worker"
	lReason    = "reason"
	lCode      = "code"
	lSignal    = "signal"
	lOperation = "operation"
	lOutcome   = "outcome"
	lTarget    = "target"
	lSource    = "source"
	lVersion   = "version"
	lGoVersion = "goversion"
)

// label returns a label pair; name must be one of the shared names above.
func label(name *string, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: name, Value: &value}
}

// labels returns pairs sorted by name.
func labels(pairs ...*dto.LabelPair) []*dto.LabelPair {
	slices.SortFunc(pairs, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	return pairs
}

// family is a metric family being built: its samples are allocated n at a
// time.
type family struct {
	mf      *dto.MetricFamily
	metrics []dto.Metric
	values  []float64
	gauges  []dto.Gauge
	counts  []dto.Counter
}

// builder builds the families of one scrape.
type builder struct {
	families []*dto.MetricFamily
}

// family starts a family of a type (gauge or counter: see histogram) with
// room for n samples.
func (b *builder) family(name, help string, t dto.MetricType, n int) *family {
	f := &family{mf: &dto.MetricFamily{Name: &name, Help: &help, Type: t.Enum(), Metric: make([]*dto.Metric, 0, n)}}
	b.families = append(b.families, f.mf)
	return f
}

func (b *builder) gauge(name, help string, n int) *family {
	return b.family(name, help, dto.MetricType_GAUGE, n)
}

func (b *builder) counter(name, help string, n int) *family {
	return b.family(name, help, dto.MetricType_COUNTER, n)
}

// add adds a sample.
func (f *family) add(labels []*dto.LabelPair, v float64) {
	if len(f.metrics) == cap(f.metrics) {
		n := max(cap(f.mf.Metric)-len(f.mf.Metric), 8)
		f.metrics = make([]dto.Metric, 0, n)
		f.values = make([]float64, 0, n)
		if f.mf.GetType() == dto.MetricType_COUNTER {
			f.counts = make([]dto.Counter, 0, n)
		} else {
			f.gauges = make([]dto.Gauge, 0, n)
		}
	}
	f.metrics = f.metrics[:len(f.metrics)+1]
	m := &f.metrics[len(f.metrics)-1]
	f.values = append(f.values, v)
	value := &f.values[len(f.values)-1]
	m.Label = labels
	if f.mf.GetType() == dto.MetricType_COUNTER {
		f.counts = f.counts[:len(f.counts)+1]
		c := &f.counts[len(f.counts)-1]
		c.Value = value
		m.Counter = c
	} else {
		f.gauges = f.gauges[:len(f.gauges)+1]
		g := &f.gauges[len(f.gauges)-1]
		g.Value = value
		m.Gauge = g
	}
	f.mf.Metric = append(f.mf.Metric, m)
}

// histogram adds a histogram family with one sample per entry.
func (b *builder) histogram(name, help string) *dto.MetricFamily {
	mf := &dto.MetricFamily{Name: &name, Help: &help, Type: dto.MetricType_HISTOGRAM.Enum()}
	b.families = append(b.families, mf)
	return mf
}

// addHistogram adds a sample of cumulative counts at bounds.
func addHistogram(mf *dto.MetricFamily, labels []*dto.LabelPair, bounds []float64, counts []uint64, count uint64, sum float64) {
	h := &dto.Histogram{SampleCount: &count, SampleSum: &sum, Bucket: make([]*dto.Bucket, len(bounds))}
	buckets := make([]dto.Bucket, len(bounds))
	for i := range bounds {
		buckets[i].UpperBound = &bounds[i]
		buckets[i].CumulativeCount = &counts[i]
		h.Bucket[i] = &buckets[i]
	}
	mf.Metric = append(mf.Metric, &dto.Metric{Label: labels, Histogram: h})
}

// bool01 is 1 for true.
func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
