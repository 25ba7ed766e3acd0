package kfaketest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/ktape/ktape/internal/kfaketest"
)

func records(prefix string, n int) []*kgo.Record {
	base := time.UnixMilli(1_700_000_000_000)
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{
			Key:       []byte(fmt.Sprintf("%s-key-%d", prefix, i)),
			Value:     []byte(strings.Repeat(fmt.Sprintf("%s-value-%d ", prefix, i), 20)),
			Headers:   []kgo.RecordHeader{{Key: "h", Value: []byte(prefix)}},
			Timestamp: base.Add(time.Duration(i) * time.Second),
		}
	}
	return rs
}

// sameRecords compares what was produced (after kgo filled in offsets)
// with what was read back.
func sameRecords(t *testing.T, got, want []*kgo.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Topic != w.Topic || g.Partition != w.Partition || g.Offset != w.Offset ||
			!bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) ||
			!g.Timestamp.Equal(w.Timestamp) || !slices.EqualFunc(g.Headers, w.Headers, func(a, b kgo.RecordHeader) bool {
			return a.Key == b.Key && bytes.Equal(a.Value, b.Value)
		}) {
			t.Fatalf("record %d: read %s/%d@%d key %q ts %v headers %v, want %s/%d@%d key %q ts %v headers %v",
				i, g.Topic, g.Partition, g.Offset, g.Key, g.Timestamp, g.Headers,
				w.Topic, w.Partition, w.Offset, w.Key, w.Timestamp, w.Headers)
		}
	}
}

func TestProduceConsume(t *testing.T) {
	t.Parallel()
	c := kfaketest.Start(t, kfaketest.Topics(3, "orders"), kfaketest.Topics(1, "other"))
	if n := len(c.Addrs()); n != kfaketest.DefaultBrokers {
		t.Fatalf("%d brokers, want %d", n, kfaketest.DefaultBrokers)
	}
	if got := c.ConsumeAll(t, "orders"); len(got) != 0 {
		t.Fatalf("empty topic: read %d records", len(got))
	}
	p1, p2 := records("p1", 5), records("p2", 3)
	c.Produce(t, "orders", 1, p1[:2]...)
	c.Produce(t, "orders", 1, p1[2:]...)
	c.Produce(t, "orders", 2, p2...)
	for i, r := range p1 {
		if r.Offset != int64(i) {
			t.Fatalf("produced record %d at offset %d", i, r.Offset)
		}
	}
	sameRecords(t, c.ConsumeAll(t, "orders"), append(slices.Clone(p1), p2...))
	sameRecords(t, c.ConsumeAll(t, "orders", kgo.ReadCommitted()), append(slices.Clone(p1), p2...))
	if got := c.ConsumeAll(t, "other"); len(got) != 0 {
		t.Fatalf("other topic: read %d records", len(got))
	}
}

func TestCompression(t *testing.T) {
	t.Parallel()
	c := kfaketest.Start(t, kfaketest.Topics(1, "gzip", "snappy", "lz4", "zstd"))
	for _, tc := range []struct {
		topic string
		codec kgo.CompressionCodec
		typ   uint8
	}{
		{"gzip", kgo.GzipCompression(), 1},
		{"snappy", kgo.SnappyCompression(), 2},
		{"lz4", kgo.Lz4Compression(), 3},
		{"zstd", kgo.ZstdCompression(), 4},
	} {
		rs := records(tc.topic, 10)
		c.ProduceWith(t, kfaketest.ProduceOptions{Compression: tc.codec}, tc.topic, 0, rs...)
		got := c.ConsumeAll(t, tc.topic)
		sameRecords(t, got, rs)
		for _, r := range got {
			if ct := r.Attrs.CompressionType(); ct != tc.typ {
				t.Fatalf("%s: record at %d has compression type %d", tc.topic, r.Offset, ct)
			}
		}
	}
}

func TestTransactions(t *testing.T) {
	t.Parallel()
	c := kfaketest.Start(t, kfaketest.Topics(2, "txn"))
	committed1, aborted, committed2 := records("c1", 3), records("ab", 2), records("c2", 1)
	c.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Commit}, "txn", 1, committed1...)
	c.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Abort, Compression: kgo.ZstdCompression()}, "txn", 1, aborted...)
	c.ProduceWith(t, kfaketest.ProduceOptions{Txn: kfaketest.Commit}, "txn", 1, committed2...)

	// Offsets: 0-2 data, 3 commit marker, 4-5 aborted data, 6 abort
	// marker, 7 data, 8 commit marker. Control records are never returned.
	all := c.ConsumeAll(t, "txn")
	sameRecords(t, all, slices.Concat(committed1, aborted, committed2))
	if all[3].Offset != 4 || all[5].Offset != 7 {
		t.Fatalf("offsets %d, %d; want 4 and 7 (markers in between)", all[3].Offset, all[5].Offset)
	}
	for _, r := range all {
		if !r.Attrs.IsTransactional() {
			t.Fatalf("record at %d is not transactional", r.Offset)
		}
	}
	sameRecords(t, c.ConsumeAll(t, "txn", kgo.ReadCommitted()), slices.Concat(committed1, committed2))
}

func TestSASL(t *testing.T) {
	t.Parallel()
	c := kfaketest.Start(t,
		kfaketest.SASL("SCRAM-SHA-512", "alice", "alice-pw"),
		kfaketest.SASL("PLAIN", "bob", "bob-pw"),
		kfaketest.Topics(1, "t"),
	)
	rs := records("sasl", 4)
	c.Produce(t, "t", 0, rs...)
	sameRecords(t, c.ConsumeAll(t, "t"), rs)

	ping := func(opts ...kgo.Opt) error {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Addrs()...)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return cl.Ping(ctx)
	}
	if err := ping(kgo.SASL(plain.Auth{User: "bob", Pass: "bob-pw"}.AsMechanism())); err != nil {
		t.Fatalf("second user: %v", err)
	}
	if err := ping(kgo.SASL(plain.Auth{User: "bob", Pass: "wrong"}.AsMechanism())); err == nil {
		t.Fatal("wrong password: ping succeeded")
	}
	if err := ping(); err == nil {
		t.Fatal("no SASL: ping succeeded")
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	server, client := kfaketest.TLSConfigs(t)
	c := kfaketest.Start(t, kfaketest.TLS(server, client), kfaketest.Topics(2, "t"))
	rs := records("tls", 3)
	c.Produce(t, "t", 1, rs...)
	sameRecords(t, c.ConsumeAll(t, "t"), rs)

	_, otherCA := kfaketest.TLSConfigs(t)
	noCA := client.Clone()
	noCA.RootCAs = nil // system roots only
	noCert := client.Clone()
	noCert.Certificates = nil
	for _, tc := range []struct {
		name string
		opts []kgo.Opt
		want string // in the error; "" for success
	}{
		{"client config", []kgo.Opt{kgo.DialTLSConfig(client)}, ""},
		{"plain text", nil, "closed the connection"},
		{"without the CA", []kgo.Opt{kgo.DialTLSConfig(noCA)}, "unknown authority"},
		{"another CA", []kgo.Opt{kgo.DialTLSConfig(otherCA)}, "unknown authority"},
		{"without a client certificate", []kgo.Opt{kgo.DialTLSConfig(noCert)}, "certificate required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Addrs()...)}, tc.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err = cl.Ping(ctx)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("ping: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("ping: %v; want an error with %q", err, tc.want)
			}
		})
	}

	// The server really presents a certificate for 127.0.0.1 and localhost.
	for _, name := range []string{"127.0.0.1", "localhost"} {
		cfg := client.Clone()
		cfg.ServerName = name
		conn, err := tls.Dial("tcp", c.Addrs()[0], cfg)
		if err != nil {
			t.Fatalf("tls.Dial as %s: %v", name, err)
		}
		conn.Close()
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(0, "defaulted"),
		kfaketest.KfakeOpts(kfake.ClusterID("kfaketest-id"), kfake.DefaultNumPartitions(4)))
	if n := len(c.Addrs()); n != 1 {
		t.Fatalf("%d brokers, want 1", n)
	}
	if got := c.Kfake().ListenAddrs(); !slices.Equal(got, c.Addrs()) {
		t.Fatalf("Kfake().ListenAddrs() = %v, Addrs() = %v", got, c.Addrs())
	}
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("defaulted")
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), c.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	if id := resp.ClusterID; id == nil || *id != "kfaketest-id" {
		t.Fatalf("cluster id %v; KfakeOpts not passed through", id)
	}
	if n := len(resp.Topics[0].Partitions); n != 4 {
		t.Fatalf("Topics(0, ...) made %d partitions; want kfake's default (4 here)", n)
	}

	// Clusters started side by side get their own ports.
	d := kfaketest.Start(t, kfaketest.Brokers(1))
	if c.Addrs()[0] == d.Addrs()[0] {
		t.Fatalf("two clusters on %s", c.Addrs()[0])
	}
}

// A Cutter cuts the responses it is told to, half-way, after the broker
// acted: a CreateTopics whose answer was cut fails at the client with a
// connection error, yet the topic exists; other requests pass.
func TestCutter(t *testing.T) {
	t.Parallel()
	ct := kfaketest.NewCutter()
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.CutResponses(ct))
	cl := c.Client(t, kgo.RequestRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	create := func(name string) error {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
		req.Topics = append(req.Topics, rt)
		_, err := req.RequestWith(ctx, cl)
		return err
	}
	if err := create("before"); err != nil {
		t.Fatal(err)
	}
	ct.Cut(int16(kmsg.CreateTopics), 1)
	if err := create("cut"); err == nil {
		t.Fatal("the cut answer reached the client whole")
	}
	if n := ct.Cuts(); n != 1 {
		t.Fatalf("%d answers cut, want 1", n)
	}
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tm := range md.Topics {
		names = append(names, *tm.Topic)
	}
	slices.Sort(names)
	if fmt.Sprint(names) != "[before cut]" {
		t.Fatalf("topics %v: the broker did not act on the request whose answer was cut", names)
	}
}
