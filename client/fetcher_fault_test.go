package client

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktape/ktape/record"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// rawRecords fetches partition 0 of topic from offset 0 with a raw kmsg
// request and returns the record set exactly as the broker sends it.
func rawRecords(t *testing.T, c *kfake.Cluster, topic string) []byte {
	t.Helper()
	// Pinned below Fetch v13, where topics are named rather than given by id.
	kc, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.MaxVersions(kversion.V2_8_0()))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.MaxBytes = 1 << 30
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 30
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), kc)
	if err != nil {
		t.Fatal(err)
	}
	rs := resp.Topics[0].Partitions[0].RecordBatches
	if len(rs) == 0 {
		t.Fatalf("raw fetch returned no records (error %d)", resp.Topics[0].Partitions[0].ErrorCode)
	}
	return rs
}

// A response whose last batch is cut short delivers only the complete
// batches; the rest is fetched again, nothing lost or repeated.
func TestFetcherTruncatedResponse(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	produce(t, c, "t", 1, 200, kgo.NoCompression())
	want := consumeKgo(t, c, "t", 200)
	raw := rawRecords(t, c, "t")
	it := record.NewIter(raw)
	it.Next()
	firstEnd := it.Pos()
	var served atomic.Bool
	c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.FetchRequest)
		if served.Swap(true) || r.Topics[0].Partitions[0].FetchOffset != 0 {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.FetchResponse)
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic, rt.TopicID = r.Topics[0].Topic, r.Topics[0].TopicID
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.HighWatermark, rp.LastStableOffset = 200, 200
		rp.RecordBatches = raw[:firstEnd+30] // one batch and 30 bytes of the next
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)
		return resp, nil, true
	})
	f := NewFetcher(newFetchClient(t, c), FetchConfig{})
	defer f.Close()
	got, _ := fetchAll(t, f, "t", 1, len(want))
	if err := equalStrings(got, want); err != nil {
		t.Fatal(err)
	}
	if !served.Load() {
		t.Fatal("the truncated response was never served")
	}
}

// A broker that drops the connection in the middle of fetching costs a
// reconnect, not data.
func TestFetcherDroppedConnection(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(2, "t"))
	produce(t, c, "t", 2, 300, kgo.NoCompression())
	want := consumeKgo(t, c, "t", 600)
	var n atomic.Int32
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if n.Add(1)%3 == 2 { // every third fetch: drop the connection
			return nil, errors.New("dropped"), true
		}
		return nil, nil, false
	})
	f := NewFetcher(newFetchClient(t, c), FetchConfig{PartitionMaxBytes: 2 << 10, Backoff: Backoff{Base: time.Millisecond}})
	defer f.Close()
	got, _ := fetchAll(t, f, "t", 2, len(want))
	if err := equalStrings(got, want); err != nil {
		t.Fatal(err)
	}
	if n.Load() < 3 {
		t.Fatalf("only %d fetches: no connection was dropped", n.Load())
	}
}

// A throttled response delays the next fetch to that broker by the
// throttle time (Fetch v8+, where the broker answers before throttling:
// KIP-219).
func TestFetcherHonoursThrottle(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	produce(t, c, "t", 1, 50, kgo.NoCompression())
	var mu sync.Mutex
	var times []time.Time
	var version int16
	c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		version = req.GetVersion()
		times = append(times, time.Now())
		first := len(times) == 1
		mu.Unlock()
		if !first {
			return nil, nil, false
		}
		r := req.(*kmsg.FetchRequest)
		resp := r.ResponseKind().(*kmsg.FetchResponse)
		resp.ThrottleMillis = 300
		return resp, nil, true
	})
	f := NewFetcher(newFetchClient(t, c), FetchConfig{})
	defer f.Close()
	f.Assign(TopicPartition{"t", 0}, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fe, err := f.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fe.Release()
	mu.Lock()
	defer mu.Unlock()
	if version < throttleAfterFetchVersion {
		t.Fatalf("Fetch v%d: the test needs v%d or later", version, throttleAfterFetchVersion)
	}
	if len(times) < 2 || times[1].Sub(times[0]) < 290*time.Millisecond {
		t.Fatalf("second fetch %v after a 300 ms throttle", times[1].Sub(times[0]))
	}
	if d := f.Throttled(); d < 290*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Throttled() = %v after one throttle of 300 ms", d)
	}
}

// A leader that goes away and comes back on the same address (a broker
// restart) costs reconnects and a leadership move, not data.
func TestFetcherSurvivesBrokerRestart(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(3), kfake.SeedTopics(3, "t"))
	produce(t, c, "t", 3, 300, kgo.NoCompression())
	want := consumeKgo(t, c, "t", 900)
	cl := newFetchClient(t, c)
	f := NewFetcher(cl, FetchConfig{PartitionMaxBytes: 512, Backoff: Backoff{Base: time.Millisecond, Max: 20 * time.Millisecond}})
	defer f.Close()
	cl.backoff = Backoff{Base: time.Millisecond, Max: 20 * time.Millisecond}
	// The restart starts at the first fetch request, not after a fixed
	// sleep, which a fast run could outlast: the fetch would then be over
	// before the broker went away. The goroutine is waited for, so that
	// AddNode does not run into the cluster's Close at cleanup.
	fetching := make(chan struct{})
	var once sync.Once
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		once.Do(func() { close(fetching) })
		return nil, nil, false
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var removedAt atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-fetching:
		case <-stop:
			return
		}
		id := c.LeaderFor("t", 0)
		b, ok := cl.Metadata().Brokers[id]
		if !ok {
			t.Errorf("broker %d, the leader of t/0, is not in the client's metadata", id)
			return
		}
		_, port, _ := net.SplitHostPort(b.Addr())
		p, _ := strconv.Atoi(port)
		if err := c.RemoveNode(id); err != nil {
			t.Errorf("remove node %d: %v", id, err)
			return
		}
		removedAt.Store(time.Now().UnixNano())
		time.Sleep(50 * time.Millisecond) // the broker stays away a while
		if _, _, err := c.AddNode(id, p); err != nil {
			t.Errorf("add node %d back: %v", id, err)
		}
	}()
	defer func() { // also when fetchAll fails the test
		close(stop)
		wg.Wait()
	}()
	got, _ := fetchAll(t, f, "t", 3, len(want))
	done := time.Now().UnixNano()
	if err := equalStrings(got, want); err != nil {
		t.Fatal(err)
	}
	if r := removedAt.Load(); r == 0 || r > done {
		t.Fatal("the broker was not restarted while fetching; the test proved nothing")
	}
}

// fetchTo polls f until tp's next offset reaches want, failing the test on a
// partition error or when timeout passes first.
func fetchTo(t *testing.T, f *Fetcher, tp TopicPartition, want int64, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	next := int64(-1)
	for next < want {
		fe, err := f.Poll(ctx)
		if err != nil {
			t.Fatalf("%s: next offset %d, want %d (-1: nothing fetched): %v", tp, next, want, err)
		}
		for _, fp := range fe.Partitions {
			if fp.Err != nil {
				t.Fatalf("%s: %v", fp.TopicPartition, fp.Err)
			}
			if fp.TopicPartition == tp {
				next = fp.NextOffset
			}
		}
		fe.Release()
	}
}

// A broker replaced on its address while the fetcher's connection to the
// old one stays open (kfake's RemoveNode closes the listener, not the
// connections) answers NOT_LEADER_OR_FOLLOWER for a partition that the
// metadata, asked again, says it leads at the very epoch the fetch sent.
// The fetcher must stop trusting that connection and dial the address
// again, where the new broker answers, rather than refresh and retry over
// it forever.
func TestFetcherRedialsBrokerReplacedOnItsAddress(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(2), kfake.SeedTopics(1, "t"))
	const leader = 1
	if err := c.MoveTopicPartition("t", 0, leader); err != nil {
		t.Fatal(err)
	}
	produce(t, c, "t", 1, 100, kgo.NoCompression())
	fast := Backoff{Base: time.Millisecond, Max: 20 * time.Millisecond}
	cl := newFetchClient(t, c)
	cl.backoff = fast
	f := NewFetcher(cl, FetchConfig{MaxWait: 50 * time.Millisecond, Backoff: fast})
	defer f.Close()
	tp := TopicPartition{"t", 0}
	f.Assign(tp, 0)
	fetchTo(t, f, tp, 100, 10*time.Second) // the fetch connection to the leader is open

	_, port, err := net.SplitHostPort(cl.Metadata().Brokers[leader].Addr())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	if err := c.RemoveNode(leader); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.AddNode(leader, p); err != nil {
		t.Fatalf("add node %d back on port %d: %v", leader, p, err)
	}
	if err := c.MoveTopicPartition("t", 0, leader); err != nil { // the new broker leads
		t.Fatal(err)
	}
	produce(t, c, "t", 1, 100, kgo.NoCompression())
	fetchTo(t, f, tp, 200, 10*time.Second)
}

// Leaders restarted again and again on their addresses while several
// partitions are fetched in small pieces: every record arrives once.
func TestFetcherSurvivesRepeatedBrokerRestarts(t *testing.T) {
	const parts, perPart, restarts = 6, 300, 8
	c := newCluster(t, kfake.NumBrokers(3), kfake.SeedTopics(parts, "t"))
	produce(t, c, "t", parts, perPart, kgo.NoCompression())
	want := consumeKgo(t, c, "t", parts*perPart)
	fast := Backoff{Base: time.Millisecond, Max: 20 * time.Millisecond}
	cl := newFetchClient(t, c)
	cl.backoff = fast
	f := NewFetcher(cl, FetchConfig{PartitionMaxBytes: 256, MaxWait: 50 * time.Millisecond, Backoff: fast})
	defer f.Close()
	ports := map[int32]int{}
	for id, b := range cl.Metadata().Brokers {
		_, port, _ := net.SplitHostPort(b.Addr())
		ports[id], _ = strconv.Atoi(port)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var restarted atomic.Int32
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := int32(0); i < restarts; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			id := c.LeaderFor("t", i%parts)
			if err := c.RemoveNode(id); err != nil {
				t.Errorf("remove node %d: %v", id, err)
				return
			}
			time.Sleep(10 * time.Millisecond)
			if _, _, err := c.AddNode(id, ports[id]); err != nil {
				t.Errorf("add node %d back on port %d: %v", id, ports[id], err)
				return
			}
			restarted.Add(1)
		}
	}()
	defer func() { // also when fetchAll fails the test
		close(stop)
		wg.Wait()
	}()
	got, _ := fetchAll(t, f, "t", parts, len(want))
	if err := equalStrings(got, want); err != nil {
		t.Fatal(err)
	}
	if restarted.Load() == 0 {
		t.Fatal("no broker was restarted while fetching; the test proved nothing")
	}
}

// A batch whose CRC-32C does not match its bytes stops the partition with
// an error naming the CRC: nothing of the response is delivered as data.
// The backup engine relies on this check (its segment writer does not
// repeat it).
func TestFetcherCorruptBatch(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	produce(t, c, "t", 1, 50, kgo.NoCompression())
	raw := bytes.Clone(rawRecords(t, c, "t"))
	raw[len(raw)-5] ^= 1 // in the last batch's last record
	c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.FetchRequest)
		resp := r.ResponseKind().(*kmsg.FetchResponse)
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic, rt.TopicID = r.Topics[0].Topic, r.Topics[0].TopicID
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.HighWatermark, rp.LastStableOffset = 50, 50
		rp.RecordBatches = raw
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)
		return resp, nil, true
	})
	f := NewFetcher(newFetchClient(t, c), FetchConfig{})
	defer f.Close()
	f.Assign(TopicPartition{"t", 0}, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fe, err := f.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Release()
	if len(fe.Partitions) != 1 {
		t.Fatalf("%d partitions delivered", len(fe.Partitions))
	}
	if fp := fe.Partitions[0]; fp.Err == nil || !strings.Contains(fp.Err.Error(), "CRC-32C") || len(fp.Records) != 0 {
		t.Fatalf("corrupt batch delivered as %d bytes, error %v; want no records and an error naming the CRC", len(fp.Records), fp.Err)
	}
}
