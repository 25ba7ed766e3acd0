package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/azuretest"
	"github.com/ktape/ktape/internal/gcstest"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/internal/repotest"
	"github.com/ktape/ktape/internal/s3test"
	"github.com/ktape/ktape/record"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func records(prefix string, n int) []*kgo.Record {
	var out []*kgo.Record
	for i := 0; i < n; i++ {
		r := &kgo.Record{Key: []byte(fmt.Sprintf("%s-%d", prefix, i)), Value: []byte(fmt.Sprintf("value %s %d", prefix, i))}
		if i%3 == 0 {
			r.Value = nil
		}
		if i%2 == 0 {
			r.Headers = []kgo.RecordHeader{{Key: "h", Value: []byte(prefix)}}
		}
		out = append(out, r)
	}
	return out
}

// A snapshot backup of data written by franz-go and by kcat (librdkafka)
// in every codec, with a committed and an aborted transaction, a
// DeleteRecords gap and an empty partition: verify --deep is clean, and
// franz-go's decoder reads from the repository's segments exactly the
// records its consumer reads from the broker (markers and aborted data
// included).
func TestSnapshotReadBackThroughFranzGo(t *testing.T) {
	ctx := context.Background()
	c := kfaketest.Start(t, kfaketest.Brokers(2), kfaketest.Topics(4, "orders"), kfaketest.Topics(1, "other", "__internal"))
	codecs := []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}
	for i, codec := range codecs {
		c.ProduceWith(t, kfaketest.ProduceOptions{Compression: codec}, "orders", int32(i%2), records(fmt.Sprint("c", i), 20)...)
	}
	c.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Commit}, "orders", 1, records("committed", 5)...)
	c.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Abort}, "orders", 1, records("aborted", 5)...)
	c.Produce(t, "other", 0, records("other", 30)...)
	c.Produce(t, "__internal", 0, records("internal", 3)...)
	// librdkafka's batches (kcat), in every codec, with keys and headers.
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		var lines []string
		for i := 0; i < 25; i++ {
			lines = append(lines, fmt.Sprintf("key-%s-%d:value %s %d", codec, i, codec, i))
		}
		cmd := exec.Command("kcat", "-b", c.Addrs()[0], "-P", "-t", "orders", "-p", "3", "-z", codec, "-K:", "-H", "codec="+codec,
			"-X", "linger.ms=20", "-X", "enable.idempotence=true")
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat -z %s: %v: %s", codec, err, out)
		}
	}

	cl, err := client.New(ctx, c.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// A gap: the first 10 records of other/0 deleted.
	if res := cl.DeleteRecords(ctx, map[client.TopicPartition]int64{{Topic: "other", Partition: 0}: 10}); res[client.TopicPartition{Topic: "other", Partition: 0}].Err != nil {
		t.Fatal(res)
	}

	st, err := storage.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, st, true)
	if err != nil {
		t.Fatal(err)
	}
	m, stats, err := Run(ctx, cl, r, Options{SegmentBytes: 2048, Version: "test", Bootstrap: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Topics) != 2 || m.Topics[0].Name != "orders" || m.Topics[1].Name != "other" {
		t.Fatalf("topics %+v: __internal must be left out unless named", m.Topics)
	}
	if stats.Segments < 4 || stats.Partitions != 5 {
		t.Fatalf("stats %+v", stats)
	}
	if errs := r.Verify(ctx, m, true); len(errs) > 0 {
		t.Fatalf("verify --deep: %v", errs)
	}
	if p := m.Topics[0].Partitions[2]; p.From != p.To || len(p.Segments) != 0 {
		t.Fatalf("empty partition: %+v", p)
	}
	if p := m.Topics[0].Partitions[3]; p.To != 125 {
		t.Fatalf("orders/3 (kcat): %+v", p)
	}
	if p := m.Topics[1].Partitions[0]; p.From != 10 || p.LogStart != 10 {
		t.Fatalf("other/0 after DeleteRecords: %+v", p)
	}

	repotest.CheckAgainstBroker(t, c, st, m)
}

// Topic selection: regular expressions match whole names, excludes win,
// internal topics need their exact name.
func TestSelectTopics(t *testing.T) {
	md := &client.Metadata{Topics: map[string]*client.TopicMetadata{
		"orders": {}, "orders-dlq": {}, "payments": {}, "__consumer_offsets": {}, "__internal": {},
	}}
	for _, tc := range []struct {
		topics, exclude []string
		want            string
	}{
		{nil, nil, "[orders orders-dlq payments]"},
		{[]string{"orders"}, nil, "[orders]"},
		{[]string{"orders.*"}, []string{".*-dlq"}, "[orders]"},
		{[]string{".*"}, nil, "[orders orders-dlq payments]"},
		{[]string{"__internal"}, nil, "[__internal]"},
	} {
		var o Options
		for _, s := range tc.topics {
			o.Topics = append(o.Topics, regexp.MustCompile(s))
		}
		for _, s := range tc.exclude {
			o.Exclude = append(o.Exclude, regexp.MustCompile(s))
		}
		if got := fmt.Sprint(selectTopics(md, o)); got != tc.want {
			t.Errorf("topics %v exclude %v: %s, want %s", tc.topics, tc.exclude, got, tc.want)
		}
	}
}

func openRepo(t *testing.T, dir string) (*storage.Store, *repo.Repository) {
	t.Helper()
	st, err := storage.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := repo.Open(context.Background(), st, true)
	if err != nil {
		t.Fatal(err)
	}
	return st, r
}

func newClient(t *testing.T, c *kfaketest.Cluster) *client.Client {
	t.Helper()
	cl, err := client.New(context.Background(), c.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// A second backup continues each partition where the first ended: it
// names the first as its parent, references its segments, stores only
// the new batches, and records the offsets deleted in between as a gap.
// --full ignores the parent.
func TestIncremental(t *testing.T) {
	ctx := context.Background()
	c := kfaketest.Start(t, kfaketest.Topics(2, "orders"))
	c.Produce(t, "orders", 0, records("a", 40)...)
	c.Produce(t, "orders", 1, records("b", 10)...)
	cl := newClient(t, c)
	st, r := openRepo(t, t.TempDir())
	first, _, err := Run(ctx, cl, r, Options{SegmentBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	c.Produce(t, "orders", 0, records("c", 30)...)
	c.Produce(t, "orders", 1, records("d", 10)...)
	// orders/1: offsets 10-14 (after the first backup) deleted before the second.
	if res := cl.DeleteRecords(ctx, map[client.TopicPartition]int64{{Topic: "orders", Partition: 1}: 15}); res[client.TopicPartition{Topic: "orders", Partition: 1}].Err != nil {
		t.Fatal(res)
	}
	second, stats, err := Run(ctx, cl, r, Options{SegmentBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if second.Parent != first.ID || stats.Parent != first.ID {
		t.Fatalf("parent %q, want %q", second.Parent, first.ID)
	}
	p0, old0 := second.Topics[0].Partitions[0], first.Topics[0].Partitions[0]
	if p0.From != 0 || p0.To != 70 || len(p0.Segments) <= len(old0.Segments) || fmt.Sprint(p0.Segments[:len(old0.Segments)]) != fmt.Sprint(old0.Segments) {
		t.Fatalf("orders/0: %+v after %+v", p0, old0)
	}
	// orders/1's new batch holds offsets 10-19; the first 5 are below the
	// log start but a batch is stored whole.
	if stats.Records != 30+10 {
		t.Fatalf("the second backup fetched %d records, want the 40 in new batches", stats.Records)
	}
	if p1 := second.Topics[0].Partitions[1]; fmt.Sprint(p1.Gaps) != "[{10 15 retention}]" || p1.From != 0 || p1.To != 20 {
		t.Fatalf("orders/1: %+v", p1)
	}
	if errs := r.Verify(ctx, second, true); len(errs) > 0 {
		t.Fatalf("verify --deep: %v", errs)
	}
	repotest.CheckAgainstBroker(t, c, st, second)

	full, _, err := Run(ctx, cl, r, Options{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if full.Parent != "" || full.Topics[0].Partitions[1].From != 15 || len(full.Topics[0].Partitions[1].Gaps) != 0 {
		t.Fatalf("full backup: parent %q, orders/1 %+v", full.Parent, full.Topics[0].Partitions[1])
	}
	repotest.CheckAgainstBroker(t, c, st, full)
}

// stopAfter is an Observer that calls fn once, after n segments were
// stored and a checkpoint written after them.
type stopAfter struct {
	mu     sync.Mutex
	n      int
	stored int
	fn     func()
	done   bool
}

func (s *stopAfter) Planned(PartitionPlan) {}
func (s *stopAfter) Fetched(FetchEvent)    {}
func (s *stopAfter) Stored(StoreEvent) {
	s.mu.Lock()
	s.stored++
	s.mu.Unlock()
}
func (s *stopAfter) Checkpointed(e CheckpointEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stored >= s.n && !s.done && !e.Final {
		s.done = true
		s.fn()
	}
}

// A snapshot abandoned mid-way (its context cancelled, as a crash would)
// is resumed by the next run from its newest checkpoint: same backup id,
// the ends fixed when it started, nothing missing, nothing twice. Data
// produced after the first run started is not in the snapshot.
func TestResumeAbandonedSnapshot(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Topics(3, "orders"))
	// 1.6 MB a partition: more than one fetch.
	for p := int32(0); p < 3; p++ {
		for i := 0; i < 20; i++ {
			rs := records(fmt.Sprint("p", p, "-", i), 10)
			for _, r := range rs {
				r.Value = bytes.Repeat([]byte{byte(i)}, 8<<10)
			}
			c.Produce(t, "orders", p, rs...)
		}
	}
	cl := newClient(t, c)
	st, r := openRepo(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	obs := &stopAfter{n: 3, fn: cancel}
	_, first, err := Run(ctx, cl, r, Options{SegmentBytes: 64 << 10, Memory: 8 << 20, CheckpointInterval: time.Millisecond, Observer: obs})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v, want it abandoned", err)
	}
	runs, err := r.Unfinished(context.Background())
	if err != nil || len(runs) != 1 || runs[0].ID != first.ID || len(runs[0].Checkpoints) != 1 {
		t.Fatalf("unfinished runs %+v, %v: want %s with its newest checkpoint only", runs, err, first.ID)
	}
	c.Produce(t, "orders", 0, records("late", 5)...)

	m, second, err := Run(context.Background(), cl, r, Options{SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if !second.Resumed || m.ID != first.ID || second.Records >= 600 || second.Records+first.Records < 600 {
		t.Fatalf("resumed %v, id %s (first %s), records %d then %d", second.Resumed, m.ID, first.ID, first.Records, second.Records)
	}
	if to := m.Topics[0].Partitions[0].To; to != 200 {
		t.Fatalf("orders/0 ends at %d: the resumed snapshot must keep the end fixed when it started (200)", to)
	}
	if errs := r.Verify(context.Background(), m, true); len(errs) > 0 {
		t.Fatalf("verify --deep: %v", errs)
	}
	repotest.CheckAgainstBroker(t, c, st, m)
	if runs, _ := r.Unfinished(context.Background()); len(runs) != 0 {
		t.Fatalf("unfinished runs after the backup finished: %+v", runs)
	}
	if keys, _ := st.List(context.Background(), "checkpoints/"); len(keys) != 0 {
		t.Fatalf("checkpoints left behind: %v", keys)
	}
}

// A continuous backup follows the topic while it is written to, commits
// checkpoints, and on Stop writes a manifest up to where it got; consumer
// group offsets are recorded.
func TestContinuous(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Topics(2, "orders"))
	cl := newClient(t, c)
	st, r := openRepo(t, t.TempDir())
	stop := make(chan struct{})
	type result struct {
		m   *repo.Manifest
		st  Stats
		err error
	}
	res := make(chan result, 1)
	var checkpoints atomic.Int32
	go func() {
		m, s, err := Run(context.Background(), cl, r, Options{Mode: Continuous, CheckpointInterval: 20 * time.Millisecond, Stop: stop,
			Observer: countCheckpoints{&checkpoints}})
		res <- result{m, s, err}
	}()
	for i := 0; i < 10; i++ {
		c.Produce(t, "orders", int32(i%2), records(fmt.Sprint("r", i), 7)...)
		time.Sleep(10 * time.Millisecond)
	}
	// A topic created while the backup runs is picked up.
	if errs := cl.CreateTopics(context.Background(), []client.TopicSpec{{Name: "late", NumPartitions: 1, ReplicationFactor: 1}}); errs["late"] != nil {
		t.Fatal(errs["late"])
	}
	c.Produce(t, "late", 0, records("late", 3)...)
	if _, err := cl.CommitGroupOffsets(context.Background(), "billing", map[client.TopicPartition]client.GroupOffset{{Topic: "orders", Partition: 1}: {Offset: 21, LeaderEpoch: -1}}); err != nil {
		t.Fatal(err)
	}
	// Wait until a checkpoint has everything, then stop.
	deadline := time.Now().Add(10 * time.Second)
	for {
		runs, _ := r.Unfinished(context.Background())
		if len(runs) == 1 {
			cp, err := r.Checkpoint(context.Background(), runs[0].ID, runs[0].Checkpoints[len(runs[0].Checkpoints)-1])
			if err == nil && len(cp.Topics) == 2 && cp.Topics[1].Partitions[0].To == 35 && cp.Topics[1].Partitions[1].To == 35 &&
				cp.Topics[0].Partitions[0].To == 3 && len(cp.Groups) == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint with all the data after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	out := <-res
	if out.err != nil {
		t.Fatal(out.err)
	}
	m := out.m
	if m.Mode != Continuous || m.Checkpoint || checkpoints.Load() < 2 {
		t.Fatalf("mode %s checkpoint %v after %d checkpoints", m.Mode, m.Checkpoint, checkpoints.Load())
	}
	if fmt.Sprint(m.Groups) != "[{billing [{orders 1 21 -1 }]}]" {
		t.Fatalf("groups %+v", m.Groups)
	}
	if late := m.Topic("late"); late == nil || late.Partitions[0].From != 0 || late.Partitions[0].To != 3 {
		t.Fatalf("the topic created during the run: %+v", late)
	}
	for _, p := range m.Topic("orders").Partitions {
		if p.To != 35 || p.HighWatermark != 35 {
			t.Fatalf("orders/%d: %+v", p.Partition, p)
		}
	}
	if errs := r.Verify(context.Background(), m, true); len(errs) > 0 {
		t.Fatalf("verify --deep: %v", errs)
	}
	repotest.CheckAgainstBroker(t, c, st, m)
}

type countCheckpoints struct{ n *atomic.Int32 }

func (countCheckpoints) Planned(PartitionPlan)          {}
func (countCheckpoints) Fetched(FetchEvent)             {}
func (countCheckpoints) Stored(StoreEvent)              {}
func (c countCheckpoints) Checkpointed(CheckpointEvent) { c.n.Add(1) }

// The smallest budget, zstd framing, in a plain and an encrypted
// repository (where each segment is sealed into a second buffer as large
// while it is stored), over many small partitions and over a few that
// fill segments: the segment buffers really in use never hold much more
// than their half of the budget (one partition's share of a fetch over,
// before older segments are sealed).
func TestMemoryBudgetManyPartitions(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Topics(200, "wide"), kfaketest.Topics(6, "deep"))
	rnd := rand.New(rand.NewPCG(1, 2))
	fill := func(topic string, partitions int32, batches int) {
		for p := range partitions {
			for b := range batches {
				rs := records(fmt.Sprint("p", p, "-", b), 10)
				for _, r := range rs {
					// Random, so that zstd framing does not shrink it.
					r.Value = make([]byte, 10<<10)
					for i := range r.Value {
						r.Value[i] = byte(rnd.Uint32())
					}
				}
				c.Produce(t, topic, p, rs...)
			}
		}
	}
	fill("wide", 200, 1) // ~100 KiB a partition, 20 MiB in all
	fill("deep", 6, 40)  // ~4 MiB a partition: full segments, 24 MiB in all
	key, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		keys *repo.Keys
	}{{"plain", nil}, {"encrypted", &repo.Keys{Recipients: []string{key.Recipient().String()}, Identities: []age.Identity{key}}}} {
		for _, topic := range []string{"wide", "deep"} {
			t.Run(tc.name+"/"+topic, func(t *testing.T) {
				cl := newClient(t, c)
				st, err := storage.Open(context.Background(), t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				r, err := repo.OpenKeys(context.Background(), st, true, tc.keys)
				if err != nil {
					t.Fatal(err)
				}
				const memory = 8 << 20
				m, stats, err := Run(context.Background(), cl, r, Options{Memory: memory, Compression: "zstd", Topics: []*regexp.Regexp{regexp.MustCompile(topic)}})
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("peak held by segments: %d KiB of %d KiB; %d segments", stats.PeakHeld>>10, memory/2>>10, stats.Segments)
				if stats.PeakHeld > memory/2+1<<20 || stats.PeakHeld == 0 {
					t.Fatalf("segments held %d bytes at peak, budget %d", stats.PeakHeld, memory/2)
				}
				if errs := r.Verify(context.Background(), m, true); len(errs) > 0 {
					t.Fatalf("verify --deep: %v", errs)
				}
				if tc.keys == nil {
					repotest.CheckAgainstBroker(t, c, st, m)
				}
			})
		}
	}
}

// A backup into S3 (versitygw), GCS (fake-gcs-server) and Azure Blob
// (Azurite): a segment over the 16 MiB part size goes up in parts, chunks
// or blocks, an incremental backup follows, verify --deep is clean and
// franz-go reads back what the broker holds.
func TestBackupToCloud(t *testing.T) {
	for name, start := range map[string]func(testing.TB) string{"s3": s3test.Start, "gs": gcstest.Start, "azblob": azuretest.Start} {
		t.Run(name, func(t *testing.T) {
			url := start(t)
			if url == "" {
				t.Skip(name + " emulator not installed")
			}
			ctx := context.Background()
			c := kfaketest.Start(t, kfaketest.Topics(2, "orders"))
			value := bytes.Repeat([]byte(name+" multipart "), 1600)
			for i := 0; i < 50; i++ {
				rs := records(fmt.Sprint("b", i), 20)
				for _, r := range rs {
					r.Value = value
				}
				c.Produce(t, "orders", 0, rs...) // over 17 MiB on orders/0
			}
			c.Produce(t, "orders", 1, records("small", 10)...)
			cl := newClient(t, c)
			st, err := storage.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			r, err := repo.Open(ctx, st, true)
			if err != nil {
				t.Fatal(err)
			}
			m, _, err := Run(ctx, cl, r, Options{Compression: "none", SegmentBytes: 32 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if seg := m.Topics[0].Partitions[0].Segments; len(seg) != 1 || seg[0].StoredBytes < 17<<20 {
				t.Fatalf("orders/0 segments %+v: want one over the 16 MiB part size", seg)
			}
			c.Produce(t, "orders", 1, records("more", 10)...)
			m2, _, err := Run(ctx, cl, r, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if m2.Parent != m.ID {
				t.Fatalf("parent %q", m2.Parent)
			}
			for _, b := range []*repo.Manifest{m, m2} {
				if errs := r.Verify(ctx, b, true); len(errs) > 0 {
					t.Fatalf("verify --deep %s: %v", b.ID, errs)
				}
			}
			repotest.CheckAgainstBroker(t, c, st, m2)
		})
	}
}

// A batch whose CRC-32C does not match its bytes (a damaged log on the
// broker, a flipped bit on the way) fails the backup with an error naming
// the CRC, and no backup is written. The fetcher checks every batch's CRC
// and the segment writer relies on that (AppendChecked): this test fails
// if neither checks.
func TestCorruptBatchFailsBackup(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Topics(1, "orders"))
	c.Produce(t, "orders", 0, records("a", 20)...) // so that the broker's offsets say 0 to 20
	var data []byte
	var bld record.Builder
	for base := int64(0); base < 20; base += 10 {
		h := record.NoProducer
		h.BaseOffset = base
		bld.Reset(data, h, nil)
		for i := 0; i < 10; i++ {
			bld.Append(1700000000000, []byte(fmt.Sprint("k", base+int64(i))), bytes.Repeat([]byte("v"), 100), nil)
		}
		var err error
		if data, _, err = bld.Finish(); err != nil {
			t.Fatal(err)
		}
	}
	data[len(data)-50] ^= 0x40 // inside the second batch's records: its framing is whole, its CRC wrong
	kf := c.Kfake()
	var served atomic.Int32
	kf.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kf.KeepControl()
		r := req.(*kmsg.FetchRequest)
		resp := r.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition, sp.HighWatermark, sp.LastStableOffset = rp.Partition, 20, 20
				if rp.FetchOffset == 0 {
					sp.RecordBatches = data
					served.Add(1)
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	cl := newClient(t, c)
	_, r := openRepo(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err := Run(ctx, cl, r, Options{Compression: "none", SkipGroups: true})
	if err == nil || !strings.Contains(err.Error(), "CRC-32C") {
		t.Fatalf("backup of a corrupt batch: %v, want an error naming its CRC-32C", err)
	}
	if served.Load() == 0 {
		t.Fatal("the corrupt batch was never served")
	}
	if ids, err := r.Backups(context.Background()); err != nil || len(ids) != 0 {
		t.Fatalf("backups after the failure: %v, %v", ids, err)
	}
}
