package restore

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/crosscheck"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/record"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
)

// compactedLogs builds one compacted partition per codec, as Kafka's log
// cleaner leaves them: batches of 10 offsets keep their base offset and
// last offset delta while records inside are gone (every offset ≡ 1 mod
// 3, so some batches lose their first or last record), a whole batch is
// gone (offsets 20-29), keys repeat and some values are tombstones. In
// partition 1, retention also deleted the first batch (log start 10).
func compactedLogs(t *testing.T) []kfaketest.Log {
	t.Helper()
	var z record.Compressor
	var logs []kfaketest.Log
	for pi, c := range []record.Codec{record.None, record.Gzip, record.Snappy, record.LZ4, record.Zstd} {
		l := kfaketest.Log{End: 50}
		if pi == 1 {
			l.LogStart = 10
		}
		for base := l.LogStart; base < l.End; base += 10 {
			if base == 20 {
				continue
			}
			h := record.NoProducer
			h.BaseOffset, h.Codec = base, c
			var b record.Builder
			b.Reset(nil, h, &z)
			for d := int64(0); d < 10; d++ {
				off := base + d
				if off%3 == 1 {
					continue
				}
				value := []byte(fmt.Sprintf("value %d of partition %d", off, pi))
				if off%5 == 0 {
					value = nil
				}
				var hs []record.Header
				if off%2 == 0 {
					hs = []record.Header{{Key: []byte("h"), Value: []byte(fmt.Sprint(off))}}
				}
				b.AppendAt(int32(d), 1700000000000+off*1000, []byte(fmt.Sprint("key", off%7)), value, hs)
			}
			batch, _, err := b.Finish()
			if err != nil {
				t.Fatal(err)
			}
			record.Batch(batch).SetLastOffsetDelta(9)
			l.Data = append(l.Data, batch...)
		}
		logs = append(logs, l)
	}
	return logs
}

// A compacted topic (every codec, holes inside and between batches, a
// log start past 0, tombstones) is backed up byte for byte, verifies deep,
// and restores with contiguous offsets: the same records in the same
// order, and a group's offset committed on a compacted-away offset
// translated to the next record that exists.
func TestRestoreCompacted(t *testing.T) {
	ctx := context.Background()
	logs := compactedLogs(t)
	e := newEnv(t)
	if err := e.sc.CreateTopics(ctx, []client.TopicSpec{{Name: "table", NumPartitions: int32(len(logs)), ReplicationFactor: 1,
		Configs: map[string]string{"cleanup.policy": "compact"}}})["table"]; err != nil {
		t.Fatal(err)
	}
	e.src.Serve(t, "table", logs)
	source := e.src.ConsumeAll(t, "table")
	if len(source) == 0 {
		t.Fatal("franz-go reads nothing from the source")
	}
	commits := map[client.TopicPartition]client.GroupOffset{
		{Topic: "table", Partition: 0}: {Offset: 19, LeaderEpoch: -1}, // compacted away, then a whole batch: next record is 30
		{Topic: "table", Partition: 1}: {Offset: 4, LeaderEpoch: -1},  // below the log start
		{Topic: "table", Partition: 2}: {Offset: 41, LeaderEpoch: -1}, // the first offset of a batch, compacted away
	}
	if res, err := e.sc.CommitGroupOffsets(ctx, "g", commits); err != nil {
		t.Fatal(err)
	} else {
		for tp, err := range res {
			if err != nil {
				t.Fatalf("commit %s: %v", tp, err)
			}
		}
	}

	m, _, err := backup.Run(ctx, e.sc, e.r, backup.Options{SegmentBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if errs := e.r.Verify(ctx, m, true); len(errs) > 0 {
		t.Fatalf("verify --deep: %v", errs)
	}
	st, err := storage.Open(ctx, e.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := crosscheck.Backup(ctx, crosscheck.NewCluster(e.src.Client(t)), st, m)
	if err != nil {
		t.Fatalf("the backup differs from the source: %v", err)
	}
	if res.Records != int64(len(source)) {
		t.Fatalf("crosscheck compared %d records, the source holds %d", res.Records, len(source))
	}
	// Every batch in the repository is the broker's, byte for byte.
	d := &record.Decompressor{}
	for _, p := range m.Topics[0].Partitions {
		var stored []byte
		for _, ref := range p.Segments {
			seg, err := e.r.Index(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			data, err := st.Get(ctx, ref.Key)
			if err != nil {
				t.Fatal(err)
			}
			if err := seg.Batches(data, d, func(_ repo.IndexEntry, b record.Batch) error {
				stored = append(stored, b...)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(stored, logs[p.Partition].Data) {
			t.Errorf("partition %d: the repository holds %d bytes of batches, not the broker's %d", p.Partition, len(stored), len(logs[p.Partition].Data))
		}
		// Deleted before the backup began: where it starts, not a gap.
		if p.Partition == 1 && (p.From != 10 || p.LogStart != 10 || len(p.Gaps) != 0) {
			t.Errorf("partition 1: from %d, log start %d, gaps %+v; want 10, 10, none", p.From, p.LogStart, p.Gaps)
		}
	}

	stats, err := Run(ctx, e.dc, e.r, m, Options{Remap: []Remap{{From: regexp.MustCompile(`table`), To: "copy"}}, Groups: true})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Renumbered == 0 {
		t.Error("no batch was renumbered")
	}
	restored := e.dst.ConsumeAll(t, "copy")
	for p := range logs {
		var want, got []string
		for _, r := range source {
			if r.Partition == int32(p) {
				want = append(want, line(r))
			}
		}
		next := int64(0)
		for _, r := range restored {
			if r.Partition == int32(p) {
				got = append(got, line(r))
				if r.Offset != next {
					t.Errorf("partition %d: restored offset %d where %d was next", p, r.Offset, next)
				}
				next = r.Offset + 1
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("partition %d: restored\n%s\nwant\n%s", p, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	offs, err := e.dc.FetchGroupOffsets(ctx, []string{"g"})
	if err != nil {
		t.Fatal(err)
	}
	for tp, c := range commits {
		// The group had read every source record below its offset; on
		// the target it must resume at the first it had not.
		want := int64(0)
		for _, r := range source {
			if r.Partition == tp.Partition && r.Offset < c.Offset {
				want++
			}
		}
		got := offs["g"][client.TopicPartition{Topic: "copy", Partition: tp.Partition}]
		if got.Err != nil || got.Offset != want {
			t.Errorf("group g, %s committed at %d: restored at %d (%v), want %d", tp, c.Offset, got.Offset, got.Err, want)
		}
	}
}
