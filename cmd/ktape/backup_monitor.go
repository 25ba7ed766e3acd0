package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// backupMonitor turns a backup's events into Prometheus metrics, progress
// bars on a terminal, and periodic log lines otherwise.
type backupMonitor struct {
	log     *slog.Logger
	metrics *backupMetrics // nil without --metrics-addr

	mu     sync.Mutex
	start  time.Time
	parts  map[client.TopicPartition]*partProgress
	topics map[string]*topicProgress
	names  []string // topics in order of planning
	total  topicProgress
	bars   *mpb.Progress // nil when not on a terminal
}

// partProgress is one partition's: where it started and ends (-1:
// continuous), where it is, and its high watermark.
type partProgress struct{ from, to, next, hwm int64 }

// topicProgress sums a topic's partitions (or all of them, for the total).
type topicProgress struct {
	planned, done  int64 // offsets: to back up in this run (snapshot), backed up
	bytes, records int64
	bar            *mpb.Bar
}

func newBackupMonitor(log *slog.Logger, metrics *backupMetrics) *backupMonitor {
	return &backupMonitor{log: log, metrics: metrics, start: time.Now(),
		parts: map[client.TopicPartition]*partProgress{}, topics: map[string]*topicProgress{}}
}

func (p *partProgress) lag() int64 {
	if p.to >= 0 {
		return max(0, p.to-p.next)
	}
	return max(0, p.hwm-p.next)
}

func (m *backupMonitor) Planned(e backup.PartitionPlan) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.topics[e.Topic]
	if t == nil {
		t = &topicProgress{}
		m.topics[e.Topic] = t
		m.names = append(m.names, e.Topic)
	}
	p := &partProgress{from: e.From, to: e.To, next: e.From, hwm: e.HighWatermark}
	m.parts[e.TopicPartition] = p
	if e.To >= 0 {
		t.planned += e.To - e.From
		m.total.planned += e.To - e.From
	}
	if m.metrics != nil {
		m.metrics.lag.WithLabelValues(e.Topic, strconv.Itoa(int(e.Partition))).Set(float64(p.lag()))
	}
}

func (m *backupMonitor) Fetched(e backup.FetchEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, t := m.parts[e.TopicPartition], m.topics[e.Topic]
	if p == nil || t == nil {
		return
	}
	moved := max(0, e.Next-p.next)
	p.next, p.hwm = max(p.next, e.Next), e.HighWatermark
	for _, s := range []*topicProgress{t, &m.total} {
		s.done += moved
		s.bytes += e.Bytes
		s.records += e.Records
	}
	if m.metrics != nil {
		m.metrics.bytes.WithLabelValues(e.Topic).Add(float64(e.Bytes))
		m.metrics.records.WithLabelValues(e.Topic).Add(float64(e.Records))
		m.metrics.batches.WithLabelValues(e.Topic).Add(float64(e.Batches))
		m.metrics.lag.WithLabelValues(e.Topic, strconv.Itoa(int(e.Partition))).Set(float64(p.lag()))
		m.metrics.fetchWait.Observe(e.Wait.Seconds())
	}
	if m.bars != nil && p.to >= 0 {
		m.showProgress(e.Topic, t)
	}
}

// showProgress moves (adding on first use) the bars of a topic and of the
// total; called with m.mu held.
func (m *backupMonitor) showProgress(name string, t *topicProgress) {
	if m.total.bar == nil {
		m.total.bar = m.newBar("total", &m.total)
	}
	if t.bar == nil {
		t.bar = m.newBar(name, t)
	}
	t.bar.SetCurrent(t.done)
	m.total.bar.SetCurrent(m.total.done)
}

// newBar adds a bar of offsets with the bytes and rate read from s.
func (m *backupMonitor) newBar(name string, s *topicProgress) *mpb.Bar {
	return m.bars.AddBar(max(1, s.planned),
		mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR), decor.Percentage(decor.WCSyncSpace)),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string {
				// Read under m.mu: the bars render from their own goroutine.
				m.mu.Lock()
				defer m.mu.Unlock()
				secs := max(time.Since(m.start).Seconds(), 0.001)
				return fmt.Sprintf("%d records, %s, %s/s", s.records, size(uint64(s.bytes)), size(uint64(float64(s.bytes)/secs)))
			}, decor.WCSyncSpace),
			decor.OnComplete(decor.AverageETA(decor.ET_STYLE_GO, decor.WCSyncSpace), "done"),
		))
}

// showBars draws progress bars on w (a terminal) until the returned stop
// is called.
func (m *backupMonitor) showBars(w io.Writer) (stop func()) {
	m.mu.Lock()
	m.bars = mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(200*time.Millisecond), mpb.WithAutoRefresh())
	bars := m.bars
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		for _, name := range m.names {
			if t := m.topics[name]; t.bar != nil {
				t.bar.SetCurrent(t.done)
				t.bar.Abort(false)
			}
		}
		if m.total.bar != nil {
			m.total.bar.Abort(false)
		}
		m.mu.Unlock()
		bars.Wait()
	}
}

// logProgress logs the totals every interval until ctx ends: the
// progress display when standard error is not a terminal.
func (m *backupMonitor) logProgress(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.mu.Lock()
		secs := max(time.Since(m.start).Seconds(), 0.001)
		attrs := []any{"records", m.total.records, "bytes", m.total.bytes, "bytes_per_second", int64(float64(m.total.bytes) / secs)}
		if m.total.planned > 0 {
			pct := 100 * float64(m.total.done) / float64(m.total.planned)
			attrs = append(attrs, "offsets_done", m.total.done, "offsets_planned", m.total.planned, "percent", int(pct))
			if m.total.done > 0 {
				eta := time.Duration(secs*float64(m.total.planned-m.total.done)/float64(m.total.done)) * time.Second
				attrs = append(attrs, "eta", eta.Round(time.Second).String())
			}
		} else {
			lag := int64(0)
			for _, p := range m.parts {
				lag += p.lag()
			}
			attrs = append(attrs, "lag_offsets", lag)
		}
		m.mu.Unlock()
		m.log.Info("backup: progress", attrs...)
	}
}

func (m *backupMonitor) Stored(e backup.StoreEvent) {
	if m.metrics != nil {
		m.metrics.segments.WithLabelValues(e.Topic).Inc()
		m.metrics.storedBytes.WithLabelValues(e.Topic).Add(float64(e.Segment.StoredBytes))
		m.metrics.upload.Observe(e.Took.Seconds())
	}
}

func (m *backupMonitor) Checkpointed(e backup.CheckpointEvent) {
	if m.metrics != nil {
		m.metrics.checkpoints.Inc()
		m.metrics.checkpointTime.Observe(e.Took.Seconds())
		m.metrics.lastCheckpoint.SetToCurrentTime()
	}
}

// backupMetrics are the Prometheus metrics of a backup, all prefixed
// ktape_backup_.
type backupMetrics struct {
	reg            *prometheus.Registry
	bytes          *prometheus.CounterVec
	records        *prometheus.CounterVec
	batches        *prometheus.CounterVec
	segments       *prometheus.CounterVec
	storedBytes    *prometheus.CounterVec
	lag            *prometheus.GaugeVec
	fetchWait      prometheus.Histogram
	upload         prometheus.Histogram
	checkpoints    prometheus.Counter
	checkpointTime prometheus.Histogram
	lastCheckpoint prometheus.Gauge
}

func newBackupMetrics() *backupMetrics {
	topic := []string{"topic"}
	m := &backupMetrics{
		reg: prometheus.NewRegistry(),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ktape_backup_bytes_total",
			Help: "Bytes of record batches backed up, as fetched."}, topic),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ktape_backup_records_total",
			Help: "Records backed up (counted from batch headers)."}, topic),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ktape_backup_batches_total",
			Help: "Record batches backed up."}, topic),
		segments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ktape_backup_segments_total",
			Help: "Segments stored in the repository."}, topic),
		storedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ktape_backup_stored_bytes_total",
			Help: "Bytes of segments stored in the repository (after framing)."}, topic),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ktape_backup_lag_offsets",
			Help: "Offsets not yet backed up: to the high watermark (continuous) or to the snapshot's end."}, []string{"topic", "partition"}),
		fetchWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ktape_backup_fetch_wait_seconds",
			Help: "Time the engine waited for fetched data.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}),
		upload: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ktape_backup_segment_upload_seconds",
			Help: "Time to store a segment and its index.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{Name: "ktape_backup_checkpoints_total",
			Help: "Checkpoints and final manifests written."}),
		checkpointTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ktape_backup_checkpoint_seconds",
			Help: "Time to commit a checkpoint: seal open segments, wait for uploads, write.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
		lastCheckpoint: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ktape_backup_last_checkpoint_timestamp_seconds",
			Help: "Unix time of the last checkpoint or manifest written."}),
	}
	m.reg.MustRegister(m.bytes, m.records, m.batches, m.segments, m.storedBytes, m.lag, m.fetchWait, m.upload,
		m.checkpoints, m.checkpointTime, m.lastCheckpoint,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// serve serves the metrics on addr (HOST:PORT) at /metrics until ctx
// ends; it returns the address listened on.
func (m *backupMetrics) serve(ctx context.Context, addr string, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
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
