package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A snapshot's progress: bars per topic and in total, log lines with the
// percentage and ETA, and metrics from the same events.
func TestBackupMonitor(t *testing.T) {
	var bars bytes.Buffer
	logs := &lockedBuffer{}
	metrics := newBackupMetrics()
	m := newBackupMonitor(slog.New(slog.NewJSONHandler(logs, nil)), metrics)
	stop := m.showBars(&bars)
	tp := func(p int32) client.TopicPartition { return client.TopicPartition{Topic: "orders", Partition: p} }
	m.Planned(backup.PartitionPlan{TopicPartition: tp(0), From: 0, To: 100, HighWatermark: 100})
	m.Planned(backup.PartitionPlan{TopicPartition: tp(1), From: 50, To: 150, HighWatermark: 150})
	m.Fetched(backup.FetchEvent{TopicPartition: tp(0), Batches: 2, Records: 100, Bytes: 4096, Next: 100, HighWatermark: 100})
	m.Fetched(backup.FetchEvent{TopicPartition: tp(1), Batches: 1, Records: 50, Bytes: 2048, Next: 100, HighWatermark: 150})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.logProgress(ctx, 5*time.Millisecond, m.lagAttrs); close(done) }()
	for !strings.Contains(logs.String(), "progress") {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	stop()
	if l := logs.String(); !strings.Contains(l, `"offsets_done":150,"offsets_planned":200,"percent":75`) || !strings.Contains(l, `"eta"`) {
		t.Errorf("progress log: %s", l)
	}
	if b := bars.String(); !strings.Contains(b, "orders") || !strings.Contains(b, "total") || !strings.Contains(b, "150 records, 6.0 KiB") {
		t.Errorf("bars: %q", b)
	}
	if got := testutil.ToFloat64(metrics.records.WithLabelValues("orders")); got != 150 {
		t.Errorf("records metric %v", got)
	}
	if got := testutil.ToFloat64(metrics.lag.WithLabelValues("orders", "1")); got != 50 {
		t.Errorf("lag of orders/1: %v, want 50", got)
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
