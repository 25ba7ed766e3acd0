package restore

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktape/ktape/backup"
	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func records(prefix string, n int) []*kgo.Record {
	var out []*kgo.Record
	for i := 0; i < n; i++ {
		r := &kgo.Record{Key: []byte(fmt.Sprintf("%s-%d", prefix, i)), Value: []byte(fmt.Sprintf("value %s %d", prefix, i)),
			Timestamp: time.UnixMilli(1700000000000 + int64(i)*1000)}
		switch i % 4 {
		case 1:
			r.Value = nil
		case 2:
			r.Key = nil
		}
		if i%2 == 0 {
			r.Headers = []kgo.RecordHeader{{Key: "h", Value: []byte(prefix)}, {Key: "n"}}
		}
		out = append(out, r)
	}
	return out
}

// line shows a record's key, value, headers and timestamp.
func line(r *kgo.Record) string {
	return fmt.Sprintf("%s %s %v %d", show(r.Key), show(r.Value), r.Headers, r.Timestamp.UnixMilli())
}

// show quotes b, telling null (a tombstone) from empty.
func show(b []byte) string {
	if b == nil {
		return "null"
	}
	return fmt.Sprintf("%q", b)
}

// committed reads topic with read_committed and returns its records per
// partition as comparable lines.
func committed(t *testing.T, c *kfaketest.Cluster, topic string) map[int32][]string {
	out := map[int32][]string{}
	for _, r := range c.ConsumeAll(t, topic, kgo.ReadCommitted()) {
		out[r.Partition] = append(out[r.Partition], line(r))
	}
	return out
}

// A round trip: data from franz-go (every codec, null keys and values,
// headers, explicit timestamps, committed and aborted transactions), kcat
// and the python clients (kafka-python, confluent-kafka), backed up and restored into a second cluster under a new name:
// read_committed there, every partition holds the same records (key,
// value, headers, timestamp) in the same order as on the source; no
// aborted record, no marker, nothing extra.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := kfaketest.Start(t, kfaketest.Topics(3, "orders"))
	for i, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
		src.ProduceWith(t, kfaketest.ProduceOptions{Compression: codec}, "orders", int32(i%2), records(fmt.Sprint("c", i), 20)...)
	}
	src.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Commit}, "orders", 1, records("committed", 5)...)
	src.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Abort}, "orders", 1, records("aborted", 5)...)
	src.Produce(t, "orders", 1, records("after", 3)...)
	for _, codec := range []string{"none", "lz4", "zstd"} {
		cmd := exec.Command("kcat", "-b", src.Addrs()[0], "-P", "-t", "orders", "-p", "2", "-z", codec, "-K:", "-X", "linger.ms=20")
		cmd.Stdin = strings.NewReader(fmt.Sprintf("k1-%s:v1\nk2-%s:v2\n", codec, codec))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat: %v: %s", err, out)
		}
	}

	// Python clients: kafka-python (gzip, explicit timestamps, a null
	// value, headers) and confluent-kafka (zstd, idempotent).
	for _, script := range []string{`
import sys
from kafka import KafkaProducer
p = KafkaProducer(bootstrap_servers=sys.argv[1], compression_type="gzip", linger_ms=20)
for i in range(6):
    p.send("orders", key=b"py-%d" % i, value=None if i == 3 else b"kafka-python %d" % i, partition=2,
           headers=[("lib", b"kafka-python")], timestamp_ms=1700000100000 + i)
p.flush(30)
`, `
import sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "compression.type": "zstd", "linger.ms": 20, "enable.idempotence": True})
errs = []
for i in range(6):
    p.produce("orders", key=b"ck-%d" % i, value=b"confluent %d" % i, partition=2, headers=[("lib", b"confluent")],
              timestamp=1700000200000 + i, on_delivery=lambda err, msg: errs.append(err) if err else None)
p.flush(30)
if errs: sys.exit("delivery failed: %s" % errs)
`} {
		cmd := exec.Command("/usr/bin/python3", "-c", script, src.Addrs()[0])
		if out, err := cmd.CombinedOutput(); err != nil {
			if os.Getenv("CI") == "" && strings.Contains(string(out), "ModuleNotFoundError") {
				t.Skipf("python Kafka clients not installed (scripts/test.sh installs them): %s", out)
			}
			t.Fatalf("python producer: %v: %s", err, out)
		}
	}

	st, err := storage.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := repo.Open(ctx, st, true)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := client.New(ctx, src.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	m, _, err := backup.Run(ctx, sc, r, backup.Options{SegmentBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}

	dst := kfaketest.Start(t, kfaketest.Topics(1, "unrelated"))
	dc, err := client.New(ctx, dst.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	stats, err := Run(ctx, dc, r, m, Options{Remap: []Remap{{From: regexp.MustCompile(`(.*)`), To: "restored.$1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if stats.TopicsCreated != 1 || stats.Aborted == 0 || stats.Markers != 2 || stats.Undecided != 0 {
		t.Fatalf("stats %+v", stats)
	}
	want, got := committed(t, src, "orders"), committed(t, dst, "restored.orders")
	if p2 := fmt.Sprint(want[2]); !strings.Contains(p2, `"py-3" null`) || !strings.Contains(p2, `"ck-5" "confluent 5"`) {
		t.Fatalf("the python clients' records are missing from the source: %s", p2)
	}
	for p := int32(0); p < 3; p++ {
		if len(want[p]) == 0 || fmt.Sprint(got[p]) != fmt.Sprint(want[p]) {
			t.Fatalf("partition %d: restored %d records, the source has %d, or they differ:\n%v\n%v", p, len(got[p]), len(want[p]), got[p], want[p])
		}
	}
	// Uncommitted reads see no aborted record either: it was not restored.
	for _, rec := range dst.ConsumeAll(t, "restored.orders", kgo.ReadUncommitted()) {
		if strings.HasPrefix(string(rec.Key), "aborted") {
			t.Fatalf("aborted record %q restored", rec.Key)
		}
	}

	// Running the same restore again finds it done and produces nothing.
	remap := []Remap{{From: regexp.MustCompile(`(.*)`), To: "restored.$1"}}
	again, err := Run(ctx, dc, r, m, Options{Remap: remap})
	if err != nil || !again.Complete || again.Batches != 0 || again.ID != stats.ID {
		t.Fatalf("the same restore again: %+v, %v", again, err)
	}
	// A different restore into the same, now full, partitions is refused.
	other := Options{Remap: remap, To: time.UnixMilli(1700000005000)}
	if _, err := Run(ctx, dc, r, m, other); err == nil || !strings.Contains(err.Error(), "already hold records") {
		t.Fatalf("restore into full partitions: %v", err)
	}
	if fmt.Sprint(committed(t, dst, "restored.orders")) != fmt.Sprint(got) {
		t.Fatal("the target changed")
	}
}

// Plan: selection, remapping with capture groups, and names that clash or
// are invalid.
func TestPlan(t *testing.T) {
	m := &repo.Manifest{Topics: []repo.Topic{
		{Name: "orders", PartitionsCount: 1, Partitions: []repo.Partition{{Partition: 0}}},
		{Name: "orders-dlq", PartitionsCount: 1, Partitions: []repo.Partition{{Partition: 0}}},
		{Name: "payments", PartitionsCount: 2, Partitions: []repo.Partition{{Partition: 0}, {Partition: 1}}},
	}}
	re := regexp.MustCompile
	plan := func(o Options) string {
		ts, err := Plan(m, o)
		if err != nil {
			return err.Error()
		}
		var s []string
		for _, t := range ts {
			s = append(s, t.Source.String()+">"+t.Dest.String())
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, "orders/0>orders/0 orders-dlq/0>orders-dlq/0 payments/0>payments/0 payments/1>payments/1"},
		{Options{Topics: []*regexp.Regexp{re("orders.*")}, Exclude: []*regexp.Regexp{re(".*dlq")}}, "orders/0>orders/0"},
		{Options{Topics: []*regexp.Regexp{re("pay.*")}, Remap: []Remap{{re(`(\w+)`), "dr.$1"}}}, "payments/0>dr.payments/0 payments/1>dr.payments/1"},
		{Options{Remap: []Remap{{re(`orders.*`), "all"}}}, "restore: topics orders and orders-dlq would both be restored into all"},
		{Options{Remap: []Remap{{re(`orders`), "bad name"}}}, `restore: topic orders would be restored as "bad name", which is not a valid topic name`},
		{Options{Topics: []*regexp.Regexp{re("nothing")}}, "restore: no topic of the backup matches"},
	} {
		if got := plan(tc.o); got != tc.want {
			t.Errorf("%+v:\n got %s\nwant %s", tc.o, got, tc.want)
		}
	}
}

// A restore interrupted mid-way and run again continues where the target
// ends: every record once, in order.
func TestResume(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kfaketest.Topics(2, "orders"))
	for b := 0; b < 40; b++ {
		codec := []kgo.CompressionCodec{kgo.NoCompression(), kgo.ZstdCompression()}[b%2]
		recs := records(fmt.Sprint("b", b), 20)
		for i, r := range recs {
			r.Value = append(r.Value, strings.Repeat(fmt.Sprint(i), 1000)...)
		}
		e.src.ProduceWith(t, kfaketest.ProduceOptions{Compression: codec}, "orders", int32(b%2), recs...)
	}
	m := e.backup(t)
	to := time.UnixMilli(1700000015000)
	opts := Options{Remap: []Remap{{regexp.MustCompile("orders"), "copy"}}, To: to}
	// Slowed to ~100 KB/s and interrupted after a second: part restored.
	slow := opts
	slow.RateLimit = 100 << 10
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	first, err := Run(cctx, e.dc, e.r, m, slow)
	if err == nil || first.Batches == 0 {
		t.Fatalf("the interrupted restore: %+v, %v", first, err)
	}
	second, err := Run(ctx, e.dc, e.r, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Resumed || second.AlreadyRestored < first.Batches || second.ID != first.ID || second.Batches == 0 {
		t.Fatalf("resumed restore %+v after %+v", second, first)
	}
	want := map[int32][]string{}
	for _, r := range e.src.ConsumeAll(t, "orders", kgo.ReadCommitted()) {
		if !r.Timestamp.After(to) {
			want[r.Partition] = append(want[r.Partition], line(r))
		}
	}
	got := committed(t, e.dst, "copy")
	for p := int32(0); p < 2; p++ {
		if len(want[p]) != 320 || fmt.Sprint(got[p]) != fmt.Sprint(want[p]) {
			t.Fatalf("partition %d: restored %d records, want %d", p, len(got[p]), len(want[p]))
		}
	}
}

// A restore through a memory budget far smaller than the backup: the read
// buffers are reused over and over (and a framed segment's 4 MiB frames
// are larger than all of them), so a buffer handed back before its
// batches were acknowledged would send some other batch's bytes (the
// pool overwrites what comes back, to make sure of it). Every record
// arrives intact, in each segment framing.
func TestRestoreReusesBuffers(t *testing.T) {
	poisonFreed = true
	defer func() { poisonFreed = false }()
	ctx := context.Background()
	e := newEnv(t, kfaketest.Topics(2, "big"))
	for p, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.Lz4Compression()} {
		var rs []*kgo.Record
		for i := range 3000 {
			v := []byte(strings.Repeat(fmt.Sprintf("p%d record %05d ", p, i), 60))
			rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: v})
		}
		e.src.ProduceWith(t, kfaketest.ProduceOptions{Compression: codec}, "big", int32(p), rs...)
	}
	want := committed(t, e.src, "big")
	for _, framing := range []string{"none", "zstd", "lz4"} {
		m, _, err := backup.Run(ctx, e.sc, e.r, backup.Options{Compression: framing, SegmentBytes: 3 << 20, Full: true})
		if err != nil {
			t.Fatal(err)
		}
		dest := "big-" + framing
		st, err := Run(ctx, e.dc, e.r, m, Options{Memory: 2 << 20, Remap: []Remap{{From: regexp.MustCompile(`big`), To: dest}}})
		if err != nil {
			t.Fatalf("%s: %v", framing, err)
		}
		got := committed(t, e.dst, dest)
		for p := int32(0); p < 2; p++ {
			if len(got[p]) != 3000 || fmt.Sprint(got[p]) != fmt.Sprint(want[p]) {
				t.Fatalf("%s: partition %d: %d records restored of %d, or they differ (stats %+v)", framing, p, len(got[p]), len(want[p]), st)
			}
		}
	}
}

// A damaged segment stops the restore with an error that names it, in
// each framing, wherever the damage is: in a record (the CRC-32C), in a
// base offset (outside the CRC, but checked against the index), in a
// compressed frame.
func TestRestoreRefusesDamage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		framing string
		at      func(seg []byte) int // the byte flipped
		want    string
	}{
		{"none", func(seg []byte) int { return len(seg) - 10 }, "CRC-32C"},
		{"none", func(seg []byte) int { return 7 }, "does not match its index entry"},
		{"zstd", func(seg []byte) int { return len(seg) / 2 }, "segment"},
	} {
		t.Run(tc.framing+" "+tc.want, func(t *testing.T) {
			e := newEnv(t, kfaketest.Topics(1, "t"))
			e.src.Produce(t, "t", 0, records("r", 50)...)
			m, _, err := backup.Run(ctx, e.sc, e.r, backup.Options{Compression: tc.framing})
			if err != nil {
				t.Fatal(err)
			}
			key := m.Topics[0].Partitions[0].Segments[0].Key
			path := e.dir + "/" + key
			seg, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			seg[tc.at(seg)] ^= 0x40
			if err := os.WriteFile(path, seg, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = Run(ctx, e.dc, e.r, m, Options{})
			if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("restore of a damaged segment: %v; want an error naming %s and saying %q", err, key, tc.want)
			}
		})
	}
}

// A finished restore whose target topic was deleted since is not "done":
// the same command restores it again (the topic created again has a new
// topic id, so it is a new restore), rather than report success over an
// empty topic.
func TestRestoreAfterTopicDeleted(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kfaketest.Topics(1, "t"))
	e.src.Produce(t, "t", 0, records("r", 30)...)
	m := e.backup(t)
	first, err := Run(ctx, e.dc, e.r, m, Options{})
	if err != nil || first.Records != 30 {
		t.Fatalf("first restore: %+v, %v", first, err)
	}
	if again, err := Run(ctx, e.dc, e.r, m, Options{}); err != nil || !again.Complete || again.ID != first.ID {
		t.Fatalf("the same restore again: %+v, %v", again, err)
	}
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TopicNames = []string{"t"}
	req.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr("t")}}
	resp, err := req.RequestWith(ctx, e.dst.Client(t))
	if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("delete the target topic: %+v, %v", resp, err)
	}
	third, err := Run(ctx, e.dc, e.r, m, Options{})
	if err != nil || third.Complete || third.ID == first.ID || third.Records != 30 || third.TopicsCreated != 1 {
		t.Fatalf("restore after the target topic was deleted: %+v, %v", third, err)
	}
	if got, want := committed(t, e.dst, "t"), committed(t, e.src, "t"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restored %v, want %v", got, want)
	}
	// Without topic ids, a restore found done is checked against the
	// target's end offsets.
	targets := []client.TopicPartition{{Topic: "t", Partition: 0}}
	done := &repo.RestoreDone{ID: "x", Partitions: []repo.RestoredPartition{{Topic: "t", Partition: 0, End: 30}}}
	if err := checkDone(ctx, e.dc, done, targets); err != nil {
		t.Fatalf("a target holding the restore: %v", err)
	}
	done.Partitions[0].End = 31
	if err := checkDone(ctx, e.dc, done, targets); err == nil || !strings.Contains(err.Error(), "deleted or truncated") {
		t.Fatalf("a target ending before the restore did: %v", err)
	}
}

// The observer hears of every partition planned, of every batch
// acknowledged, and of each partition's end.
func TestObserver(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, kfaketest.Topics(2, "t"))
	e.src.Produce(t, "t", 0, records("a", 40)...)
	e.src.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Abort}, "t", 1, records("b", 5)...)
	e.src.Produce(t, "t", 1, records("c", 7)...)
	m := e.backup(t)
	obs := &recorder{next: map[client.TopicPartition]int64{}, to: map[client.TopicPartition]int64{}}
	st, err := Run(ctx, e.dc, e.r, m, Options{Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.batches != st.Batches || obs.records != st.Records || obs.bytes != st.Bytes || obs.records != 47 {
		t.Fatalf("observed %d batches, %d records, %d bytes; stats %+v", obs.batches, obs.records, obs.bytes, st)
	}
	if len(obs.to) != 2 || fmt.Sprint(obs.next) != fmt.Sprint(obs.to) {
		t.Fatalf("partitions end at %v, planned to %v", obs.next, obs.to)
	}
}

type recorder struct {
	mu                      sync.Mutex
	next, to                map[client.TopicPartition]int64
	batches, records, bytes int64
}

func (r *recorder) Planned(p PartitionPlan) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.to[p.Source] = p.To
}

func (r *recorder) Restored(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next[e.Source] = max(r.next[e.Source], e.Next)
	r.batches += e.Batches
	r.records += e.Records
	r.bytes += e.Bytes
}
