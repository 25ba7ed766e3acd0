package sink

import (
	"fmt"
	"hash/crc32"
	"net"
	"strings"

	"github.com/ktape/ktape/record"
)

// Options configure a Server started in-process. Zero values are defaults.
type Options struct {
	// Partitions of every topic created by Metadata or Topics
	// (16).
	Partitions int
	// Verify CRC-checks every batch and keeps a digest of each partition
	// (see DigestBatch), so that a test can prove what arrived.
	Verify bool
	// Topics exist from the start.
	Topics []string
	// NoAutoCreate answers Metadata for an unknown topic with
	// UNKNOWN_TOPIC_OR_PARTITION.
	NoAutoCreate bool
}

// Server is a sink serving in the caller's process, for tests that must
// look at what it received partition by partition (a load test proving
// that a restore lost and duplicated nothing). Run is the same sink as a
// command.
type Server struct {
	s    *sink
	addr string
	done chan error
}

// Start serves a sink on a loopback port until Close.
func Start(o Options) (*Server, error) {
	if o.Partitions == 0 {
		o.Partitions = defaultPartitions
	}
	cfg := config{Partitions: o.Partitions, Verify: o.Verify, NoAutoCreate: o.NoAutoCreate, MaxFrame: defaultMaxFrame}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sink: listen: %w", err)
	}
	s := newSink(cfg)
	for _, t := range o.Topics {
		if t = strings.TrimSpace(t); t != "" {
			s.topics.create(t, cfg.Partitions)
		}
	}
	srv := &Server{s: s, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { srv.done <- s.serve(ln) }()
	return srv, nil
}

// Addr is the address the sink listens on (host:port).
func (s *Server) Addr() string { return s.addr }

// Totals are the counters so far.
func (s *Server) Totals() Totals { return s.s.totals() }

// PartitionTotals are what one partition received.
type PartitionTotals struct {
	// Records is the partition's next offset: the records acknowledged.
	Records int64
	// Batches is the number of batches acknowledged.
	Batches int64
	// Digest chains DigestBatch over the partition's batches in offset
	// order (only with Verify; else 0).
	Digest uint32
}

// Partitions returns what each partition of topic received, or nil if the
// sink does not know the topic.
func (s *Server) Partitions(topic string) []PartitionTotals {
	t := s.s.topics.lookupName([]byte(topic))
	if t == nil {
		return nil
	}
	out := make([]PartitionTotals, len(t.next))
	for p := range out {
		ps := &t.parts[p]
		ps.mu.Lock()
		out[p] = PartitionTotals{Records: t.next[p].Load(), Batches: ps.batches, Digest: ps.digest}
		ps.mu.Unlock()
	}
	return out
}

// Close stops the sink, closes its connections and waits for them; it
// returns the error that stopped serving, if any other than Close.
func (s *Server) Close() error {
	s.s.close()
	return <-s.done
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DigestBatch adds batch b to a partition's running digest d (0 to
// start). It covers what a restore must carry unchanged: the last offset
// delta, both timestamps, the record count and the records (compressed as
// they are); and not what a restore rewrites (base offset, leader epoch,
// attributes' transactional bit, producer id, epoch and sequence, CRC).
// Chained over a partition's batches in order, equal digests and record
// counts say that no batch was lost, duplicated, reordered or altered (a
// CRC-32C: collisions are possible, but not from the kinds of damage a
// load test looks for, with any real likelihood). Batches shorter than a
// v2 header are digested whole.
func DigestBatch(d uint32, b record.Batch) uint32 {
	const (
		lastOffsetDeltaAt = 23 // through maxTimestamp, to 43
		maxTimestampEnd   = 43
		recordCountAt     = 57 // the record count, then the records
	)
	if len(b) < recordCountAt+4 {
		return crc32.Update(d, castagnoli, b)
	}
	d = crc32.Update(d, castagnoli, b[lastOffsetDeltaAt:maxTimestampEnd])
	return crc32.Update(d, castagnoli, b[recordCountAt:])
}
