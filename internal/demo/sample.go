package demo

// sample.go: the sample data the demo writes into its cluster, chosen to
// cover what a backup must keep: every codec, keys and null keys, null,
// empty and large values, headers (empty and null ones too), interleaved
// committed and aborted transactions, deleted records, empty partitions,
// topic configs and consumer-group offsets.

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The sample's topics.
var (
	// codecTopics get most records, each topic in one codec.
	codecTopics = []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"codec.none", kgo.NoCompression()},
		{"codec.gzip", kgo.GzipCompression()},
		{"codec.snappy", kgo.SnappyCompression()},
		{"codec.lz4", kgo.Lz4Compression()},
		{"codec.zstd", kgo.ZstdCompression()},
	}
	codecPartitions = 3
)

const (
	// txnTopic gets transactions on partitions 0 and 1; partition 2 is
	// never written.
	txnTopic      = "txn"
	txnPartitions = 3
	txnRounds     = 4 // each: one committed transaction, and one committed or aborted
	// gapTopic's partition 0 loses its first half to DeleteRecords, and
	// partition 1 everything.
	gapTopic      = "gap"
	gapPartitions = 2
	// Every topic is created with this config, which the backup must
	// record.
	retentionKey   = "retention.ms"
	retentionValue = "604800000" // a week
	// The consumer groups that commit offsets.
	billingGroup = "demo-billing" // half way through every codec partition
	auditGroup   = "demo-audit"   // at the end of txn and gap partitions
	// maxBatchBytes caps the producers' batches (before compression), so
	// that a partition has many batches rather than a few of kgo's
	// default megabyte; the largest record (64 KiB of value) still fits.
	maxBatchBytes = 128 << 10
)

// sample is what the demo wrote, as the producer saw it acknowledged:
// the expectations the backup is checked against.
type sample struct {
	topics     map[string]int32                // name → partitions
	configs    map[string]map[string]string    // topic → configs set
	ends       map[client.TopicPartition]int64 // last acknowledged offset + 1 (a marker may follow)
	records    int64                           // data records acknowledged, aborted ones included
	bytes      int64                           // their keys, values and headers
	committed  int                             // transactions
	aborted    int
	markers    int64 // control records the transactions wrote
	deleted    int64 // records deleted by DeleteRecords
	empty      int   // partitions with no records left
	groups     map[string]map[client.TopicPartition]client.GroupOffset
	groupCount int // offsets committed, all groups
}

// split divides n records among the sample's parts: most to the codec
// topics, a fifth to transactions, a tenth to the gap topic; each part
// gets at least enough that every transaction writes to both partitions
// and every partition gets records.
func split(n int) (perCodecTopic, txn, gap int) {
	txn, gap = max(n/5, 2*4*txnRounds), max(n/10, 2*gapPartitions)
	perCodecTopic = max((n-txn-gap)/len(codecTopics), codecPartitions)
	return perCodecTopic, txn, gap
}

// populate creates the sample topics in the cluster and writes the sample
// through kgo producers (admin calls through ktape's client c). n is the
// approximate number of records.
func populate(ctx context.Context, c *client.Client, seeds []string, n int) (*sample, error) {
	s := &sample{topics: map[string]int32{}, configs: map[string]map[string]string{},
		ends: map[client.TopicPartition]int64{}, groups: map[string]map[client.TopicPartition]client.GroupOffset{}}
	var specs []client.TopicSpec
	for _, t := range codecTopics {
		s.topics[t.name] = int32(codecPartitions)
	}
	s.topics[txnTopic], s.topics[gapTopic] = txnPartitions, gapPartitions
	for _, name := range slices.Sorted(maps.Keys(s.topics)) {
		s.configs[name] = map[string]string{retentionKey: retentionValue}
		specs = append(specs, client.TopicSpec{Name: name, NumPartitions: s.topics[name], ReplicationFactor: -1, Configs: s.configs[name]})
	}
	for name, err := range c.CreateTopics(ctx, specs) {
		if err != nil {
			return nil, fmt.Errorf("create topic %s: %w", name, err)
		}
	}

	gen := newGenerator(time.Now().Add(-time.Hour))
	perCodec, txnN, gapN := split(n)
	for _, t := range codecTopics {
		rs := gen.records(t.name, perCodec, codecPartitions)
		if err := s.produce(ctx, seeds, t.codec, rs); err != nil {
			return nil, err
		}
	}
	if err := s.transactions(ctx, seeds, gen, txnN); err != nil {
		return nil, err
	}
	if err := s.produce(ctx, seeds, kgo.Lz4Compression(), gen.records(gapTopic, gapN, gapPartitions)); err != nil {
		return nil, err
	}
	s.empty++ // txn/2, never written

	// The gap: half of gap/0 deleted, all of gap/1.
	gap0, gap1 := client.TopicPartition{Topic: gapTopic, Partition: 0}, client.TopicPartition{Topic: gapTopic, Partition: 1}
	before := map[client.TopicPartition]int64{gap0: s.ends[gap0] / 2, gap1: client.Latest}
	for tp, res := range c.DeleteRecords(ctx, before) {
		if res.Err != nil {
			return nil, fmt.Errorf("delete records of %s: %w", tp, res.Err)
		}
		s.deleted += res.LowWatermark
	}
	s.empty++ // gap/1

	// Consumer groups.
	billing := map[client.TopicPartition]client.GroupOffset{}
	for _, t := range codecTopics {
		for p := range int32(codecPartitions) {
			tp := client.TopicPartition{Topic: t.name, Partition: p}
			billing[tp] = client.GroupOffset{Offset: s.ends[tp] / 2, LeaderEpoch: -1, Metadata: "billing v1"}
		}
	}
	audit := map[client.TopicPartition]client.GroupOffset{}
	for _, tp := range []client.TopicPartition{{Topic: txnTopic, Partition: 0}, {Topic: txnTopic, Partition: 1}, gap0} {
		audit[tp] = client.GroupOffset{Offset: s.ends[tp], LeaderEpoch: -1}
	}
	for group, offsets := range map[string]map[client.TopicPartition]client.GroupOffset{billingGroup: billing, auditGroup: audit} {
		res, err := c.CommitGroupOffsets(ctx, group, offsets)
		if err != nil {
			return nil, fmt.Errorf("commit offsets of group %s: %w", group, err)
		}
		for tp, err := range res {
			if err != nil {
				return nil, fmt.Errorf("commit offset of group %s for %s: %w", group, tp, err)
			}
		}
		s.groups[group] = offsets
		s.groupCount += len(offsets)
	}
	return s, nil
}

// acked records what the cluster acknowledged of r.
func (s *sample) acked(r *kgo.Record) {
	tp := client.TopicPartition{Topic: r.Topic, Partition: r.Partition}
	s.ends[tp] = max(s.ends[tp], r.Offset+1)
	s.records++
	s.bytes += int64(len(r.Key) + len(r.Value))
	for _, h := range r.Headers {
		s.bytes += int64(len(h.Key) + len(h.Value))
	}
}

// produce writes rs with an idempotent kgo producer using codec, all at
// once, and fails if any record is not acknowledged.
func (s *sample) produce(ctx context.Context, seeds []string, codec kgo.CompressionCodec, rs []*kgo.Record) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(maxBatchBytes))
	if err != nil {
		return fmt.Errorf("kgo producer: %w", err)
	}
	defer cl.Close()
	var (
		mu    sync.Mutex
		first error
	)
	for _, r := range rs {
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = fmt.Errorf("produce to %s/%d: %w", r.Topic, r.Partition, err)
				}
				return
			}
			s.acked(r)
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	return first
}

// transactions writes about n records to txn/0 and txn/1 in transactions
// of two producers whose transactions interleave in the log: in each
// round producer A commits, and producer B commits or, every other round,
// aborts. Each transaction ends with a marker in both partitions.
func (s *sample) transactions(ctx context.Context, seeds []string, gen *generator, n int) error {
	var cls [2]*kgo.Client
	for i, codec := range []kgo.CompressionCodec{kgo.ZstdCompression(), kgo.NoCompression()} {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerBatchCompression(codec), kgo.ProducerBatchMaxBytes(maxBatchBytes), kgo.TransactionalID(fmt.Sprintf("ktape-demo-%c", 'a'+i)))
		if err != nil {
			return fmt.Errorf("kgo transactional producer: %w", err)
		}
		defer cl.Close()
		cls[i] = cl
	}
	per := n / (2 * txnRounds) // records per transaction
	for round := range txnRounds {
		// A writes, B writes, A writes more: their batches interleave.
		a1, b, a2 := gen.records(txnTopic, per/2, 2), gen.records(txnTopic, per, 2), gen.records(txnTopic, per-per/2, 2)
		commitB := round%2 == 0
		steps := []struct {
			cl *kgo.Client
			rs []*kgo.Record
		}{{cls[0], a1}, {cls[1], b}, {cls[0], a2}}
		for _, cl := range cls {
			if err := cl.BeginTransaction(); err != nil {
				return fmt.Errorf("begin transaction: %w", err)
			}
		}
		for _, st := range steps {
			for _, res := range st.cl.ProduceSync(ctx, st.rs...) {
				if res.Err != nil {
					return fmt.Errorf("produce to %s/%d in a transaction: %w", res.Record.Topic, res.Record.Partition, res.Err)
				}
				s.acked(res.Record)
			}
		}
		for i, commit := range []bool{true, commitB} {
			if err := cls[i].EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
				return fmt.Errorf("end transaction (commit %v): %w", commit, err)
			}
			if commit {
				s.committed++
			} else {
				s.aborted++
			}
			s.markers += 2 // one in each partition written
		}
	}
	return nil
}

// generator makes deterministic sample records: the same n gives the
// same keys, values and headers on every run.
type generator struct {
	rng  *rand.Rand
	ts   time.Time
	seq  int
	text []byte // a pool of words that values are cut from
}

func newGenerator(base time.Time) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(1, 2)), ts: base.Truncate(time.Millisecond)}
	words := []string{"order", "payment", "customer", "shipped", "pending", "refund", "invoice", "EUR", "USD", "warehouse",
		"berlin", "lisbon", "osaka", "quantity", "sku", "total", "discount", "express", "standard", "returned"}
	for len(g.text) < 128<<10 {
		g.text = append(g.text, words[g.rng.IntN(len(words))]...)
		g.text = append(g.text, ' ')
		if g.rng.IntN(8) == 0 {
			g.text = fmt.Appendf(g.text, "%d ", g.rng.IntN(100000))
		}
	}
	return g
}

// records makes n records for topic, spread round robin over partitions
// [0, parts).
func (g *generator) records(topic string, n, parts int) []*kgo.Record {
	rs := make([]*kgo.Record, n)
	for i := range rs {
		g.seq++
		r := &kgo.Record{Topic: topic, Partition: int32(i % parts), Timestamp: g.ts.Add(time.Duration(g.seq) * time.Millisecond)}
		if g.rng.IntN(10) != 0 { // a tenth have no key
			r.Key = fmt.Appendf(nil, "customer-%05d", g.rng.IntN(50000))
		}
		// Value sizes from nothing to 64 KiB, mostly small.
		switch v := g.rng.IntN(100); {
		case v < 8: // null: a tombstone
		case v < 12:
			r.Value = []byte{}
		case v < 50:
			r.Value = g.value(20, 200)
		case v < 85:
			r.Value = g.value(200, 2000)
		case v < 99:
			r.Value = g.value(2000, 10000)
		default:
			r.Value = g.value(10000, 64<<10)
		}
		for h := range g.rng.IntN(4) {
			switch h {
			case 0:
				r.Headers = append(r.Headers, kgo.RecordHeader{Key: "trace-id", Value: fmt.Appendf(nil, "%016x", g.rng.Uint64())})
			case 1:
				r.Headers = append(r.Headers, kgo.RecordHeader{Key: "empty", Value: []byte{}})
			case 2:
				r.Headers = append(r.Headers, kgo.RecordHeader{Key: "null"})
			}
		}
		rs[i] = r
	}
	return rs
}

// value returns between lo and hi bytes of text, a fresh copy.
func (g *generator) value(lo, hi int) []byte {
	n := lo + g.rng.IntN(hi-lo)
	at := g.rng.IntN(len(g.text) - n)
	return append([]byte(nil), g.text[at:at+n]...)
}
