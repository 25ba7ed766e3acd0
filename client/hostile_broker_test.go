package client

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// hostileBroker listens on loopback and answers every request on every
// connection with respond(correlation id): a broker that lies about sizes
// and counts.
func hostileBroker(t *testing.T, respond func(corr uint32) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				for {
					var size [4]byte
					if _, err := io.ReadFull(nc, size[:]); err != nil {
						return
					}
					req := make([]byte, min(binary.BigEndian.Uint32(size[:]), 1<<20))
					if _, err := io.ReadFull(nc, req); err != nil || len(req) < 8 {
						return
					}
					if _, err := nc.Write(respond(binary.BigEndian.Uint32(req[4:8]))); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// Malformed and oversized broker responses give an error, never a panic,
// and never an allocation sized by the broker's claim: a length prefix of
// 1.5 GiB, a negative one, a frame that ends early, and an ApiVersions
// response whose array claims 2^31-1 entries. Allocation is measured with
// runtime.MemStats around each Dial.
func TestHostileBrokerResponses(t *testing.T) {
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	cases := []struct {
		name    string
		respond func(corr uint32) []byte
		want    string
		limit   int // Dialer.MaxResponseSize; 0 for the default
	}{
		{"length prefix of 1.5 GiB", func(uint32) []byte { return be32(3 << 29) }, "response of 1610612736 bytes (limit", 0},
		// Under the default limit, but over the one a command sets from
		// its --memory (cmd/ktape responseLimit): refused before a byte
		// is allocated for it.
		{"length prefix of 100 MiB over an 8 MiB limit", func(uint32) []byte { return be32(100 << 20) }, "response of 104857600 bytes (limit 8388608)", 8 << 20},
		{"negative length prefix", func(uint32) []byte { return be32(0xffffffff) }, "response of -1 bytes", 0},
		{"frame shorter than its prefix", func(corr uint32) []byte { return append(be32(1000), be32(corr)...) }, "within the request timeout", 0},
		{"array count 2^31-1", func(corr uint32) []byte {
			// An ApiVersions v0 body (what a broker that does not know
			// the version asked answers with, and what Dial reads it as):
			// error code 0, then an array whose int32 count says 2^31-1.
			body := append(be32(corr), 0, 0)
			body = append(body, be32(1<<31-1)...)
			return append(be32(uint32(len(body))), body...)
		}, "ApiKeys at byte 2", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := hostileBroker(t, c.respond)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, err := (&Dialer{RequestTimeout: 2 * time.Second, MaxResponseSize: c.limit}).Dial(ctx, addr)
			runtime.ReadMemStats(&after)
			if err == nil {
				conn.Close()
				t.Fatal("Dial accepted the response")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of several lines: %q", err)
			}
			if grown := after.TotalAlloc - before.TotalAlloc; grown > 4<<20 {
				t.Errorf("Dial allocated %d bytes on a hostile response", grown)
			}
			t.Logf("%s: %v (allocated %d bytes)", c.name, err, after.TotalAlloc-before.TotalAlloc)
		})
	}
}
