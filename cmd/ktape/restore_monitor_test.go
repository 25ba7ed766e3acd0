package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/restore"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A restore's progress: bars per target topic and in total, in source
// offsets walked (acknowledged, or found already restored), log lines,
// and metrics from the same events.
func TestRestoreMonitor(t *testing.T) {
	var bars bytes.Buffer
	logs := &lockedBuffer{}
	metrics := newRestoreMetrics()
	m := newRestoreMonitor(slog.New(slog.NewJSONHandler(logs, nil)), metrics)
	stop := m.showBars(&bars)
	src := func(p int32) client.TopicPartition { return client.TopicPartition{Topic: "orders", Partition: p} }
	dst := func(p int32) client.TopicPartition { return client.TopicPartition{Topic: "dr.orders", Partition: p} }
	m.Planned(restore.PartitionPlan{Source: src(0), Dest: dst(0), From: 0, To: 100})
	m.Planned(restore.PartitionPlan{Source: src(1), Dest: dst(1), From: 100, To: 200})
	m.Restored(restore.Event{Source: src(0), Dest: dst(0), Next: 60, Batches: 3, Records: 60, Bytes: 4096})
	m.Restored(restore.Event{Source: src(1), Dest: dst(1), Next: 150}) // already in the target
	m.Restored(restore.Event{Source: src(0), Dest: dst(0), Next: 100, Batches: 1, Records: 40, Bytes: 2048})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.logProgress(ctx, 5*time.Millisecond, nil); close(done) }()
	for !strings.Contains(logs.String(), "restore: progress") {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	stop()
	if l := logs.String(); !strings.Contains(l, `"offsets_done":150,"offsets_planned":200,"percent":75`) {
		t.Errorf("progress log: %s", l)
	}
	if b := bars.String(); !strings.Contains(b, "dr.orders") || !strings.Contains(b, "100 records, 6.0 KiB") {
		t.Errorf("bars: %q", b)
	}
	if got := testutil.ToFloat64(metrics.records.WithLabelValues("dr.orders")); got != 100 {
		t.Errorf("records metric %v", got)
	}
	if got := testutil.ToFloat64(metrics.remaining.WithLabelValues("dr.orders", "1")); got != 50 {
		t.Errorf("remaining offsets of dr.orders/1: %v, want 50", got)
	}
}
