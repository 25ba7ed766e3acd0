package sink

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/record"
)

const (
	defaultPartitions = 16
	// defaultMaxFrame is Kafka's default socket.request.max.bytes.
	defaultMaxFrame = 100 << 20
	// ioBufSize is the size of each connection's bufio reader and writer.
	ioBufSize = 64 << 10
)

// config is the sink's configuration. The zero value is not valid: see
// validate.
type config struct {
	Partitions int  // partitions of topics created by Metadata or -topics
	Verify     bool // CRC-check every batch
	// NoAutoCreate answers Metadata for a topic that does not exist with
	// UNKNOWN_TOPIC_OR_PARTITION instead of creating it.
	NoAutoCreate bool
	MaxFrame     int          // largest request accepted, in bytes
	Log          *slog.Logger // errors; nil discards them
}

func (c *config) validate() error {
	if c.Partitions < 1 || c.Partitions > 1<<20 {
		return fmt.Errorf("-partitions %d: want 1 to %d", c.Partitions, 1<<20)
	}
	if c.MaxFrame < 1<<10 {
		return fmt.Errorf("-max-frame %d: want at least 1024 bytes", c.MaxFrame)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// sink is a fake broker: one per listener. Its methods are safe for
// concurrent use.
type sink struct {
	cfg config

	records, batches, bytes, requests, corrupt atomic.Int64
	producerIDs                                atomic.Int64
	// codecs counts batches by compression codec (attributes bits 0-2:
	// none, gzip, snappy, lz4, zstd).
	codecs [5]atomic.Int64

	topics topicRegistry

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newSink(cfg config) *sink {
	return &sink{cfg: cfg, conns: make(map[net.Conn]struct{})}
}

func (s *sink) totals() Totals {
	t := Totals{
		Records:  s.records.Load(),
		Batches:  s.batches.Load(),
		Bytes:    s.bytes.Load(),
		Requests: s.requests.Load(),
		Corrupt:  s.corrupt.Load(),
		Codecs:   map[string]int64{},
	}
	for c := range s.codecs {
		if n := s.codecs[c].Load(); n > 0 {
			t.Codecs[record.Codec(c).String()] = n
		}
	}
	return t
}

// serve accepts connections on ln until ln is closed (by close or by the
// caller), serving each on its own goroutine. It returns nil after close,
// else the error that stopped Accept.
func (s *sink) serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			return fmt.Errorf("sink: accept on %s: %w", ln.Addr(), err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// close stops accepting, closes every connection and waits for their
// goroutines to end.
func (s *sink) close() {
	s.mu.Lock()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// conn is one client connection's reusable state; it belongs to the
// connection's goroutine.
type conn struct {
	c       net.Conn
	in      []byte // the current request frame; reused
	out     []byte // the current response frame; reused
	dec     protocol.Decoder
	client  string // client id of the last request, for logs
	localIP string
	port    int32
}

// handle serves one connection: read a frame, answer it, and flush the
// answers whenever no further request is already buffered, so pipelined
// requests are answered in order with few writes.
func (s *sink) handle(c net.Conn) {
	st := &conn{c: c, in: make([]byte, 0, 64<<10)}
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		st.localIP, st.port = a.IP.String(), int32(a.Port)
	}
	r := bufio.NewReaderSize(c, ioBufSize)
	w := bufio.NewWriterSize(c, ioBufSize)
	for {
		frame, err := protocol.ReadFrame(r, st.in, s.cfg.MaxFrame)
		if cap(frame) > cap(st.in) {
			st.in = frame[:0]
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.cfg.Log.Error("read request", "remote", c.RemoteAddr().String(), "client", st.client, "err", err)
			}
			return
		}
		out, err := s.dispatch(st, frame, st.out[:0])
		st.out = out[:0]
		if err != nil {
			s.cfg.Log.Error("closing connection", "remote", c.RemoteAddr().String(), "client", st.client, "err", err)
			w.Flush()
			return
		}
		if len(out) > 0 {
			if _, err := w.Write(out); err != nil {
				return
			}
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// topic is one topic the sink has seen: its id and its per-partition next
// offsets and contents.
type topic struct {
	name string
	id   [16]byte
	next []atomic.Int64
	// parts fingerprint what each partition received, in the order the
	// sink appended it (which is the order of the offsets it gave).
	parts []partState
}

// partState is what a partition has received: batch count and content
// digest. mu orders the digest's updates with the offsets given, so that
// the digest describes the partition's log as a broker would hold it.
type partState struct {
	mu      sync.Mutex
	batches int64
	digest  uint32
}

// topicRegistry holds every topic that exists, by name and by id.
type topicRegistry struct {
	mu     sync.RWMutex
	byName map[string]*topic
	byID   map[[16]byte]*topic
	order  []*topic // creation order, for all-topics metadata
}

// lookupName returns the topic named name, or nil.
func (r *topicRegistry) lookupName(name []byte) *topic {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byName[string(name)]
}

// create returns the topic named name, creating it with partitions
// partitions if it does not exist; created says whether it did not.
func (r *topicRegistry) create(name string, partitions int) (t *topic, created bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t = r.byName[name]; t != nil {
		return t, false
	}
	if r.byName == nil {
		r.byName, r.byID = make(map[string]*topic), make(map[[16]byte]*topic)
	}
	t = &topic{name: name, id: topicID([]byte(name)), next: make([]atomic.Int64, partitions), parts: make([]partState, partitions)}
	r.byName[t.name], r.byID[t.id] = t, t
	r.order = append(r.order, t)
	return t, true
}

// lookupID returns the topic with id, or nil.
func (r *topicRegistry) lookupID(id [16]byte) *topic {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byID[id]
}

// all returns every topic seen so far, in creation order.
func (r *topicRegistry) all() []*topic {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]*topic(nil), r.order...)
}

// topicID derives a stable, random-looking, non-zero topic id from a name.
func topicID(name []byte) [16]byte {
	h := sha256.New()
	h.Write([]byte("ktape-sink topic "))
	h.Write(name)
	var id [16]byte
	copy(id[:], h.Sum(nil))
	id[0] |= 1 // never the zero (absent) id
	return id
}
