package main

import (
	"context"
	"log/slog"
	"strconv"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// backupMonitor turns a backup's events into Prometheus metrics, progress
// bars on a terminal, and periodic log lines otherwise.
type backupMonitor struct {
	progress
	metrics *backupMetrics // nil without --metrics-addr
	parts   map[client.TopicPartition]*partProgress
}

// partProgress is one partition's: where it started and ends (-1:
// continuous), where it is, and its high watermark.
type partProgress struct{ from, to, next, hwm int64 }

func newBackupMonitor(log *slog.Logger, metrics *backupMetrics) *backupMonitor {
	m := &backupMonitor{progress: newProgress("backup"), metrics: metrics, parts: map[client.TopicPartition]*partProgress{}}
	m.log = log
	return m
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
	if old := m.parts[e.TopicPartition]; old != nil && old.to >= 0 {
		// Planned again (a worker given the partition back after a
		// rebalance): what was left of it is replaced by what is left now.
		m.planLocked(e.Topic, -max(0, old.to-old.next))
	}
	p := &partProgress{from: e.From, to: e.To, next: e.From, hwm: e.HighWatermark}
	m.parts[e.TopicPartition] = p
	m.planLocked(e.Topic, max(0, e.To-e.From)) // nothing planned when continuous (To -1)
	if m.metrics != nil {
		m.metrics.lag.WithLabelValues(e.Topic, strconv.Itoa(int(e.Partition))).Set(float64(p.lag()))
	}
}

func (m *backupMonitor) Fetched(e backup.FetchEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.parts[e.TopicPartition]
	if p == nil {
		return
	}
	moved := max(0, e.Next-p.next)
	p.next, p.hwm = max(p.next, e.Next), e.HighWatermark
	if p.to < 0 {
		moved = 0 // a continuous backup has no bars to move
	}
	m.advanceLocked(e.Topic, moved, e.Records, e.Bytes)
	if m.metrics != nil {
		m.metrics.bytes.WithLabelValues(e.Topic).Add(float64(e.Bytes))
		m.metrics.records.WithLabelValues(e.Topic).Add(float64(e.Records))
		m.metrics.batches.WithLabelValues(e.Topic).Add(float64(e.Batches))
		m.metrics.lag.WithLabelValues(e.Topic, strconv.Itoa(int(e.Partition))).Set(float64(p.lag()))
		m.metrics.fetchWait.Observe(e.Wait.Seconds())
	}
}

// lagAttrs is the progress log's addition for a continuous backup.
func (m *backupMonitor) lagAttrs() []any {
	lag := int64(0)
	for _, p := range m.parts {
		lag += p.lag()
	}
	return []any{"lag_offsets", lag}
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
	return serveMetrics(ctx, m.reg, addr, log)
}
