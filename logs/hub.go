package logs

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Hub is where every child's lines go: it makes a [Capture] for each
// child process, holds each instance's rings (its current process's and
// its previous one's), answers queries over them, serves followers, and
// owns the destinations (the console, the files, the journal), which it
// starts when a capture first needs them. Its methods are safe for
// concurrent use.
type Hub struct {
	logger    *slog.Logger
	now       func() time.Time
	maxLine   int
	queue     int
	readDelay time.Duration
	out       Options
	seq       atomic.Uint64 // numbers batches in order of arrival
	poll      poller        // reads the pipes
	noPoll    bool
	pipes     pipeShare // what the pipes may grow by

	mu        sync.Mutex
	settings  Settings
	services  map[string]Settings
	instances map[instanceKey]*instance
	console   *console
	journal   *journal
	files     *fileWriter
	closed    bool

	subs atomic.Pointer[[]*Subscription] // replaced whole under mu
}

type instanceKey struct {
	service  string
	instance int
}

// instance is one instance's captures: the process it runs now and the
// one before.
type instance struct {
	cur, prev *Capture
}

// New returns a Hub. It starts no goroutine until a capture needs a
// destination.
func New(opts Options) *Hub {
	h := &Hub{
		logger:    opts.Logger,
		now:       opts.now,
		maxLine:   opts.MaxLine,
		queue:     opts.SinkQueue,
		readDelay: opts.ReadDelay,
		noPoll:    opts.noPoll,
		out:       opts,
		instances: make(map[instanceKey]*instance),
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.maxLine <= 0 {
		h.maxLine = DefaultMaxLine
	}
	if h.queue <= 0 {
		h.queue = DefaultSinkQueue
	}
	if h.out.Console == nil {
		h.out.Console = os.Stdout
	}
	if h.out.JournalSocket == "" {
		h.out.JournalSocket = DefaultJournalSocket
	}
	h.Configure(opts.Settings, opts.Services)
	return h
}

// Configure replaces the settings: settings for every service not in
// services. A zero settings means DefaultSettings. The processes captured
// from then on follow them; those captured before keep theirs, except
// that a file's rotation limits are those of its latest capture.
func (h *Hub) Configure(settings Settings, services map[string]Settings) {
	if settings == (Settings{}) {
		settings = DefaultSettings()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.settings = settings.withDefaults()
	h.services = make(map[string]Settings, len(services))
	for name, s := range services {
		h.services[name] = s.withDefaults()
	}
}

// Settings returns the settings a service's processes get.
func (h *Hub) Settings(service string) Settings {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.settingsLocked(service)
}

func (h *Hub) settingsLocked(service string) Settings {
	if s, ok := h.services[service]; ok {
		return s
	}
	return h.settings
}

// Capture starts reading a child process's stdout and stderr, the read
// ends of its pipes (either may be nil: that stream is not captured). The
// files must be pollable (as os.Pipe makes them) so that
// [Capture.Close] can end a read in progress; the capture closes them.
//
// The new process becomes its instance's current one; the instance's
// current one, if any, becomes its previous one (whatever the pids: a pid
// may come back). A process whose instance has a newer one keeps writing
// to its own ring, which queries see as the previous process's.
func (h *Hub) Capture(id Identity, stdout, stderr *os.File) *Capture {
	return h.capture(id, [2]*os.File{stdout, stderr}, [2]int{-1, -1})
}

// CaptureFDs is Capture of the read ends as bare descriptors (-1: that
// stream is not captured), which the capture takes and closes: read by
// the hub's reader as they are (made non-blocking, if they are not), with
// no os.File made and undone for each.
func (h *Hub) CaptureFDs(id Identity, stdout, stderr int) *Capture {
	return h.capture(id, [2]*os.File{}, [2]int{stdout, stderr})
}

// capture is Capture of files or descriptors (one of each pair at most).
func (h *Hub) capture(id Identity, files [2]*os.File, fds [2]int) *Capture {
	c := &Capture{
		hub:    h,
		id:     id,
		prefix: []byte(id.Name() + " | "),
		files:  files,
		fds:    fds,
		done:   make(chan struct{}),
	}
	h.mu.Lock()
	set := h.settingsLocked(id.Service)
	c.json = set.Format == FormatJSON
	for i := range c.rings {
		c.rings[i].maxLines = set.RingLines
		// What each line of a stream shares, made only where it goes:
		// a capture's settings are those of its start.
		if c.json && set.Console {
			c.jsonMiddle[i] = jsonMiddle(id, Stream(i+1))
		}
		if set.Journal {
			c.journalFields[i] = journalFields(id, Stream(i+1))
		}
	}
	if !h.closed {
		if set.Console {
			if h.console == nil {
				h.console = newConsole(h.out.Console, h.queue, h.logger)
			}
			c.sinks[toConsole] = h.console
		}
		if set.Journal {
			if h.journal == nil {
				h.journal = newJournal(h.out.JournalSocket, h.queue, h.logger)
			}
			c.sinks[toJournal] = h.journal
		}
		if set.Dir != "" {
			if h.files == nil {
				h.files = newFileWriter(fileQueues * h.queue)
			}
			for i := range c.fileSinks {
				c.fileSinks[i] = h.files.sink(fileName(set.Dir, id, Stream(i+1)), set, h.logger)
			}
		}
	}
	key := instanceKey{id.Service, id.Instance}
	inst := h.instances[key]
	if inst == nil {
		inst = &instance{}
		h.instances[key] = inst
	}
	if inst.cur != nil {
		inst.prev = inst.cur
	}
	inst.cur = c
	h.mu.Unlock()
	c.start()
	return c
}

// Forget drops an instance's rings (scaled down): queries no longer see
// it. Its files stay open until Close, in case it comes back.
func (h *Hub) Forget(service string, instance int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.instances, instanceKey{service, instance})
}

// InstanceInfo describes one instance the hub holds lines of.
type InstanceInfo struct {
	// Service and Instance name the instance.
	Service  string
	Instance int
	// PID is its current process; PreviousPID the one before (0: none).
	PID, PreviousPID int
}

// Instances lists the instances the hub holds lines of, by service and
// instance.
func (h *Hub) Instances() []InstanceInfo {
	h.mu.Lock()
	list := make([]InstanceInfo, 0, len(h.instances))
	for k, inst := range h.instances {
		info := InstanceInfo{Service: k.service, Instance: k.instance, PID: inst.cur.id.PID}
		if inst.prev != nil {
			info.PreviousPID = inst.prev.id.PID
		}
		list = append(list, info)
	}
	h.mu.Unlock()
	slices.SortFunc(list, func(a, b InstanceInfo) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Instance, b.Instance))
	})
	return list
}

// Query selects lines.
type Query struct {
	// Service selects one service ("" every service).
	Service string
	// Instance selects one instance of the service (nil every instance).
	Instance *int
	// Stream selects stdout or stderr (0 both).
	Stream Stream
	// Since leaves out the lines read before it (zero: none).
	Since time.Time
	// After leaves out the lines numbered up to it (see Line.Seq): a
	// follow that ended resumes after the last line it got. With After,
	// the current process's lines come with the previous one's (unless
	// Previous), since a process just replaced may still be writing.
	After uint64
	// N keeps only the last N lines (0 every line kept).
	N int
	// Previous selects the lines of each instance's previous process
	// instead of its current one.
	Previous bool
}

func (q *Query) matches(id Identity) bool {
	return (q.Service == "" || q.Service == id.Service) && (q.Instance == nil || *q.Instance == id.Instance)
}

func (q *Query) streams() []Stream {
	if q.Stream != 0 {
		return []Stream{q.Stream}
	}
	return []Stream{Stdout, Stderr}
}

// captures returns the captures q selects.
func (h *Hub) captures(q *Query) []*Capture {
	h.mu.Lock()
	defer h.mu.Unlock()
	var list []*Capture
	for _, inst := range h.instances {
		c := inst.cur
		if q.Previous {
			c = inst.prev
		}
		if c != nil && q.matches(c.id) {
			list = append(list, c)
		}
		// Resuming a follow: the lines after the cursor of whichever
		// process, since the one just replaced may still be writing.
		if q.After > 0 && !q.Previous && inst.prev != nil && q.matches(inst.prev.id) {
			list = append(list, inst.prev)
		}
	}
	return list
}

// Lines returns the lines q selects, oldest first, interleaved in the
// order they were read. Their Text is shared: never modify it.
func (h *Hub) Lines(q Query) []Line {
	lines, _ := h.lines(&q)
	return lines
}

// lines is Lines, also returning the number of each ring's last batch.
func (h *Hub) lines(q *Query) ([]Line, map[*ring]uint64) {
	var out []Line
	last := make(map[*ring]uint64)
	for _, c := range h.captures(q) {
		for _, s := range q.streams() {
			r := &c.rings[s-1]
			var seq uint64
			out, seq = r.linesSince(out, q.Since, q.After, q.N)
			last[r] = seq
		}
	}
	slices.SortStableFunc(out, func(a, b Line) int { return cmp.Compare(a.Seq, b.Seq) })
	if q.N > 0 && len(out) > q.N {
		out = out[len(out)-q.N:]
	}
	return out, last
}

// Seq returns the number of the last lines read (see Line.Seq).
func (h *Hub) Seq() uint64 { return h.seq.Load() }

// Close stops the destinations: each writes what it has queued, within
// ctx; what is still queued when ctx ends is counted as dropped by its
// capture. Captures go on reading, into their rings only; closing them is
// their owner's job. When they have all ended, Close also waits (within
// ctx) for the goroutine that read them to end. Close returns the
// destinations' errors.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	var sinks []func(context.Context) error
	if h.console != nil {
		sinks = append(sinks, h.console.close)
	}
	if h.journal != nil {
		j := h.journal
		sinks = append(sinks, func(ctx context.Context) error {
			err := j.close(ctx)
			j.closeConn()
			return err
		})
	}
	if h.files != nil {
		w := h.files
		files := make([]*fileSink, 0, len(w.files))
		for _, f := range w.files {
			files = append(files, f)
		}
		sinks = append(sinks, func(ctx context.Context) error { return w.close(ctx, files) })
	}
	h.mu.Unlock()
	errs := make([]error, len(sinks))
	var wg sync.WaitGroup
	for i, close := range sinks {
		wg.Go(func() { errs[i] = close(ctx) })
	}
	wg.Wait()
	h.poll.wait(ctx)
	return errors.Join(errs...)
}
