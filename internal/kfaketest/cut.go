package kfaketest

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Cutter cuts broker connections in the middle of responses: the broker
// has done the work (appended a Produce, read a Fetch), half of the
// response frame reaches the client, and then the connection is closed.
// kfake's own controls can only answer a request or close the connection
// before answering it; a response lost on the way back, after its request
// took effect, is what makes a retried Produce a possible duplicate, and
// a frame cut short is what a client's framing must survive.
//
// A Cutter sees the plaintext bytes of a connection: it does not work
// with TLS, nor with SASL's unframed v0 authentication.
type Cutter struct {
	mu      sync.Mutex
	pending map[int16]int // API key → responses still to cut
	cuts    atomic.Int64
}

// NewCutter returns a Cutter with nothing to cut; give it to Start with
// CutResponses, then arm it with Cut.
func NewCutter() *Cutter { return &Cutter{pending: map[int16]int{}} }

// Cut arranges for the next n responses to requests with API key key to
// be cut.
func (c *Cutter) Cut(key int16, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending[key] += n
}

// Stop cancels the cuts arranged and not yet made.
func (c *Cutter) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.pending)
}

// Cuts returns the number of responses cut so far.
func (c *Cutter) Cuts() int { return int(c.cuts.Load()) }

// take reports whether a response to key is to be cut, and counts it.
func (c *Cutter) take(key int16) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[key] <= 0 {
		return false
	}
	c.pending[key]--
	c.cuts.Add(1)
	return true
}

// CutResponses makes every broker's connections go through ct.
func CutResponses(ct *Cutter) Option {
	return KfakeOpts(kfake.ListenFn(func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, err
		}
		return &cutListener{Listener: ln, ct: ct}, nil
	}))
}

type cutListener struct {
	net.Listener
	ct *Cutter
}

func (l *cutListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &cutConn{Conn: nc, ct: l.ct, keys: map[int32]int16{}}, nil
}

// cutConn follows the request frames a broker reads, to learn each
// correlation id's API key, and cuts the responses its Cutter asks for.
// kfake writes each response frame with one Write.
type cutConn struct {
	net.Conn
	ct   *Cutter
	mu   sync.Mutex
	keys map[int32]int16 // correlation id → API key, of requests read
	hdr  []byte          // the start of the request frame being read
	left int64           // bytes of the current request frame still to pass
}

// reqHeader is what identifies a request: size, API key, version,
// correlation id.
const reqHeader = 4 + 2 + 2 + 4

func (c *cutConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.scan(p[:n])
	return n, err
}

// scan follows the request frames in b, the next bytes read.
func (c *cutConn) scan(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(b) > 0 {
		if c.left > 0 {
			k := min(c.left, int64(len(b)))
			c.left -= k
			b = b[k:]
			continue
		}
		k := min(reqHeader-len(c.hdr), len(b))
		c.hdr = append(c.hdr, b[:k]...)
		b = b[k:]
		if len(c.hdr) < reqHeader {
			continue
		}
		size := int64(int32(binary.BigEndian.Uint32(c.hdr)))
		key := int16(binary.BigEndian.Uint16(c.hdr[4:]))
		corr := int32(binary.BigEndian.Uint32(c.hdr[8:]))
		c.keys[corr] = key
		c.left = max(0, size-(reqHeader-4))
		c.hdr = c.hdr[:0]
	}
}

// errCut is what the broker's writer sees for a cut response.
var errCut = errors.New("kfaketest: connection cut in the middle of a response")

func (c *cutConn) Write(p []byte) (int, error) {
	if len(p) >= 8 {
		corr := int32(binary.BigEndian.Uint32(p[4:]))
		c.mu.Lock()
		key, ok := c.keys[corr]
		delete(c.keys, corr)
		c.mu.Unlock()
		if ok && c.ct.take(key) {
			n, _ := c.Conn.Write(p[:len(p)/2])
			c.Conn.Close()
			return n, errCut
		}
	}
	return c.Conn.Write(p)
}
