package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ktape/ktape/protocol"
)

// A Conn is one connection to one broker. Requests are written in the order
// Do is called and several may be in flight at once (pipelining); a broker
// answers the requests of a connection in order, so responses are matched
// to calls first-in first-out and checked by correlation id. Responses are
// read into pooled buffers sized from their length prefix; whoever receives
// a Response releases it.
//
// A Conn is safe for concurrent use. Once it fails (I/O error, timeout,
// protocol violation) it stays failed: every pending and later call gets
// the same *ConnError, and the caller dials a new one.
type Conn struct {
	nc       net.Conn
	addr     string
	clientID []byte
	maxResp  int
	timeout  time.Duration
	pool     *BufferPool

	versions [apiKeyLimit]versionRange // advertised by the broker; set once at dial

	wmu  sync.Mutex // orders correlation ids, queueing and writes
	wbuf []byte     // encoded bytes of the request being written
	bufs [][]byte   // its segments: runs of wbuf and referenced records
	corr int32

	pending chan *call // in flight, in write order; capacity bounds pipelining
	done    chan struct{}
	failed  atomic.Pointer[ConnError]
	once    sync.Once
}

const apiKeyLimit = 128

type versionRange struct {
	min, max int16
	ok       bool
}

type call struct {
	corr     int32
	api      *protocol.API
	version  int16
	deadline time.Time
	result   chan callResult // buffered: the reader never blocks on it
	// state settles who owns the response: whichever of the reader
	// (delivered) and the caller (abandoned) moves it from waiting first.
	state atomic.Int32
}

const (
	callWaiting int32 = iota
	callDelivered
	callAbandoned
)

type callResult struct {
	resp *Response
	err  error
}

// Response is a response read from a broker. Body (and everything decoded
// from it without copying) borrows a pooled buffer: call Release when done
// with it, after which it must not be used.
type Response struct {
	API     *protocol.API
	Version int16
	Body    []byte
	frame   []byte
	pool    *BufferPool
}

// Release returns the response's buffer to its pool. It is safe to call
// once; later calls do nothing.
func (r *Response) Release() {
	if r == nil || r.frame == nil {
		return
	}
	r.pool.Put(r.frame)
	r.frame, r.Body = nil, nil
}

// ConnError is how a connection failed. Calls that fail with one can be
// retried on a new connection: Retriable is true for I/O errors and
// timeouts, false for protocol violations by the broker.
type ConnError struct {
	Addr      string
	Err       error
	Retriable bool
}

func (e *ConnError) Error() string { return fmt.Sprintf("client: connection to %s: %v", e.Addr, e.Err) }
func (e *ConnError) Unwrap() error { return e.Err }

// ErrConnClosed is the cause of a ConnError after Close.
var ErrConnClosed = errors.New("connection closed")

// newConn starts the reader of an established connection.
func newConn(nc net.Conn, addr string, o *connOptions) *Conn {
	c := &Conn{
		nc: nc, addr: addr, clientID: []byte(o.clientID), maxResp: o.maxResponse,
		timeout: o.requestTimeout, pool: o.pool,
		pending: make(chan *call, o.maxInFlight), done: make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// Addr is the broker address the connection was dialled to.
func (c *Conn) Addr() string { return c.addr }

// Err returns the error the connection failed with, or nil while it works.
func (c *Conn) Err() error {
	if e := c.failed.Load(); e != nil {
		return e
	}
	return nil
}

// Close closes the connection; pending calls fail with ErrConnClosed.
func (c *Conn) Close() error {
	c.fail(&ConnError{Addr: c.addr, Err: ErrConnClosed, Retriable: true})
	return nil
}

// fail records the first error, closes the socket and fails pending calls.
func (c *Conn) fail(e *ConnError) {
	c.once.Do(func() {
		c.failed.Store(e)
		close(c.done)
		c.nc.Close()
	})
}

// Do sends r (a request Record) at the given version and waits for the
// response. The broker must answer within the request timeout plus extra
// (a Fetch passes its MaxWaitMs), or the connection fails. The context
// bounds only this caller's wait: if it ends first, Do returns its error
// and the response, when it comes, is released unseen.
func (c *Conn) Do(ctx context.Context, r *protocol.Record, version int16, extra time.Duration) (*Response, error) {
	a := r.Schema().API()
	cl, err := c.send(ctx, r, a, version, extra, true)
	if err != nil {
		return nil, err
	}
	return c.wait(ctx, cl)
}

// Call is a request written to a connection whose response has not been
// waited for yet.
type Call struct {
	c  *Conn
	cl *call
}

// Begin writes r and returns without waiting for the response: requests
// begun one after another on a connection are written, and answered, in
// that order. Wait must be called on the returned Call.
func (c *Conn) Begin(ctx context.Context, r *protocol.Record, version int16, extra time.Duration) (*Call, error) {
	cl, err := c.send(ctx, r, r.Schema().API(), version, extra, true)
	if err != nil {
		return nil, err
	}
	return &Call{c: c, cl: cl}, nil
}

// Wait waits for the response of a begun request, as Do does.
func (k *Call) Wait(ctx context.Context) (*Response, error) { return k.c.wait(ctx, k.cl) }

// DoBody is Do for a request body already encoded at version v (by
// Record.AppendTo, possibly patched in place since): the connection adds
// the size and header and writes body from the caller's memory.
func (c *Conn) DoBody(ctx context.Context, a *protocol.API, v int16, body []byte, extra time.Duration) (*Response, error) {
	cl, err := c.sendBody(ctx, a, v, body, extra)
	if err != nil {
		return nil, err
	}
	return c.wait(ctx, cl)
}

func (c *Conn) sendBody(ctx context.Context, a *protocol.API, v int16, body []byte, extra time.Duration) (*call, error) {
	return c.write(ctx, a, v, extra, true, func(corr int32) error {
		h := protocol.RequestHeader{APIKey: a.Key, APIVersion: v, CorrelationID: corr, ClientID: c.clientID}
		buf := append(c.wbuf[:0], 0, 0, 0, 0)
		buf = h.AppendTo(buf, a.RequestHeaderVersion(v))
		binary.BigEndian.PutUint32(buf, uint32(len(buf)-4+len(body)))
		c.wbuf, c.bufs = buf, append(c.bufs[:0], buf, body)
		return nil
	})
}

// Send writes r without waiting for a response, for requests the broker
// does not answer (Produce with acks=0).
func (c *Conn) Send(ctx context.Context, r *protocol.Record, version int16) error {
	_, err := c.send(ctx, r, r.Schema().API(), version, 0, false)
	return err
}

// send encodes and writes one request and, if a response is expected,
// queues its call. Queueing blocks while maxInFlight calls are pending.
// The request is written with writev: large records fields (a Produce's
// batches) go to the socket from the caller's memory, uncopied.
func (c *Conn) send(ctx context.Context, r *protocol.Record, a *protocol.API, v int16, extra time.Duration, expectResponse bool) (*call, error) {
	return c.write(ctx, a, v, extra, expectResponse, func(corr int32) error {
		bufs, buf, err := protocol.AppendRequestVectored(c.bufs[:0], c.wbuf[:0], r, v, corr, c.clientID)
		if err != nil {
			return fmt.Errorf("client: %s v%d request: %w", a.Name, v, err)
		}
		c.wbuf, c.bufs = buf, bufs
		return nil
	})
}

// write assigns the next correlation id, has encode fill c.bufs with the
// frame's segments, queues the call if a response is expected, and writes
// the segments, all under the write lock so that ids, queue order and wire
// order agree.
func (c *Conn) write(ctx context.Context, a *protocol.API, v int16, extra time.Duration, expectResponse bool, encode func(corr int32) error) (*call, error) {
	if err := c.Err(); err != nil {
		return nil, err
	}
	// The response deadline is the connection's: a broker that does not
	// answer within it is dead. The caller's context only bounds its own
	// wait (see wait); a late response is then read and dropped.
	deadline := time.Now().Add(c.timeout + extra)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.corr++
	if err := encode(c.corr); err != nil {
		return nil, err
	}
	var cl *call
	if expectResponse {
		cl = &call{corr: c.corr, api: a, version: v, deadline: deadline, result: make(chan callResult, 1)}
		select {
		case c.pending <- cl:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, c.Err()
		}
	}
	c.nc.SetWriteDeadline(deadline)
	nb := net.Buffers(c.bufs)
	_, err := nb.WriteTo(c.nc)
	clear(c.bufs) // drop references to the caller's records
	if err != nil {
		e := &ConnError{Addr: c.addr, Err: fmt.Errorf("write %s v%d: %w", a.Name, v, err), Retriable: true}
		c.fail(e)
		return nil, e
	}
	if cap(c.wbuf) > 1<<20 {
		c.wbuf = nil // do not keep a large request's buffer around
	}
	return cl, nil
}

func (c *Conn) wait(ctx context.Context, cl *call) (*Response, error) {
	select {
	case res := <-cl.result:
		return res.resp, res.err
	case <-ctx.Done():
		if !cl.state.CompareAndSwap(callWaiting, callAbandoned) {
			// Delivered first: the response is, or is about to be, in the
			// channel, and it is ours to release.
			res := <-cl.result
			res.resp.Release()
		}
		return nil, ctx.Err()
	case <-c.done:
		// The connection failed. The reader fails the calls it knows of,
		// but a call queued as it stopped would wait forever: give up
		// here unless a response was delivered first.
		if !cl.state.CompareAndSwap(callWaiting, callAbandoned) {
			res := <-cl.result
			return res.resp, res.err
		}
		return nil, c.Err()
	}
}

// readLoop reads responses in order and hands each to the oldest pending
// call. It ends when the connection fails.
func (c *Conn) readLoop() {
	var size [4]byte
	for {
		var cl *call
		select {
		case cl = <-c.pending:
		case <-c.done:
			c.drain()
			return
		}
		c.nc.SetReadDeadline(cl.deadline)
		if _, err := io.ReadFull(c.nc, size[:]); err != nil {
			c.failRead(cl, err)
			return
		}
		n := int(int32(binary.BigEndian.Uint32(size[:])))
		if n < 4 || n > c.maxResp {
			c.failCall(cl, &ConnError{Addr: c.addr, Err: fmt.Errorf("%s v%d response of %d bytes (limit %d)", cl.api.Name, cl.version, n, c.maxResp)})
			return
		}
		frame := c.pool.Get(n)
		if _, err := io.ReadFull(c.nc, frame); err != nil {
			c.pool.Put(frame)
			c.failRead(cl, err)
			return
		}
		corr, body, err := protocol.ParseResponseHeader(frame, cl.api.ResponseHeaderVersion(cl.version))
		if err == nil && corr != cl.corr {
			err = fmt.Errorf("correlation id %d, expected %d", corr, cl.corr)
		}
		if err != nil {
			c.pool.Put(frame)
			c.failCall(cl, &ConnError{Addr: c.addr, Err: fmt.Errorf("%s v%d response: %w", cl.api.Name, cl.version, err)})
			return
		}
		resp := &Response{API: cl.api, Version: cl.version, Body: body, frame: frame, pool: c.pool}
		if !cl.state.CompareAndSwap(callWaiting, callDelivered) {
			resp.Release() // the caller gave up
			continue
		}
		cl.result <- callResult{resp: resp}
	}
}

func (c *Conn) failRead(cl *call, err error) {
	if c.Err() != nil { // closed on purpose
		c.failCall(cl, c.failed.Load())
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		err = fmt.Errorf("no %s v%d response within the request timeout", cl.api.Name, cl.version)
	} else if err == io.EOF {
		err = fmt.Errorf("broker closed the connection while %s v%d was in flight", cl.api.Name, cl.version)
	}
	c.failCall(cl, &ConnError{Addr: c.addr, Err: err, Retriable: true})
}

// failCall fails the connection, this call and every pending one.
func (c *Conn) failCall(cl *call, e *ConnError) {
	c.fail(e)
	cl.result <- callResult{err: c.failed.Load()}
	c.drain()
}

func (c *Conn) drain() {
	for {
		select {
		case cl := <-c.pending:
			cl.result <- callResult{err: c.failed.Load()}
		default:
			return
		}
	}
}

// Version returns the highest version of a both ktape and the broker
// support.
func (c *Conn) Version(a *protocol.API) (int16, error) {
	if int(a.Key) >= apiKeyLimit || a.Key < 0 {
		return 0, fmt.Errorf("client: api key %d out of range", a.Key)
	}
	vr := c.versions[a.Key]
	if !vr.ok {
		return 0, &VersionError{API: a.Name, Addr: c.addr}
	}
	hi := min(vr.max, a.MaxVersion)
	lo := max(vr.min, a.MinVersion)
	if hi < lo {
		return 0, &VersionError{API: a.Name, Addr: c.addr, BrokerMin: vr.min, BrokerMax: vr.max, OursMin: a.MinVersion, OursMax: a.MaxVersion}
	}
	return hi, nil
}

// VersionError says that a broker and ktape share no version of an API.
type VersionError struct {
	API                  string
	Addr                 string
	BrokerMin, BrokerMax int16 // zero when the broker does not offer the API
	OursMin, OursMax     int16
}

func (e *VersionError) Error() string {
	if e.BrokerMax == 0 && e.BrokerMin == 0 && e.OursMax == 0 {
		return fmt.Sprintf("client: broker %s does not support %s", e.Addr, e.API)
	}
	return fmt.Sprintf("client: broker %s supports %s v%d-%d, ktape v%d-%d: no common version",
		e.Addr, e.API, e.BrokerMin, e.BrokerMax, e.OursMin, e.OursMax)
}
