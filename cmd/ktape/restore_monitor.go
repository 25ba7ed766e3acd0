package main

import (
	"context"
	"log/slog"
	"strconv"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/restore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// restoreMonitor turns a restore's events into Prometheus metrics,
// progress bars on a terminal, and periodic log lines otherwise. Progress
// is in source offsets walked: acknowledged, left out by the window, or
// found already in the target.
type restoreMonitor struct {
	progress
	metrics *restoreMetrics // nil without --metrics-addr
	parts   map[client.TopicPartition]*restorePart
}

type restorePart struct{ from, to, next int64 }

func newRestoreMonitor(log *slog.Logger, metrics *restoreMetrics) *restoreMonitor {
	m := &restoreMonitor{progress: newProgress("restore"), metrics: metrics, parts: map[client.TopicPartition]*restorePart{}}
	m.log = log
	return m
}

func (m *restoreMonitor) Planned(p restore.PartitionPlan) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.parts[p.Source] = &restorePart{from: p.From, to: p.To, next: p.From}
	m.planLocked(p.Dest.Topic, max(0, p.To-p.From))
	if m.metrics != nil {
		m.metrics.remaining.WithLabelValues(p.Dest.Topic, strconv.Itoa(int(p.Dest.Partition))).Set(float64(max(0, p.To-p.From)))
	}
}

func (m *restoreMonitor) Restored(e restore.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.parts[e.Source]
	if p == nil {
		return
	}
	moved := max(0, min(e.Next, p.to)-p.next)
	p.next += moved
	m.advanceLocked(e.Dest.Topic, moved, e.Records, e.Bytes)
	if m.metrics != nil {
		m.metrics.bytes.WithLabelValues(e.Dest.Topic).Add(float64(e.Bytes))
		m.metrics.records.WithLabelValues(e.Dest.Topic).Add(float64(e.Records))
		m.metrics.batches.WithLabelValues(e.Dest.Topic).Add(float64(e.Batches))
		m.metrics.remaining.WithLabelValues(e.Dest.Topic, strconv.Itoa(int(e.Dest.Partition))).Set(float64(p.to - p.next))
	}
}

// restoreMetrics are the Prometheus metrics of a restore, all prefixed
// ktape_restore_.
type restoreMetrics struct {
	reg       *prometheus.Registry
	bytes     *prometheus.CounterVec
	records   *prometheus.CounterVec
	batches   *prometheus.CounterVec
	remaining *prometheus.GaugeVec
}

func newRestoreMetrics() *restoreMetrics {
	topic := []string{"topic"}
	m := &restoreMetrics{
		reg: prometheus.NewRegistry(),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ktape_restore_bytes_total",
			Help: "Bytes of record batches restored (acknowledged by the target), by target topic."}, topic),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ktape_restore_records_total",
			Help: "Records restored (acknowledged by the target), by target topic."}, topic),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ktape_restore_batches_total",
			Help: "Record batches restored (acknowledged by the target), by target topic."}, topic),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ktape_restore_remaining_offsets",
			Help: "Source offsets of the backup not yet walked, by target partition."}, []string{"topic", "partition"}),
	}
	m.reg.MustRegister(m.bytes, m.records, m.batches, m.remaining,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *restoreMetrics) serve(ctx context.Context, addr string, log *slog.Logger) (string, error) {
	return serveMetrics(ctx, m.reg, addr, log)
}
