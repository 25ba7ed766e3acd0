package demo

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/crosscheck"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/restore"
	"github.com/twmb/franz-go/pkg/kgo"
)

// restoreAndCheck restores the backup m into a second embedded cluster,
// with the consumer groups' offsets, and checks the result with franz-go:
//
//   - every restored partition holds, in order, exactly the records a
//     read_committed consumer reads on the source (key, value, headers,
//     timestamp; offsets may differ, as markers and aborted transactions
//     are left out);
//   - every group offset committed on the source was committed on the
//     target, and a consumer resuming there reads exactly the records it
//     had not read on the source.
func restoreAndCheck(ctx context.Context, r *repo.Repository, m *repo.Manifest, src *env, smp *sample, brokers int, opts Options) (RestoreSummary, error) {
	rs := RestoreSummary{Available: true}
	dst, err := start(ctx, brokers)
	if err != nil {
		return rs, fmt.Errorf("second cluster: %w", err)
	}
	defer dst.close()
	began := time.Now()
	// The summary says what the restore did; only its warnings are logged.
	st, err := restore.Run(ctx, dst.c, r, m, restore.Options{Groups: true, Log: slog.New(warnings{opts.Log.Handler()})})
	if err != nil {
		return rs, err
	}
	secs := time.Since(began).Seconds()
	rs.ID, rs.Partitions, rs.Batches, rs.Records, rs.Bytes = st.ID, st.Partitions, st.Batches, st.Records, st.Bytes
	rs.Seconds, rs.MBPerSecond = secs, float64(st.Bytes)/1e6/secs
	rs.Skipped = st.Markers + st.Aborted + st.Undecided

	from, to := crosscheck.NewCluster(src.kgo), crosscheck.NewCluster(dst.kgo)
	restored := map[client.TopicPartition][]*kgo.Record{} // the target's records
	source := map[client.TopicPartition][]*kgo.Record{}
	for _, t := range m.Topics {
		read := func(c *crosscheck.Cluster, into map[client.TopicPartition][]*kgo.Record) error {
			ct, err := c.Topic(ctx, t.Name)
			if err != nil {
				return err
			}
			offs, err := c.Offsets(ctx, ct, true)
			if err != nil {
				return err
			}
			for _, p := range ct.Partitions() {
				recs, err := c.Records(ctx, ct, p, offs[p].LogStart, offs[p].End, crosscheck.ReadOptions{Committed: true})
				if err != nil {
					return err
				}
				into[client.TopicPartition{Topic: t.Name, Partition: p}] = recs
			}
			return nil
		}
		if err := read(from, source); err != nil {
			return rs, fmt.Errorf("read the source: %w", err)
		}
		if err := read(to, restored); err != nil {
			return rs, fmt.Errorf("read the target: %w", err)
		}
	}
	for tp, want := range source {
		got := restored[tp]
		for i := range max(len(want), len(got)) {
			switch {
			case i == len(got):
				return rs, fmt.Errorf("%s: the target lacks the source's record at offset %d (and %d after it)", tp, want[i].Offset, len(want)-i-1)
			case i == len(want):
				return rs, fmt.Errorf("%s: the target has a record at offset %d (and %d after it) the source lacks", tp, got[i].Offset, len(got)-i-1)
			}
			if what := differ(want[i], got[i]); what != "" {
				return rs, fmt.Errorf("%s: source offset %d, target offset %d: %s", tp, want[i].Offset, got[i].Offset, what)
			}
		}
		rs.RecordsCompared += int64(len(want))
	}

	names := make([]string, 0, len(smp.groups))
	for g := range smp.groups {
		names = append(names, g)
	}
	committed, err := dst.c.FetchGroupOffsets(ctx, names)
	if err != nil {
		return rs, fmt.Errorf("the target's group offsets: %w", err)
	}
	for g, offs := range smp.groups {
		for tp, o := range offs {
			t := committed[g][tp]
			if t.Err != nil || t.Offset < 0 {
				return rs, fmt.Errorf("group %s, %s: committed %d on the source, not on the target (%d, %v)", g, tp, o.Offset, t.Offset, t.Err)
			}
			// What the group had not read on the source...
			var unread []*kgo.Record
			for _, r := range source[tp] {
				if r.Offset >= o.Offset {
					unread = append(unread, r)
				}
			}
			// ...is what it reads on the target from its offset.
			var next []*kgo.Record
			for _, r := range restored[tp] {
				if r.Offset >= t.Offset {
					next = append(next, r)
				}
			}
			if len(next) != len(unread) || len(next) > 0 && differ(unread[0], next[0]) != "" {
				return rs, fmt.Errorf("group %s, %s: committed %d on the source, translated to %d: a consumer would read %d records there, %d on the source", g, tp, o.Offset, t.Offset, len(next), len(unread))
			}
			rs.GroupOffsets++
		}
	}
	return rs, nil
}

// warnings passes on only records of level Warn and above.
type warnings struct{ slog.Handler }

func (w warnings) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}

// differ names the first of key, value, headers and timestamp in which
// two records differ, or returns "".
func differ(a, b *kgo.Record) string {
	switch {
	case !same(a.Key, b.Key):
		return fmt.Sprintf("key %q, restored %q", a.Key, b.Key)
	case !same(a.Value, b.Value):
		return fmt.Sprintf("value of %d bytes, restored %d", len(a.Value), len(b.Value))
	case !a.Timestamp.Equal(b.Timestamp):
		return fmt.Sprintf("timestamp %d, restored %d", a.Timestamp.UnixMilli(), b.Timestamp.UnixMilli())
	case len(a.Headers) != len(b.Headers):
		return fmt.Sprintf("%d headers, restored %d", len(a.Headers), len(b.Headers))
	}
	for i, h := range a.Headers {
		if h.Key != b.Headers[i].Key || !same(h.Value, b.Headers[i].Value) {
			return fmt.Sprintf("header %d differs", i)
		}
	}
	return ""
}

func same(a, b []byte) bool { return (a == nil) == (b == nil) && string(a) == string(b) }
