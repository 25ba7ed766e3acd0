// Package source is a Kafka broker for backup and consumer benchmarks: it
// holds one generated topic's record batches in memory and serves them so
// cheaply that what a benchmark measures is the client reading them.
//
// It is built only on ktape's own layers (packages protocol, protocol/api
// and record). A Fetch response is written with one vectored write
// (net.Buffers, writev): the response envelope is encoded by the protocol
// engine, and each batch goes to the socket straight from the topic's
// memory, uncopied, behind an 8-byte base offset written for it (the base
// offset lies outside a v2 batch's CRC, so the same batch bytes can stand
// at many offsets; see TopicConfig.PoolBytes).
//
// It answers, on one goroutine per connection with pipelined requests
// answered in order:
//
//   - ApiVersions: the versions below, which are every version ktape
//     declares except where noted (KIP-511 fallback at v0 for a newer
//     ApiVersions than ktape knows).
//   - Metadata: this broker (node 1) and the one topic, all partitions led
//     by it; other topics named are UNKNOWN_TOPIC_OR_PARTITION.
//   - ListOffsets v1+: earliest (-2, -4, -5) is 0, latest (-1) the high
//     watermark, max-timestamp (-3) the last offset; a timestamp finds the
//     first record at or after it.
//   - Fetch v4+: whole batches from the batch holding the fetch offset,
//     within PartitionMaxBytes and MaxBytes (the first batch of a response
//     is always sent, as KIP-74 requires). Fetch sessions are not kept: a
//     request for a new session gets session id 0, which means "none", and
//     an incremental fetch gets FETCH_SESSION_ID_NOT_FOUND. The topic never
//     grows, so a fetch finding no data waits only min(MaxWaitMs,
//     ServerConfig.IdleWait) instead of its whole MaxWaitMs: a client
//     learns it is at the end after one round trip.
//   - DescribeConfigs: every resource with no configs; DescribeCluster:
//     this broker; ListGroups: none; FindCoordinator: this broker;
//     OffsetFetch: no committed offsets. These are what ktape backup asks
//     around the data (topic configs, consumer groups).
//   - JoinGroup, SyncGroup, Heartbeat, LeaveGroup, only when
//     ServerConfig.Groups names a broker: each request frame is forwarded
//     untouched to that broker (over one connection per client
//     connection, so a JoinGroup held by the coordinator holds only the
//     connection that sent it, as in Kafka) and its answer returned as is.
//     Writing a group coordinator here would mean a second, untested one;
//     the bench/workers harness forwards to franz-go's kfake, whose
//     coordinator ktape's group tests run against, while the data still
//     comes from this server's memory.
//
// Any other request is logged and its connection closed; so is a malformed
// frame.
package source

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ktape/ktape/protocol"
)

// Defaults of ServerConfig.
const (
	// DefaultMaxFrame is Kafka's default socket.request.max.bytes.
	DefaultMaxFrame = 100 << 20
	// DefaultIdleWait bounds the wait of a fetch that finds nothing.
	DefaultIdleWait = 10 * time.Millisecond
	// readBufSize is each connection's bufio reader.
	readBufSize = 64 << 10
)

// ServerConfig configures a Server. Zero values are defaults.
type ServerConfig struct {
	MaxFrame int           // largest request accepted (DefaultMaxFrame)
	IdleWait time.Duration // see the package doc (DefaultIdleWait; negative: none)
	Log      *slog.Logger  // errors; nil discards them
	// FetchDelay holds every Fetch this long before it is answered, and
	// PartitionMaxBytes (when positive) lowers every partition's limit
	// in it: together they make a small topic take seconds to read, for
	// tests that must act while a client is part-way.
	FetchDelay        time.Duration
	PartitionMaxBytes int
	// Groups is the address of a broker that answers the group
	// membership APIs (see the package doc); "" refuses them.
	Groups string
}

// Stats are a Server's counters.
type Stats struct {
	Requests int64 `json:"requests"` // every request answered
	Fetches  int64 `json:"fetches"`  // Fetch requests answered
	Batches  int64 `json:"batches"`  // batches served
	Bytes    int64 `json:"bytes"`    // batch bytes served
	Errors   int64 `json:"errors"`   // connections closed on a bad or unsupported request
}

// Server serves one Topic on any number of listeners. Its methods are safe
// for concurrent use.
type Server struct {
	topic  *Topic
	cfg    ServerConfig
	marker []byte // stands in for records fields while a response is encoded

	requests, fetches, batches, bytes, errors atomic.Int64

	mu     sync.Mutex
	lns    map[net.Listener]struct{}
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewServer returns a server of t.
func NewServer(t *Topic, cfg ServerConfig) (*Server, error) {
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	if cfg.MaxFrame < 1<<10 {
		return nil, fmt.Errorf("source: largest request %d bytes: want at least 1024", cfg.MaxFrame)
	}
	if cfg.IdleWait == 0 {
		cfg.IdleWait = DefaultIdleWait
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{topic: t, cfg: cfg, marker: make([]byte, markerLen),
		lns: map[net.Listener]struct{}{}, conns: map[net.Conn]struct{}{}}
	// A random marker cannot be mistaken for the bytes around it (see
	// splice), whatever the topic's name or the offsets are.
	if _, err := rand.Read(s.marker); err != nil {
		return nil, fmt.Errorf("source: random marker: %w", err)
	}
	return s, nil
}

// Topic is the served topic.
func (s *Server) Topic() *Topic { return s.topic }

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	return Stats{Requests: s.requests.Load(), Fetches: s.fetches.Load(), Batches: s.batches.Load(),
		Bytes: s.bytes.Load(), Errors: s.errors.Load()}
}

// Serve accepts connections on ln until ln or the server is closed,
// serving each on its own goroutine. It returns nil after Close, else the
// error that stopped Accept.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			delete(s.lns, ln)
			s.mu.Unlock()
			if closed {
				return nil
			}
			return fmt.Errorf("source: accept on %s: %w", ln.Addr(), err)
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

// Close stops every listener and connection and waits for the connection
// goroutines to end.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// conn is one connection's reusable state, owned by its goroutine.
type conn struct {
	c       net.Conn
	in      []byte      // the current request frame
	out     []byte      // the encoded response (a Fetch's envelope)
	glue    []byte      // a Fetch's bytes between batches: length prefixes, base offsets
	bufs    net.Buffers // the segments of the response being written
	plan    []partPlan  // a Fetch's partitions, in response order
	dec     protocol.Decoder
	client  string // client id of the last request, for logs
	localIP string
	port    int32
	// up is the connection to ServerConfig.Groups, dialled at the first
	// group request; upR reads it into upIn, and fwd holds its last
	// answer, size prefix included.
	up   net.Conn
	upR  *bufio.Reader
	upIn []byte
	fwd  []byte
}

// handle serves one connection: read a request, answer it, repeat.
func (s *Server) handle(c net.Conn) {
	st := &conn{c: c, in: make([]byte, 0, 64<<10)}
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		st.localIP, st.port = a.IP.String(), int32(a.Port)
	}
	defer func() {
		if st.up != nil {
			st.up.Close()
			s.mu.Lock()
			delete(s.conns, st.up)
			s.mu.Unlock()
		}
	}()
	r := bufio.NewReaderSize(c, readBufSize)
	for {
		frame, err := protocol.ReadFrame(r, st.in, s.cfg.MaxFrame)
		if cap(frame) > cap(st.in) {
			st.in = frame[:0]
		}
		if err != nil {
			// A reset is a client that went away without closing (one
			// killed, as bench/workers does on purpose), not a bad request.
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
				s.errors.Add(1)
				s.cfg.Log.Error("read request", "remote", c.RemoteAddr().String(), "client", st.client, "err", err)
			}
			return
		}
		st.bufs = st.bufs[:0]
		if err := s.dispatch(st, frame); err != nil {
			s.errors.Add(1)
			s.cfg.Log.Error("closing connection", "remote", c.RemoteAddr().String(), "client", st.client, "err", err)
			return
		}
		if len(st.bufs) == 0 {
			continue
		}
		// WriteTo consumes the slice it is called on: write from a copy
		// of the header so that st.bufs keeps its capacity.
		bufs := st.bufs
		if _, err := bufs.WriteTo(c); err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.cfg.Log.Error("write response", "remote", c.RemoteAddr().String(), "client", st.client, "err", err)
			}
			return
		}
		clear(st.bufs) // drop references to the topic's memory
	}
}
