package storage

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ktape/ktape/internal/faultproxy"
	"github.com/ktape/ktape/internal/s3test"
)

// openBehindProxy opens an S3 store through a fault-injecting proxy in
// front of versitygw, retrying quickly.
func openBehindProxy(t *testing.T) (*Store, *faultproxy.Proxy) {
	t.Helper()
	direct := s3test.Start(t)
	if direct == "" {
		t.Skip("versitygw not installed")
	}
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	p := faultproxy.Start(t, q.Get("endpoint"), faultproxy.Config{})
	q.Set("endpoint", p.URL)
	u.RawQuery = q.Encode()
	s, err := Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.Retry = Retry{Attempts: 3, Base: time.Millisecond}
	return s, p
}

// A body cut short on the way is never taken as data: whole reads and
// range reads alike retry it and return the object's bytes, and when
// every answer is cut, fail with an error saying so — not the short
// read of an object too small, which is not worth retrying.
func TestTruncatedBodiesRetriedNeverTaken(t *testing.T) {
	s, p := openBehindProxy(t)
	ctx := context.Background()
	obj := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	if err := s.Create(ctx, "segments/x.seg", obj); err != nil {
		t.Fatal(err)
	}
	gets := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/x.seg")
	}
	buf := make([]byte, 40<<10+ReadSlack)
	reads := []struct {
		name string
		read func() ([]byte, error)
		want []byte
	}{
		{"Get", func() ([]byte, error) { return s.Get(ctx, "segments/x.seg") }, obj},
		{"GetRange", func() ([]byte, error) { return s.GetRange(ctx, "segments/x.seg", 1000, 40<<10) }, obj[1000 : 1000+40<<10]},
		{"ReadRange", func() ([]byte, error) { return s.ReadRange(ctx, "segments/x.seg", 1000, 40<<10, buf) }, obj[1000 : 1000+40<<10]},
	}
	for _, rd := range reads {
		// Every other answer cut short, starting with the first: each
		// read is retried once, to the exact bytes.
		n := 0
		p.Set(faultproxy.Config{Rates: map[faultproxy.Fault]float64{faultproxy.Truncate: 1}, Match: func(r *http.Request) bool {
			n++ // under the proxy's lock
			return gets(r) && n%2 == 1
		}})
		for i := range 10 {
			got, err := rd.read()
			if err != nil {
				t.Fatalf("%s #%d with half the bodies cut: %v", rd.name, i, err)
			}
			if !bytes.Equal(got, rd.want) {
				t.Fatalf("%s #%d: %d bytes, not the object's", rd.name, i, len(got))
			}
		}
		if cut := p.Counts()[faultproxy.Truncate]; cut != 10 {
			t.Fatalf("%s: %d bodies cut, want 10", rd.name, cut)
		}
		// Every answer cut: a clear error after the attempts.
		p.Set(faultproxy.Config{Rates: map[faultproxy.Fault]float64{faultproxy.Truncate: 1}, Match: gets})
		got, err := rd.read()
		if err == nil || errors.Is(err, errShortRead) || !strings.Contains(err.Error(), "segments/x.seg") {
			t.Fatalf("%s with every body cut: %d bytes, error %v: want an error naming the object, not a short object", rd.name, len(got), err)
		}
		if cut := p.Counts()[faultproxy.Truncate]; cut != s.Retry.Attempts {
			t.Fatalf("%s: %d attempts cut, want %d (every attempt retried)", rd.name, cut, s.Retry.Attempts)
		}
		t.Logf("FIGURES read=%s every-body-cut error=%q", rd.name, err)
	}
	// A range past the object's end is a short read, and not retried.
	p.Set(faultproxy.Config{})
	if _, err := s.ReadRange(ctx, "segments/x.seg", int64(len(obj))-10, 20, buf); !errors.Is(err, errShortRead) {
		t.Fatalf("range past the end: %v, want a short read", err)
	}
	if n := p.Counts()[faultproxy.Pass]; n != 1 {
		t.Fatalf("range past the end: %d requests, want 1 (no retry)", n)
	}
}
