package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progress is what backup and restore show while they run: per topic and
// in total, offsets done of those planned, with records and bytes; bars
// on a terminal, log lines otherwise. Its methods that end in Locked are
// called with mu held.
type progress struct {
	verb string // "backup" or "restore", for log messages
	log  *slog.Logger

	mu     sync.Mutex
	start  time.Time
	topics map[string]*topicProgress
	names  []string // topics in order of planning
	total  topicProgress
	bars   *mpb.Progress // nil when not on a terminal
}

// topicProgress sums a topic's partitions (or all of them, for the total).
type topicProgress struct {
	planned, done  int64 // offsets: to go through in this run, gone through
	bytes, records int64
	bar            *mpb.Bar
}

func newProgress(verb string) progress {
	return progress{verb: verb, start: time.Now(), topics: map[string]*topicProgress{}}
}

// planLocked adds n offsets to go through to topic name.
func (p *progress) planLocked(name string, n int64) {
	t := p.topics[name]
	if t == nil {
		t = &topicProgress{}
		p.topics[name] = t
		p.names = append(p.names, name)
	}
	t.planned += n
	p.total.planned += n
}

// advanceLocked counts offsets gone through, and records and bytes, for
// topic name and the total, and moves the bars if drawn.
func (p *progress) advanceLocked(name string, offsets, records, bytes int64) {
	t := p.topics[name]
	if t == nil {
		return
	}
	for _, s := range []*topicProgress{t, &p.total} {
		s.done += offsets
		s.bytes += bytes
		s.records += records
	}
	if p.bars != nil {
		if p.total.bar == nil {
			p.total.bar = p.newBar("total", &p.total)
		}
		if t.bar == nil {
			t.bar = p.newBar(name, t)
		}
		t.bar.SetCurrent(t.done)
		p.total.bar.SetCurrent(p.total.done)
	}
}

// newBar adds a bar of offsets with the bytes and rate read from s.
func (p *progress) newBar(name string, s *topicProgress) *mpb.Bar {
	return p.bars.AddBar(max(1, s.planned),
		mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR), decor.Percentage(decor.WCSyncSpace)),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string {
				// Read under p.mu: the bars render from their own goroutine.
				p.mu.Lock()
				defer p.mu.Unlock()
				secs := max(time.Since(p.start).Seconds(), 0.001)
				return fmt.Sprintf("%d records, %s, %s/s", s.records, size(uint64(s.bytes)), size(uint64(float64(s.bytes)/secs)))
			}, decor.WCSyncSpace),
			decor.OnComplete(decor.AverageETA(decor.ET_STYLE_GO, decor.WCSyncSpace), "done"),
		))
}

// showBars draws progress bars on w (a terminal) until the returned stop
// is called.
func (p *progress) showBars(w io.Writer) (stop func()) {
	p.mu.Lock()
	p.bars = mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(200*time.Millisecond), mpb.WithAutoRefresh())
	bars := p.bars
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		for _, name := range p.names {
			if t := p.topics[name]; t.bar != nil {
				t.bar.SetCurrent(t.done)
				t.bar.Abort(false)
			}
		}
		if p.total.bar != nil {
			p.total.bar.Abort(false)
		}
		p.mu.Unlock()
		bars.Wait()
	}
}

// logProgress logs the totals every interval until ctx ends: the progress
// display when standard error is not a terminal. extra, if set, adds
// attributes when nothing is planned (a continuous backup's lag); it is
// called with p.mu held.
// startProgressLog logs progress every interval until the function it
// returns is called, which waits for the logging to stop: a command must
// not write a progress line after it has returned (and printed its result
// or error), nor into a writer its caller has taken back (found by the
// race detector in TestSecretsNeverPrinted).
func (p *progress) startProgressLog(ctx context.Context, interval time.Duration, extra func() []any) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.logProgress(ctx, interval, extra)
	}()
	return func() {
		cancel()
		<-done
	}
}

func (p *progress) logProgress(ctx context.Context, interval time.Duration, extra func() []any) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p.mu.Lock()
		secs := max(time.Since(p.start).Seconds(), 0.001)
		attrs := []any{"records", p.total.records, "bytes", p.total.bytes, "bytes_per_second", int64(float64(p.total.bytes) / secs)}
		if p.total.planned > 0 {
			pct := 100 * float64(p.total.done) / float64(p.total.planned)
			attrs = append(attrs, "offsets_done", p.total.done, "offsets_planned", p.total.planned, "percent", int(pct))
			if p.total.done > 0 {
				eta := time.Duration(secs*float64(p.total.planned-p.total.done)/float64(p.total.done)) * time.Second
				attrs = append(attrs, "eta", eta.Round(time.Second).String())
			}
		} else if extra != nil {
			attrs = append(attrs, extra()...)
		}
		p.mu.Unlock()
		p.log.Info(p.verb+": progress", attrs...)
	}
}

// serveMetrics serves reg on addr (HOST:PORT) at /metrics until ctx ends;
// it returns the address listened on.
func serveMetrics(ctx context.Context, reg *prometheus.Registry, addr string, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return ln.Addr().String(), nil
}
