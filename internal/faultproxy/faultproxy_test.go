package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// upstream is a server holding one object, /obj, of 1000 bytes, and
// counting the requests that reach it.
func upstream(t *testing.T) (*httptest.Server, *atomic.Int32, []byte) {
	body := bytes.Repeat([]byte("0123456789"), 100)
	var n atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.Copy(io.Discard, r.Body)
		if r.URL.Path != "/obj" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", "1000")
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s, &n, body
}

// Each fault alone, as a plain HTTP client meets it.
func TestFaults(t *testing.T) {
	up, seen, body := upstream(t)
	for _, tc := range []struct {
		f     Fault
		check func(resp *http.Response, err error, took time.Duration, reached bool) error
	}{
		{Pass, func(resp *http.Response, err error, _ time.Duration, reached bool) error {
			if err != nil {
				return err
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(b, body) || !reached {
				return errors.New("the object did not come through whole")
			}
			return nil
		}},
		{ServerError, func(resp *http.Response, err error, _ time.Duration, reached bool) error {
			if err != nil || resp.StatusCode != 503 || reached {
				return errors.New("want a 503 and the server not reached")
			}
			return nil
		}},
		{Slow, func(resp *http.Response, err error, took time.Duration, reached bool) error {
			if err != nil || resp.StatusCode != 200 || took < 100*time.Millisecond || !reached {
				return errors.New("want the answer after the delay")
			}
			return nil
		}},
		{Reset, func(_ *http.Response, err error, _ time.Duration, reached bool) error {
			if err == nil || reached {
				return errors.New("want a connection error and the server not reached")
			}
			return nil
		}},
		{ResetAfter, func(_ *http.Response, err error, _ time.Duration, reached bool) error {
			if err == nil || !reached {
				return errors.New("want a connection error after the server was reached")
			}
			return nil
		}},
		{Truncate, func(resp *http.Response, err error, _ time.Duration, reached bool) error {
			if err != nil {
				return err
			}
			b, err := io.ReadAll(resp.Body)
			if !errors.Is(err, io.ErrUnexpectedEOF) || len(b) != 500 || !bytes.Equal(b, body[:500]) || !reached {
				return errors.New("want half the body, then an unexpected EOF")
			}
			return nil
		}},
	} {
		t.Run(tc.f.String(), func(t *testing.T) {
			rates := map[Fault]float64{}
			if tc.f != Pass {
				rates[tc.f] = 1
			}
			p := Start(t, up.URL, Config{Rates: rates, Delay: 100 * time.Millisecond})
			before := seen.Load()
			start := time.Now()
			cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := cl.Get(p.URL + "/obj")
			took := time.Since(start)
			if resp != nil {
				defer resp.Body.Close()
			}
			if err := tc.check(resp, err, took, seen.Load() > before); err != nil {
				t.Fatalf("%v: %v (status %v)", tc.f, err, resp)
			}
			if c := p.Counts(); c[tc.f] != 1 {
				t.Fatalf("counts %v", c)
			}
		})
	}
}

// The same seed gives the same schedule; Match limits the faults to the
// requests it selects.
func TestScheduleSeededAndMatched(t *testing.T) {
	up, _, _ := upstream(t)
	run := func(seed uint64) string {
		p := Start(t, up.URL, Config{Seed: seed, Rates: map[Fault]float64{ServerError: 0.3, Truncate: 0.2},
			Match: func(r *http.Request) bool { return r.URL.Path == "/obj" }})
		var got []string
		cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		for i := range 40 {
			path := "/obj"
			if i%4 == 0 {
				path = "/other"
			}
			resp, err := cl.Get(p.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case path == "/other" && resp.StatusCode != 404:
				t.Fatalf("an unmatched request met a fault: %d", resp.StatusCode)
			case err != nil:
				got = append(got, "cut")
			default:
				got = append(got, resp.Status[:3])
			}
		}
		if p.Injected() == 0 {
			t.Fatal("no fault injected")
		}
		return strings.Join(got, " ")
	}
	a, b, c := run(1), run(1), run(2)
	if a != b {
		t.Fatalf("seed 1 gave\n%s\nthen\n%s", a, b)
	}
	if a == c {
		t.Fatalf("seeds 1 and 2 gave the same schedule %s", a)
	}
}
