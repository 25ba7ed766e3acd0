package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Settings every client is given, as far as it has the knob (each impl's
// note says where it has not).
const (
	linger          = 5 * time.Millisecond
	batchMaxBytes   = 1 << 20 // per partition batch
	maxInFlight     = 5       // produce requests per connection
	maxBufferedRecs = 1 << 20 // records waiting in the client, where bounded by count
)

// clientConfig is what an impl is opened with.
type clientConfig struct {
	Brokers     []string
	Topic       string
	Partitions  int
	Goroutines  int    // callers of Append, numbered 0..Goroutines-1
	ValueBytes  int    // size of every value
	Compression string // none, gzip, snappy, lz4 or zstd
	Acks        string // "all" (idempotent) or "1" (not idempotent)
}

// idempotent reports whether the run asks for an idempotent producer.
func (c clientConfig) idempotent() bool { return c.Acks == "all" }

// producer is one client under test. The harness calls Append from
// Goroutines goroutines at once, each passing its own number g, so an impl
// can keep per-goroutine state without locks; Flush and Close are called
// from one goroutine after every Append has returned.
type producer interface {
	// Append hands one record (nil key, the given value, explicit
	// partition) to the client and returns as soon as the client has
	// taken it; it may block for back-pressure. The harness passes the
	// same value slice every time and never modifies it.
	Append(g int, partition int32, value []byte) error
	// Flush waits until every record appended so far has been
	// acknowledged or has failed, and returns the first failure.
	Flush(ctx context.Context) error
	// Close releases the client.
	Close() error
}

// implInfo is a registered client.
type implInfo struct {
	// note is copied into every result line: what is not comparable
	// about this client's configuration or numbers.
	note string
	open func(ctx context.Context, cfg clientConfig) (producer, error)
}

var (
	implsMu sync.Mutex
	impls   = map[string]implInfo{}
)

// register adds an impl under name; called from init functions, one file
// per client (ktape.go, kgo.go, ...).
func register(name, note string, open func(ctx context.Context, cfg clientConfig) (producer, error)) {
	implsMu.Lock()
	defer implsMu.Unlock()
	if _, dup := impls[name]; dup {
		panic(fmt.Sprintf("bench/produce: impl %q registered twice", name))
	}
	impls[name] = implInfo{note: note, open: open}
}

func lookupImpl(name string) (implInfo, bool) {
	implsMu.Lock()
	defer implsMu.Unlock()
	i, ok := impls[name]
	return i, ok
}

// knownImpls is every impl the harness knows how to run, in the order runs
// are made; the default -impl list.
var knownImpls = []string{"ktape", "kgo", "sarama", "kafkago", "confluent"}

func registeredImpls() []string {
	implsMu.Lock()
	defer implsMu.Unlock()
	names := make([]string, 0, len(impls))
	for n := range impls {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// tracker counts delivery reports for clients that report them on a
// channel or callback rather than through a flush call: Flush waits until
// the acknowledged (or failed) count reaches the appended count. Appends
// are counted by the impl per goroutine (no shared counter on the append
// path) and summed when it flushes.
type tracker struct {
	done    atomic.Int64 // by the client's report goroutine or callback
	waiting atomic.Bool

	mu      sync.Mutex
	cond    sync.Cond
	first   error
	aborted bool // the client failed as a whole: stop waiting
}

func newTracker() *tracker {
	t := &tracker{}
	t.cond.L = &t.mu
	return t
}

// report records n deliveries, failed with err if it is not nil.
func (t *tracker) report(n int, err error) {
	if err != nil {
		t.mu.Lock()
		if t.first == nil {
			t.first = err
		}
		t.mu.Unlock()
	}
	t.done.Add(int64(n))
	if t.waiting.Load() {
		t.mu.Lock()
		t.cond.Broadcast()
		t.mu.Unlock()
	}
}

// abort records a failure of the whole client, after which wait returns
// at once.
func (t *tracker) abort(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.first == nil {
		t.first = err
	}
	t.aborted = true
	t.cond.Broadcast()
}

// wait blocks until appended records in all have been reported or ctx
// ends.
func (t *tracker) wait(ctx context.Context, appended int64) error {
	t.waiting.Store(true)
	defer t.waiting.Store(false)
	stop := context.AfterFunc(ctx, func() {
		t.mu.Lock()
		t.cond.Broadcast()
		t.mu.Unlock()
	})
	defer stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.done.Load() < appended && !t.aborted {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%d of %d records acknowledged: %w", t.done.Load(), appended, err)
		}
		t.cond.Wait()
	}
	return t.first
}
