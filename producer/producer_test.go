package producer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/internal/testfixtures"
	"github.com/ktape/ktape/producer"
	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/record"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var codecs = []record.Codec{record.None, record.Gzip, record.Snappy, record.LZ4, record.Zstd}

// build makes a batch of n records whose keys say which batch and record
// they are, so order and duplicates show when read back.
func build(t *testing.T, codec record.Codec, batch, n int) record.Batch {
	t.Helper()
	var b record.Builder
	h := record.NoProducer
	h.Codec = codec
	h.BaseOffset = 12345 // rewritten to 0 by the producer
	b.Reset(nil, h, nil)
	for i := 0; i < n; i++ {
		b.Append(1_700_000_000_000+int64(i), []byte(fmt.Sprintf("b%04d-r%03d", batch, i)), []byte(fmt.Sprintf("value %d/%d", batch, i)),
			[]record.Header{{Key: []byte("h"), Value: []byte("v")}})
	}
	_, out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func newProducer(t *testing.T, c *kfaketest.Cluster, cfg producer.Config) (*producer.Producer, *client.Client) {
	t.Helper()
	ctx := context.Background()
	cl, err := client.New(ctx, c.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	p, err := producer.New(ctx, cl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, cl
}

// keysByPartition reads the topic back with franz-go's consumer (the
// real decoder) and returns each partition's keys in offset order.
func keysByPartition(t *testing.T, c *kfaketest.Cluster, topic string) map[int32][]string {
	t.Helper()
	out := map[int32][]string{}
	for _, r := range c.ConsumeAll(t, topic) {
		out[r.Partition] = append(out[r.Partition], string(r.Key))
	}
	return out
}

func expectKeys(batches, n int) []string {
	var out []string
	for b := 0; b < batches; b++ {
		for i := 0; i < n; i++ {
			out = append(out, fmt.Sprintf("b%04d-r%03d", b, i))
		}
	}
	return out
}

func sendAll(t *testing.T, p *producer.Producer, tp client.TopicPartition, codec record.Codec, batches, n int) *sync.WaitGroup {
	t.Helper()
	var wg sync.WaitGroup
	var last atomic.Int64
	last.Store(-1)
	for b := 0; b < batches; b++ {
		wg.Add(1)
		err := p.SendBatch(context.Background(), tp, build(t, codec, b, n), func(off int64, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("%s batch: %v", tp, err)
				return
			}
			if off >= 0 && off <= last.Load() {
				t.Errorf("%s: acknowledged offset %d after %d", tp, off, last.Load())
			}
			last.Store(off)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return &wg
}

func TestSendBatchesEveryCodec(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(3), kfaketest.Topics(5, "t"))
	p, _ := newProducer(t, c, producer.Config{})
	var wgs []*sync.WaitGroup
	for i, codec := range codecs {
		wgs = append(wgs, sendAll(t, p, client.TopicPartition{Topic: "t", Partition: int32(i)}, codec, 40, 25))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, wg := range wgs {
		wg.Wait()
	}
	got := keysByPartition(t, c, "t")
	want := fmt.Sprint(expectKeys(40, 25))
	for i := range codecs {
		if fmt.Sprint(got[int32(i)]) != want {
			t.Fatalf("partition %d (%s): %d records, out of order or missing", i, codecs[i], len(got[int32(i)]))
		}
	}
}

// NOT_LEADER_OR_FOLLOWER responses and dropped connections, with five
// batches in flight per partition: nothing lost, duplicated or reordered.
func TestSendBatchesSurviveFaults(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(3), kfaketest.Topics(3, "t"))
	k := c.Kfake()
	var n atomic.Int32
	k.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		switch n.Add(1) % 7 {
		case 3: // lose the connection (the request may or may not be written)
			return nil, errors.New("drop"), true
		case 5: // refuse as if leadership moved
			return errResp(req, protocol.ErrNotLeaderOrFollower.Code), nil, true
		}
		return nil, nil, false
	})
	p, cl := newProducer(t, c, producer.Config{Backoff: client.Backoff{Base: time.Millisecond, Max: 10 * time.Millisecond}})
	_ = cl
	var wgs []*sync.WaitGroup
	for part := int32(0); part < 3; part++ {
		wgs = append(wgs, sendAll(t, p, client.TopicPartition{Topic: "t", Partition: part}, record.LZ4, 60, 10))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, wg := range wgs {
		wg.Wait()
	}
	k.DropControl()
	got := keysByPartition(t, c, "t")
	want := fmt.Sprint(expectKeys(60, 10))
	for part := int32(0); part < 3; part++ {
		if fmt.Sprint(got[part]) != want {
			t.Fatalf("partition %d: %d records, want %d, in order, once each", part, len(got[part]), 600)
		}
	}
	if n.Load() < 10 {
		t.Fatalf("only %d produce requests: faults not exercised", n.Load())
	}
}

// Batches captured from other clients (kcat, franz-go, confluent-kafka,
// kafka-python), in every codec, re-sent and read back identical.
func TestResendFixtureBatches(t *testing.T) {
	names, err := testfixtures.Names()
	if err != nil {
		t.Fatal(err)
	}
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "re"))
	p, _ := newProducer(t, c, producer.Config{})
	var want []string
	var rn record.Renumberer
	for _, name := range names {
		fx, err := testfixtures.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if fx.Magic != 2 {
			continue
		}
		for _, part := range fx.Partitions {
			it := record.NewIter(part.Raw)
			for it.Next() {
				b := it.Batch()
				if b.IsControl() || b.IsTransactional() {
					continue // markers are the coordinator's to write
				}
				// A copy: the producer rewrites headers in place.
				_, own, err := rn.Renumber(nil, b)
				if err != nil {
					t.Fatal(err)
				}
				var r record.Reader
				ri, _ := r.Records(own)
				for ri.Next() {
					rec := ri.Record()
					want = append(want, fmt.Sprintf("%q=%q", rec.Key, rec.Value))
				}
				if err := p.SendBatch(context.Background(), client.TopicPartition{Topic: "re", Partition: 0}, own, func(_ int64, err error) {
					if err != nil {
						t.Errorf("%s: %v", name, err)
					}
				}); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range c.ConsumeAll(t, "re") {
		got = append(got, fmt.Sprintf("%q=%q", r.Key, r.Value))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(want) < 100 {
		t.Fatalf("re-sent %d records, read back %d (or in another order)", len(want), len(got))
	}
}

func TestConfigValidation(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "t"))
	cl, err := client.New(context.Background(), c.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, cfg := range []producer.Config{{Acks: 1}, {MaxInFlight: 6}, {Acks: 2, NotIdempotent: true}} {
		if _, err := producer.New(context.Background(), cl, cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// acks=1 and acks=0 (not idempotent) deliver too; kcat (librdkafka) reads
// what was sent.
func TestAcksAndKcatReadBack(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(2, "t"))
	for part, cfg := range []producer.Config{{Acks: 1, NotIdempotent: true}, {Acks: 0, AcksSet: true, NotIdempotent: true}} {
		p, _ := newProducer(t, c, cfg)
		wg := sendAll(t, p, client.TopicPartition{Topic: "t", Partition: int32(part)}, record.Zstd, 10, 5)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		wg.Wait()
	}
	// acks=0 gives no acknowledgement to wait for: poll until it lands.
	deadline := time.Now().Add(10 * time.Second)
	var got map[int32][]string
	for time.Now().Before(deadline) {
		if got = keysByPartition(t, c, "t"); len(got[1]) == 50 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := fmt.Sprint(expectKeys(10, 5))
	for part := int32(0); part < 2; part++ {
		if fmt.Sprint(got[part]) != want {
			t.Fatalf("partition %d: %v", part, got[part])
		}
	}
	if _, err := exec.LookPath("kcat"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat is required in CI")
		}
		t.Skip("kcat not installed")
	}
	out, err := exec.Command("kcat", "-b", c.Addrs()[0], "-C", "-t", "t", "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%k\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	if lines := strings.Fields(string(out)); fmt.Sprint(lines) != want {
		t.Fatalf("kcat read %d keys: %.80v", len(lines), lines)
	}
}

// SendBatch checks the CRC of what it is given; SendCheckedBatch, for
// batches the caller has just checked, only their framing. Batches sent
// either way arrive with a CRC that franz-go's consumer accepts, the
// producer's header rewrite having patched it.
func TestSendCheckedBatch(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Topics(1, "t"))
	p, _ := newProducer(t, c, producer.Config{})
	ctx := context.Background()
	tp := client.TopicPartition{Topic: "t", Partition: 0}
	corrupt := build(t, record.None, 0, 3)
	corrupt[len(corrupt)-1] ^= 1
	if err := p.SendBatch(ctx, tp, corrupt, nil); err == nil || !strings.Contains(err.Error(), "CRC") {
		t.Fatalf("SendBatch took a batch with a bad CRC: %v", err)
	}
	if err := p.SendCheckedBatch(ctx, tp, corrupt[:len(corrupt)-1], nil); err == nil {
		t.Fatal("SendCheckedBatch took a batch shorter than its length field")
	}
	var wg sync.WaitGroup
	for b := range 20 {
		wg.Add(1)
		send := p.SendCheckedBatch
		if b%2 == 0 {
			send = p.SendBatch
		}
		if err := send(ctx, tp, build(t, codecs[b%len(codecs)], b, 7), func(_ int64, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("batch %d: %v", b, err)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got, want := fmt.Sprint(keysByPartition(t, c, "t")[0]), fmt.Sprint(expectKeys(20, 7)); got != want {
		t.Fatalf("read back %s\nwant %s", got, want)
	}
}

// Partitions written one after another, each for the first time (as a
// restore of many partitions starts them), find their leaders at once:
// a metadata lookup that found every leader it looked for is no failed
// attempt to back off from. Before, each lookup within 5 s of the last
// counted as a retry, and the 30 partitions below waited up to the
// backoff's 5 s cap each (about a minute in all).
func TestNewPartitionsDoNotBackOff(t *testing.T) {
	const partitions = 30
	c := kfaketest.Start(t, kfaketest.Topics(partitions, "many"))
	p, _ := newProducer(t, c, producer.Config{})
	ctx := context.Background()
	start := time.Now()
	for i := range partitions {
		done := make(chan error, 1)
		tp := client.TopicPartition{Topic: "many", Partition: int32(i)}
		if err := p.SendBatch(ctx, tp, build(t, record.None, i, 5), func(_ int64, err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("%s: %v", tp, err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("%d partitions written one after another took %v: their leader lookups backed off", partitions, d)
	}
	got := keysByPartition(t, c, "many")
	for i := range partitions {
		want := fmt.Sprint([]string{fmt.Sprintf("b%04d-r000", i), fmt.Sprintf("b%04d-r001", i), fmt.Sprintf("b%04d-r002", i), fmt.Sprintf("b%04d-r003", i), fmt.Sprintf("b%04d-r004", i)})
		if g := fmt.Sprint(got[int32(i)]); g != want {
			t.Fatalf("partition %d holds %s, want %s", i, g, want)
		}
	}
}
