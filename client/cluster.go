package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
)

// A Client talks to one Kafka cluster: it bootstraps from seed brokers,
// keeps the cluster's metadata, and holds one connection per broker,
// dialled on first use and re-dialled after a failure. It is safe for
// concurrent use.
type Client struct {
	d     *Dialer
	seeds []string

	mu      sync.Mutex
	conns   map[string]*Conn // by address, or address and purpose
	meta    *Metadata
	closed  bool
	backoff Backoff
}

// Metadata is a snapshot of the cluster: brokers, and topics with their
// partitions' leaders. Treat it as read-only.
type Metadata struct {
	ClusterID  string
	Controller int32
	Brokers    map[int32]Broker
	Topics     map[string]*TopicMetadata
	Fetched    time.Time
}

// Broker is a broker's address.
type Broker struct {
	ID   int32
	Host string
	Port int32
	Rack string
}

// Addr is host:port.
func (b Broker) Addr() string { return net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))) }

// TopicMetadata is one topic; Err is set when the broker reported an error
// for it (UNKNOWN_TOPIC_OR_PARTITION, an authorization failure...).
type TopicMetadata struct {
	Name       string
	ID         [16]byte
	Internal   bool
	Partitions []PartitionMetadata // by partition index
	Err        error
}

// PartitionMetadata is one partition's leadership.
type PartitionMetadata struct {
	Partition   int32
	Leader      int32 // -1 when leaderless
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
	Err         error // e.g. LEADER_NOT_AVAILABLE
}

// New returns a client bootstrapped from the seed addresses: it fetches the
// cluster's metadata (for no topics) to learn the brokers.
func New(ctx context.Context, seeds []string, d *Dialer) (*Client, error) {
	if len(seeds) == 0 {
		return nil, errors.New("client: no seed brokers")
	}
	if d == nil {
		d = &Dialer{}
	}
	c := &Client{d: d, seeds: append([]string(nil), seeds...), conns: map[string]*Conn{}}
	if _, err := c.RefreshMetadata(ctx, []string{}); err != nil {
		return nil, err
	}
	return c, nil
}

// Close closes every connection.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = map[string]*Conn{}
}

// Metadata returns the last fetched metadata (never nil after New).
func (c *Client) Metadata() *Metadata {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.meta
}

// ConnTo returns a working connection to addr, dialling one if there is
// none or the last one failed.
func (c *Client) ConnTo(ctx context.Context, addr string) (*Conn, error) {
	return c.connFor(ctx, addr, addr)
}

// FetchConn returns a connection to broker id kept for fetches. A broker
// works through a connection's requests one at a time, so a fetch waiting
// out its MaxWait would hold up metadata, offset and produce requests
// queued behind it; fetches get a connection of their own.
func (c *Client) FetchConn(ctx context.Context, id int32) (*Conn, error) {
	b, ok := c.Metadata().Brokers[id]
	if !ok {
		return nil, &ConnError{Addr: fmt.Sprintf("broker %d", id), Err: errors.New("not in the cluster metadata"), Retriable: true}
	}
	return c.connFor(ctx, b.Addr(), b.Addr()+" (fetch)")
}

// connFor returns the connection kept under key, dialling addr if needed.
func (c *Client) connFor(ctx context.Context, addr, key string) (*Conn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, &ConnError{Addr: addr, Err: ErrConnClosed}
	}
	if conn := c.conns[key]; conn != nil && conn.Err() == nil {
		c.mu.Unlock()
		return conn, nil
	}
	c.mu.Unlock()
	// Dial outside the lock; if two callers race, the second connection
	// replaces the first, which is closed.
	conn, err := c.d.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.Close()
		return nil, &ConnError{Addr: addr, Err: ErrConnClosed}
	}
	if old := c.conns[key]; old != nil && old.Err() == nil {
		conn.Close()
		return old, nil
	}
	c.conns[key] = conn
	return conn, nil
}

// DialDedicated dials a connection to addr with the client's Dialer that
// the client does not keep or share: the caller uses it alone and closes
// it. It is for requests a broker may hold for long, such as a JoinGroup
// waiting for a group to rebalance, which would hold up every request
// queued behind them on a shared connection.
func (c *Client) DialDedicated(ctx context.Context, addr string) (*Conn, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, &ConnError{Addr: addr, Err: ErrConnClosed}
	}
	return c.d.Dial(ctx, addr)
}

// BrokerConn returns a connection to the broker with the given id.
func (c *Client) BrokerConn(ctx context.Context, id int32) (*Conn, error) {
	b, ok := c.Metadata().Brokers[id]
	if !ok {
		// Retriable: the metadata is stale and a refresh will say where
		// the partitions went.
		return nil, &ConnError{Addr: fmt.Sprintf("broker %d", id), Err: errors.New("not in the cluster metadata"), Retriable: true}
	}
	return c.ConnTo(ctx, b.Addr())
}

// AnyConn returns a connection to some broker, trying known brokers in
// random order and then the seeds.
func (c *Client) AnyConn(ctx context.Context) (*Conn, error) {
	var addrs []string
	if m := c.Metadata(); m != nil {
		for _, b := range m.Brokers {
			addrs = append(addrs, b.Addr())
		}
	}
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	addrs = append(addrs, c.seeds...)
	var errs []error
	for _, a := range addrs {
		conn, err := c.ConnTo(ctx, a)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("client: no broker reachable: %w", errors.Join(errs...))
}

// RefreshMetadata fetches metadata for the named topics (nil: every topic;
// empty: brokers only) and merges it into the cached snapshot.
func (c *Client) RefreshMetadata(ctx context.Context, topics []string) (*Metadata, error) {
	var last error
	for attempt := 0; ; attempt++ {
		m, err := c.fetchMetadata(ctx, topics)
		if err == nil {
			return c.merge(m, topics == nil), nil
		}
		last = err
		if !IsRetriable(err) || attempt >= 5 {
			return nil, last
		}
		if err := c.backoff.Sleep(ctx, attempt); err != nil {
			return nil, withLast(err, last)
		}
	}
}

func (c *Client) fetchMetadata(ctx context.Context, topics []string) (*Metadata, error) {
	conn, err := c.AnyConn(ctx)
	if err != nil {
		return nil, err
	}
	v, err := conn.Version(api.Metadata)
	if err != nil {
		return nil, err
	}
	s := api.Metadata.Request
	req := protocol.NewRecord(s)
	if topics == nil {
		// Null asks for every topic (v1+); v0, where the array cannot be
		// null, writes it empty, which meant "every topic" there.
		req.SetName("Topics", nil)
	} else {
		req.SetName("Topics", []*protocol.Record{})
		for _, t := range topics {
			req.Append(s.Handle("Topics")).SetName("Name", t)
		}
	}
	resp, err := conn.Do(ctx, req, v, 0)
	if err != nil {
		return nil, err
	}
	defer resp.Release()
	var d protocol.Decoder
	r, err := api.DecodeMetadataResponse(&d, v, resp.Body)
	if err != nil {
		return nil, &ConnError{Addr: conn.Addr(), Err: err}
	}
	if err := protocol.ErrorForCode(r.ErrorCode()); err != nil {
		return nil, fmt.Errorf("client: metadata from %s: %w", conn.Addr(), err)
	}
	m := &Metadata{ClusterID: string(r.ClusterID()), Controller: r.ControllerID(),
		Brokers: map[int32]Broker{}, Topics: map[string]*TopicMetadata{}, Fetched: time.Now()}
	for i := 0; i < r.NumBrokers(); i++ {
		id, host, port, rack := r.Broker(i)
		m.Brokers[id] = Broker{ID: id, Host: string(host), Port: port, Rack: string(rack)}
	}
	for i := 0; i < r.NumTopics(); i++ {
		t := r.Topic(i)
		tm := &TopicMetadata{Name: string(t.Name()), ID: t.TopicID(), Internal: t.IsInternal(), Err: protocol.ErrorForCode(t.ErrorCode())}
		for j := 0; j < t.NumPartitions(); j++ {
			p := t.Partition(j)
			pm := PartitionMetadata{Partition: p.Index(), Leader: p.Leader(), LeaderEpoch: p.LeaderEpoch(),
				Replicas: int32s(p.Replicas()), ISR: int32s(p.ISR()), Err: protocol.ErrorForCode(p.ErrorCode())}
			tm.Partitions = append(tm.Partitions, pm)
		}
		sortPartitions(tm.Partitions)
		m.Topics[tm.Name] = tm
	}
	return m, nil
}

func int32s(l api.Int32List) []int32 {
	out := make([]int32, l.Len())
	for i := range out {
		out[i] = l.At(i)
	}
	return out
}

func sortPartitions(ps []PartitionMetadata) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].Partition < ps[j-1].Partition; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// merge installs m as the current snapshot. Unless m covers every topic,
// topics it does not mention keep their previous metadata.
func (c *Client) merge(m *Metadata, all bool) *Metadata {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !all && c.meta != nil {
		for name, t := range c.meta.Topics {
			if _, ok := m.Topics[name]; !ok {
				m.Topics[name] = t
			}
		}
	}
	c.meta = m
	return m
}

// Leader returns the leader of a partition from the cached metadata,
// refreshing it once if the topic is unknown or the partition leaderless.
func (c *Client) Leader(ctx context.Context, topic string, partition int32) (PartitionMetadata, error) {
	p, err := c.Metadata().leader(topic, partition)
	if err == nil || !protocol.IsRetriable(err) {
		return p, err
	}
	if _, err := c.RefreshMetadata(ctx, []string{topic}); err != nil {
		return PartitionMetadata{}, err
	}
	return c.Metadata().leader(topic, partition)
}

// Partition returns a partition's metadata. Partitions are sorted by index
// and normally numbered 0..n-1; a gap is searched for.
func (t *TopicMetadata) Partition(p int32) (PartitionMetadata, bool) {
	if p < 0 {
		return PartitionMetadata{}, false
	}
	if int(p) < len(t.Partitions) && t.Partitions[p].Partition == p {
		return t.Partitions[p], true
	}
	for _, pm := range t.Partitions {
		if pm.Partition == p {
			return pm, true
		}
	}
	return PartitionMetadata{}, false
}

// leader looks a partition's leader up in this snapshot only.
func (m *Metadata) leader(topic string, partition int32) (PartitionMetadata, error) {
	t := m.Topics[topic]
	if t == nil {
		return PartitionMetadata{}, fmt.Errorf("client: %s/%d: %w", topic, partition, protocol.ErrUnknownTopicOrPartition)
	}
	if t.Err != nil {
		return PartitionMetadata{}, fmt.Errorf("client: topic %s: %w", topic, t.Err)
	}
	p, ok := t.Partition(partition)
	switch {
	case !ok:
		return PartitionMetadata{}, fmt.Errorf("client: %s/%d: %w", topic, partition, protocol.ErrUnknownTopicOrPartition)
	case p.Err != nil:
		return PartitionMetadata{}, fmt.Errorf("client: %s/%d: %w", topic, partition, p.Err)
	case p.Leader < 0:
		return PartitionMetadata{}, fmt.Errorf("client: %s/%d has no leader: %w", topic, partition, protocol.ErrLeaderNotAvailable)
	}
	return p, nil
}

// withLast returns err (a context error ending a retry loop) wrapping the
// last error of the retries too, so that callers can still tell what
// went wrong, and whether it was retriable.
func withLast(err, last error) error {
	if last == nil {
		return err
	}
	return fmt.Errorf("%w (last error: %w)", err, last)
}

// IsRetriable reports whether an error may go away on retry: a retriable
// Kafka error code or a connection failure.
func IsRetriable(err error) bool {
	var ce *ConnError
	if errors.As(err, &ce) {
		return ce.Retriable
	}
	return protocol.IsRetriable(err)
}

// Backoff is exponential backoff with full jitter. The zero value starts
// at 100 ms and caps at 5 s.
type Backoff struct {
	Base, Max time.Duration
}

// Sleep waits before retry number attempt (0-based), or until ctx ends.
func (b Backoff) Sleep(ctx context.Context, attempt int) error {
	base, limit := b.Base, b.Max
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if limit <= 0 {
		limit = 5 * time.Second
	}
	d := base << min(attempt, 20)
	if d > limit || d <= 0 {
		d = limit
	}
	d = time.Duration(rand.Int64N(int64(d)) + 1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
