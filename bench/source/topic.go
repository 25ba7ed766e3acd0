package source

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ktape/ktape/record"
)

// Defaults of TopicConfig.
const (
	DefaultTopic      = "bench"
	DefaultValueBytes = 1024
	DefaultKeyBytes   = 8
	DefaultBatchBytes = 64 << 10
	DefaultPoolBytes  = 64 << 20
)

// TopicConfig describes the topic to generate. Zero values are defaults.
type TopicConfig struct {
	Name       string // DefaultTopic
	Partitions int    // 1
	// Bytes is the size of the topic's record batches, summed over every
	// partition: each partition gets batches until it holds at least
	// Bytes/Partitions bytes. Compressed batches are smaller, so an lz4
	// topic of the same Bytes holds more records.
	Bytes int64
	// ValueBytes and KeyBytes size every record (DefaultValueBytes,
	// DefaultKeyBytes). A key is the big-endian number of the record in
	// the pool, cut or zero-padded to KeyBytes.
	ValueBytes int
	KeyBytes   int
	// BatchBytes is how many bytes of records (uncompressed, as the
	// Builder writes them) make a batch: every batch holds the same number
	// of records, so an offset's batch is found by division.
	BatchBytes int
	Codec      record.Codec
	// PoolBytes bounds the distinct batches generated (uncompressed
	// record bytes): the partitions' logs are made of these batches,
	// reused cyclically with their base offsets rewritten on the wire, so
	// that a topic of many GiB costs no more memory or start-up time than
	// the pool. A pool at least as large as the topic makes every batch
	// distinct.
	PoolBytes int64
	// Seed varies the generated values; the same seed gives the same bytes.
	Seed uint64
}

func (c *TopicConfig) withDefaults() (TopicConfig, error) {
	o := *c
	if o.Name == "" {
		o.Name = DefaultTopic
	}
	if o.Partitions == 0 {
		o.Partitions = 1
	}
	if o.ValueBytes == 0 {
		o.ValueBytes = DefaultValueBytes
	}
	if o.KeyBytes == 0 {
		o.KeyBytes = DefaultKeyBytes
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.PoolBytes == 0 {
		o.PoolBytes = DefaultPoolBytes
	}
	switch {
	case o.Partitions < 1 || o.Partitions > 1<<16:
		return o, fmt.Errorf("source: %d partitions: want 1 to %d", o.Partitions, 1<<16)
	case o.Bytes < 1:
		return o, fmt.Errorf("source: topic of %d bytes: want at least 1", o.Bytes)
	case o.ValueBytes < 0 || o.ValueBytes > 16<<20:
		return o, fmt.Errorf("source: values of %d bytes: want 0 to 16 MiB", o.ValueBytes)
	case o.KeyBytes < 0 || o.KeyBytes > 1<<10:
		return o, fmt.Errorf("source: keys of %d bytes: want 0 to 1024", o.KeyBytes)
	case o.BatchBytes < 1 || o.BatchBytes > 64<<20:
		return o, fmt.Errorf("source: batches of %d bytes: want 1 to 64 MiB", o.BatchBytes)
	case o.PoolBytes < 1:
		return o, fmt.Errorf("source: pool of %d bytes: want at least 1", o.PoolBytes)
	case o.Codec < record.None || o.Codec > record.Zstd:
		return o, fmt.Errorf("source: unknown codec %d", o.Codec)
	}
	return o, nil
}

// Topic is a generated topic: a pool of distinct, CRC-valid v2 batches,
// and per partition the order in which they make up its log. It is
// immutable once generated and safe for concurrent use.
type Topic struct {
	cfg  TopicConfig
	id   [16]byte
	perB int64 // records per batch
	// pool holds the distinct batches, back to back; batch j is
	// pool[ends[j-1]:ends[j]]. Their base offsets are 0: the real one
	// is written in front of each copy served.
	pool  []byte
	ends  []int
	parts []partLayout
	// timestamp is the first record's; record n of the pool has
	// timestamp+n ms.
	timestamp int64
}

// partLayout is one partition's log: batch i is pool batch
// (i+shift) mod len(ends), with base offset i*perB.
type partLayout struct {
	batches int
	shift   int
	bytes   int64
}

// Generate builds the topic c describes.
func Generate(c TopicConfig) (*Topic, error) {
	cfg, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	recSize := recordSizeEstimate(cfg.KeyBytes, cfg.ValueBytes)
	perB := max(1, cfg.BatchBytes/recSize)
	t := &Topic{cfg: cfg, id: topicID(cfg.Name), perB: int64(perB), timestamp: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()}
	if err := t.generatePool(int64(perB * recSize)); err != nil {
		return nil, err
	}
	// Lay out each partition until it holds its share of the bytes. With
	// a pool smaller than the topic, partitions start at different pool
	// batches, so that they do not carry identical data.
	share := (cfg.Bytes + int64(cfg.Partitions) - 1) / int64(cfg.Partitions)
	t.parts = make([]partLayout, cfg.Partitions)
	for p := range t.parts {
		l := &t.parts[p]
		l.shift = p * len(t.ends) / cfg.Partitions
		for l.bytes < share {
			l.bytes += int64(t.poolBatchLen(t.poolIndex(p, l.batches)))
			l.batches++
		}
	}
	return t, nil
}

// recordSizeEstimate is a record's encoded size in a batch, close enough
// to size batches: length, attributes, deltas, key, value and header count.
func recordSizeEstimate(key, value int) int { return 1 + 1 + 4 + 3 + 3 + key + 3 + value + 1 }

// generatePool builds distinct batches until they hold PoolBytes of
// records (batchRecBytes per batch), or until they are as large as the
// topic: more would never be served.
func (t *Topic) generatePool(batchRecBytes int64) error {
	n := int(max(1, min(t.cfg.PoolBytes/batchRecBytes, 1<<30)))
	var (
		b     record.Builder
		z     record.Compressor
		key   = make([]byte, t.cfg.KeyBytes)
		value = make([]byte, t.cfg.ValueBytes)
		h     = record.NoProducer
	)
	h.Codec = t.cfg.Codec
	t.ends = make([]int, 0, min(n, 1<<16))
	for j := range n {
		b.Reset(t.pool, h, &z)
		for k := range t.perB {
			rec := int64(j)*t.perB + k
			t.fillRecord(rec, key, value)
			b.Append(t.timestamp+rec, key, value, nil)
		}
		out, batch, err := b.Finish()
		if err != nil {
			return fmt.Errorf("source: building pool batch %d of %d: %w", j, n, err)
		}
		if err := batch.Validate(); err != nil {
			return fmt.Errorf("source: pool batch %d: %w", j, err)
		}
		t.pool = out
		t.ends = append(t.ends, len(out))
		if int64(len(out)) >= t.cfg.Bytes {
			break
		}
	}
	return nil
}

// Record writes the key and value of the record at offset of partition p
// into key and value (sized KeyBytes and ValueBytes), as consumers must
// read them back. It is what tests compare against.
func (t *Topic) Record(p int, offset int64, key, value []byte) {
	i := offset / t.perB
	j := t.poolIndex(p, int(i))
	t.fillRecord(int64(j)*t.perB+offset%t.perB, key, value)
}

// words make values look like log lines: they compress about as well as
// real text does, unlike random bytes (which do not compress) or a
// repeated pattern (which compresses to nothing).
var words = []string{
	"GET", "POST", "PUT", "DELETE", "/api/v1/orders", "/api/v1/users", "/api/v2/cart", "/health",
	"status=200", "status=201", "status=404", "status=500", "level=info", "level=warn", "level=error", "level=debug",
	"user", "session", "request", "response", "latency_ms", "bytes", "region=eu-west-1", "region=us-east-2",
	"checkout", "payment", "accepted", "declined", "retrying", "timeout", "connection", "reset",
	"cache", "hit", "miss", "db.query", "select", "insert", "update", "commit",
	"trace_id", "span_id", "service=orders", "service=billing", "service=auth", "host=node-17", "host=node-42", "pod=web-7f9c",
}

// fillRecord writes pool record rec's key and value.
func (t *Topic) fillRecord(rec int64, key, value []byte) {
	var num [8]byte
	binary.BigEndian.PutUint64(num[:], uint64(rec))
	if len(key) >= 8 {
		clear(key[:len(key)-8])
		copy(key[len(key)-8:], num[:])
	} else {
		copy(key, num[8-len(key):])
	}
	rng := rand.New(rand.NewPCG(t.cfg.Seed, uint64(rec)))
	v := value[:0]
	for len(v) < len(value) {
		w := words[rng.IntN(len(words))]
		v = append(v, w...)
		// A number after most words, as log lines have: ids, counts and
		// durations are what keeps text from compressing to nothing.
		if rng.IntN(3) != 0 {
			v = append(v, '=')
			v = appendUint(v, rng.Uint32()>>uint(rng.IntN(24)))
		}
		v = append(v, ' ')
	}
	copy(value, v[:len(value)])
}

func appendUint(dst []byte, x uint32) []byte {
	var buf [10]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + x%10)
		x /= 10
		if x == 0 {
			break
		}
	}
	return append(dst, buf[i:]...)
}

// topicID derives a stable, non-zero topic id from the name.
func topicID(name string) [16]byte {
	sum := sha256.Sum256([]byte("ktape bench source topic " + name))
	var id [16]byte
	copy(id[:], sum[:])
	id[0] |= 1
	return id
}

func (t *Topic) poolIndex(p, i int) int { return (i + t.parts[p].shift) % len(t.ends) }

func (t *Topic) poolBatchLen(j int) int { return len(t.poolBatch(j)) }

// poolBatch is pool batch j, base offset 0.
func (t *Topic) poolBatch(j int) []byte {
	start := 0
	if j > 0 {
		start = t.ends[j-1]
	}
	return t.pool[start:t.ends[j]:t.ends[j]]
}

// Name is the topic's name.
func (t *Topic) Name() string { return t.cfg.Name }

// ID is the topic's id (Metadata v10+, Fetch v13+).
func (t *Topic) ID() [16]byte { return t.id }

// Config is the configuration the topic was generated with, defaults
// filled in.
func (t *Topic) Config() TopicConfig { return t.cfg }

// NumPartitions is the partition count.
func (t *Topic) NumPartitions() int { return len(t.parts) }

// RecordsPerBatch is the number of records in every batch.
func (t *Topic) RecordsPerBatch() int64 { return t.perB }

// HighWatermark is partition p's end offset; its log starts at 0.
func (t *Topic) HighWatermark(p int) int64 { return int64(t.parts[p].batches) * t.perB }

// NumBatches is the number of batches of partition p.
func (t *Topic) NumBatches(p int) int { return t.parts[p].batches }

// PartitionBytes is the size of partition p's batches.
func (t *Topic) PartitionBytes(p int) int64 { return t.parts[p].bytes }

// Totals sums the partitions.
func (t *Topic) Totals() (records, batches, bytes int64) {
	for p := range t.parts {
		records += t.HighWatermark(p)
		batches += int64(t.parts[p].batches)
		bytes += t.parts[p].bytes
	}
	return records, batches, bytes
}

// PoolBatches and PoolBytes describe the distinct batches held in memory.
func (t *Topic) PoolBatches() int { return len(t.ends) }

// PoolBytes is the memory the distinct batches take.
func (t *Topic) PoolBytes() int { return len(t.pool) }

// Batch returns batch i of partition p as it is served: its base offset,
// and the batch's bytes after the base offset (shared, read-only).
func (t *Topic) Batch(p, i int) (baseOffset int64, rest []byte) {
	return int64(i) * t.perB, t.poolBatch(t.poolIndex(p, i))[8:]
}

// AppendBatch appends a copy of batch i of partition p, base offset
// included, to dst: for loading another broker with the same data.
func (t *Topic) AppendBatch(dst []byte, p, i int) []byte {
	base, rest := t.Batch(p, i)
	dst = binary.BigEndian.AppendUint64(dst, uint64(base))
	return append(dst, rest...)
}
