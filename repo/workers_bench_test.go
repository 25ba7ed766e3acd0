package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/ktape/ktape/storage"
)

// BenchmarkBestPartitions measures what every worker of a shared run pays
// at each assignment, and the finishing worker at each poll: listing and
// reading every worker checkpoint of the run in a local repository. The
// plan has 64 partitions; each worker checkpoint holds 16 of them with 8
// segments each (about 25 KB of JSON), as a worker of a 4-worker group
// holds after a while. A worker deletes its older checkpoints once a newer
// one covers them, so a run keeps about one per worker and per change of
// assignment; 1000 is far beyond that.
func BenchmarkBestPartitions(b *testing.B) {
	for _, n := range []int{1, 4, 16, 64, 256, 1000} {
		b.Run(fmt.Sprintf("checkpoints=%d", n), func(b *testing.B) {
			ctx := context.Background()
			st, err := storage.Open(ctx, b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			r, err := Open(ctx, st, true)
			if err != nil {
				b.Fatal(err)
			}
			plan := benchPlan(64)
			if err := r.PutCheckpoint(ctx, plan, 1); err != nil {
				b.Fatal(err)
			}
			for i := range n {
				m := *plan
				t := plan.Topics[0]
				t.Partitions = nil
				for j := range 16 {
					t.Partitions = append(t.Partitions, benchPartition(t, int32((i*16+j)%64), 8, int64(i)))
				}
				m.Topics = []Topic{t}
				ref := WorkerCheckpointRef{Run: plan.ID, Worker: fmt.Sprintf("w%d", i%4), Sequence: i/4 + 1}
				if err := r.PutWorkerCheckpoint(ctx, ref, &m); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				best, read, err := r.BestPartitions(ctx, plan)
				if err != nil || len(read) != n || len(best["bench"]) != 64 {
					b.Fatalf("read %d of %d checkpoints, %d partitions: %v", len(read), n, len(best["bench"]), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n)/1e3, "µs/checkpoint")
		})
	}
}

// benchPlan is a shared run's plan of one topic of parts partitions, none
// backed up yet.
func benchPlan(parts int) *Manifest {
	start := time.Now().UTC().Truncate(time.Second)
	m := &Manifest{Format: manifestFormat, Version: manifestVersion, ID: NewBackupID(start), Started: start,
		KtapeVersion: "bench", Mode: "snapshot", Isolation: "read_uncommitted", Checkpoint: true, WorkersGroup: "bench"}
	t := Topic{Name: "bench", ID: "00112233445566778899aabbccddeeff", PartitionsCount: parts}
	for p := range int32(parts) {
		t.Partitions = append(t.Partitions, Partition{Partition: p, HighWatermark: 1 << 40, LastStableOffset: 1 << 40})
	}
	m.Topics = []Topic{t}
	return m
}

// benchPartition is partition p of t backed up in segs segments of 1000
// records each; salt varies the segments' hashes between checkpoints.
func benchPartition(t Topic, p int32, segs int, salt int64) Partition {
	part := Partition{Partition: p, HighWatermark: 1 << 40, LastStableOffset: 1 << 40}
	for s := range int64(segs) {
		base := s * 1000
		sum := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%d", p, base, salt))
		h := hex.EncodeToString(sum[:])
		part.Segments = append(part.Segments, SegmentRef{
			Key:        fmt.Sprintf("segments/%s/%s/%d/%020d-%s.seg", t.Name, t.ID, p, base, h[:16]),
			BaseOffset: base, LastOffset: base + 999, Batches: 16, StoredBytes: 1 << 20, DataBytes: 1 << 20,
			SHA256: h, Compression: "none", FirstTime: 1, MaxTime: 2})
	}
	part.To = int64(segs) * 1000
	return part
}
