// Package faultproxy is an HTTP reverse proxy for tests that puts faults
// between a client and a real server (an S3 emulator): error answers,
// slow answers, connections reset before or after the server acted, and
// bodies cut short. Which request meets which fault is drawn from a
// seeded generator, a fraction of the requests for each fault, so a run's
// schedule of faults is reproducible up to the order in which concurrent
// requests arrive.
package faultproxy

import (
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is what the proxy does to a request.
type Fault int

const (
	// Pass forwards the request and its answer untouched.
	Pass Fault = iota
	// ServerError answers 503 Slow Down (S3's throttling answer)
	// without forwarding the request.
	ServerError
	// Slow forwards the request after Config.Delay.
	Slow
	// Reset closes the connection (TCP RST) without forwarding the
	// request: the server never sees it.
	Reset
	// ResetAfter forwards the request, so the server acts on it (stores
	// a PUT), then resets the connection instead of answering.
	ResetAfter
	// Truncate forwards the request and answers with the server's
	// status and headers (its Content-Length included) but only the
	// first half of its body, then closes the connection. Only answers
	// with a body of 2 bytes and more are cut; others pass.
	Truncate
	numFaults
)

var names = [...]string{"pass", "5xx", "slow", "reset", "reset-after", "truncate"}

func (f Fault) String() string {
	if f >= 0 && int(f) < len(names) {
		return names[f]
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// Config is a proxy's schedule of faults.
type Config struct {
	// Seed seeds the generator that draws each request's fault.
	Seed uint64
	// Rates is the fraction of matching requests given each fault; what
	// is left passes. Their sum must not exceed 1.
	Rates map[Fault]float64
	// Delay is how long Slow holds a request; default 200 ms.
	Delay time.Duration
	// Match, if set, selects the requests the faults apply to; others
	// pass. Default: every request.
	Match func(*http.Request) bool
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	// URL is the proxy's base URL, http://127.0.0.1:port.
	URL string
	// Host is the proxy's host:port.
	Host string

	target *url.URL
	srv    *http.Server
	tr     *http.Transport

	mu     sync.Mutex
	cfg    Config
	rnd    *rand.Rand
	counts [numFaults]int
}

// Start starts a proxy in front of target (an http:// base URL), stopped
// when t ends.
func Start(t testing.TB, target string, cfg Config) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		t.Fatalf("faultproxy: target %q: want http://host:port", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{URL: "http://" + ln.Addr().String(), Host: ln.Addr().String(), target: u,
		tr: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}
	if err := p.Set(cfg); err != nil {
		t.Fatal(err)
	}
	p.srv = &http.Server{Handler: p, ErrorLog: log.New(io.Discard, "", 0)}
	go p.srv.Serve(ln)
	t.Cleanup(func() {
		p.srv.Close()
		p.tr.CloseIdleConnections()
	})
	return p
}

// Set replaces the schedule of faults, reseeding the generator and
// zeroing the counts.
func (p *Proxy) Set(cfg Config) error {
	sum := 0.0
	for f, r := range cfg.Rates {
		if f <= Pass || f >= numFaults || r < 0 {
			return fmt.Errorf("faultproxy: rate %v for %v", r, f)
		}
		sum += r
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("faultproxy: rates sum to %v, more than 1", sum)
	}
	if cfg.Delay <= 0 {
		cfg.Delay = 200 * time.Millisecond
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg = cfg
	p.counts = [numFaults]int{}
	p.rnd = rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	return nil
}

// Counts returns how many requests met each fault (Pass included).
func (p *Proxy) Counts() map[Fault]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[Fault]int{}
	for f, n := range p.counts {
		if n > 0 {
			out[Fault(f)] = n
		}
	}
	return out
}

// Injected returns how many requests met a fault (not Pass).
func (p *Proxy) Injected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for f := Pass + 1; f < numFaults; f++ {
		n += p.counts[f]
	}
	return n
}

// draw picks r's fault.
func (p *Proxy) draw(r *http.Request) (Fault, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := Pass
	if p.cfg.Match == nil || p.cfg.Match(r) {
		x := p.rnd.Float64()
		for g := Pass + 1; g < numFaults; g++ {
			if rate := p.cfg.Rates[g]; x < rate {
				f = g
				break
			} else {
				x -= rate
			}
		}
	}
	p.counts[f]++
	return f, p.cfg.Delay
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, delay := p.draw(r)
	switch f {
	case ServerError:
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>faultproxy: injected 503</Message></Error>`)
		return
	case Reset:
		reset(w)
		return
	case Slow:
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	resp, err := p.forward(r)
	if err != nil {
		http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if f == ResetAfter {
		io.Copy(io.Discard, resp.Body)
		reset(w)
		return
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		reset(w)
		return
	}
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	if f == Truncate && len(body) >= 2 && r.Method != http.MethodHead {
		h.Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(resp.StatusCode)
		w.Write(body[:len(body)/2])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		panic(http.ErrAbortHandler) // the server closes the connection, the body unfinished
	}
	if f == Truncate {
		p.mu.Lock()
		p.counts[Truncate]--
		p.counts[Pass]++
		p.mu.Unlock()
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}

// forward sends r to the target and returns its answer.
func (p *Proxy) forward(r *http.Request) (*http.Response, error) {
	u := *p.target
	u.Path = r.URL.Path
	u.RawPath = r.URL.RawPath
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), r.Body)
	if err != nil {
		return nil, err
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host // signed requests name the host they were signed for
	out.ContentLength = r.ContentLength
	if r.ContentLength == 0 {
		out.Body = http.NoBody
	}
	for _, h := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Upgrade"} {
		out.Header.Del(h)
	}
	if te := r.TransferEncoding; len(te) > 0 && !strings.EqualFold(te[0], "identity") {
		out.TransferEncoding = te
	}
	return p.tr.RoundTrip(out)
}

// reset closes the client's connection with a TCP RST, no answer.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}
