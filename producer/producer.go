// Package producer sends records to Kafka: idempotent by default, ordered
// per partition, with byte-identical retries. It has two entry points
// feeding one sender:
//
//   - Append copies a record into its partition's current batch, in its
//     final wire layout, claiming the space with one atomic add: no lock,
//     channel, allocation or clock read per record (appender.go).
//   - SendBatch takes a complete, already-encoded v2 batch (any codec),
//     rewrites its header in place (producer id, epoch, base sequence; base
//     offset 0) and sends the bytes untouched, from the caller's memory,
//     with writev: what a restore needs.
//
// # Algorithm
//
// Each partition has a queue of batches not yet acknowledged; the first
// MaxInFlight of them may be in flight. One sender loop per leader takes
// the next unsent batch of each partition it leads (one batch per partition
// per request, as Kafka requires) and sends them in one Produce request,
// pipelined on the broker's connection. Responses arrive in order per
// connection, so a partition's acknowledgements come in queue order.
//
// When a batch fails with a retriable error (leadership moved, connection
// lost), its partition drains: the batches behind it, already in flight,
// fail too (with OUT_OF_ORDER_SEQUENCE_NUMBER or the same error), and once
// none is in flight the partition resends from its first unacknowledged
// batch, with the same sequence numbers and bytes. A broker that already
// wrote a resent batch recognises its sequence (it keeps the last five per
// producer and partition) and acknowledges it again without writing it
// twice. Nothing is lost, duplicated or reordered.
//
// When the broker no longer shares a partition's sequence state (it forgot
// the producer id, or a batch whose outcome was unknown was failed and left
// a gap), the partition starts over under a new producer id: its queued
// batches, none of which was written, are renumbered from sequence 0 and
// sent in the same order. Until the first acknowledgement under a producer
// id, a partition has one batch in flight: a broker accepts any sequence
// from a producer id it has no state for, so a lost first batch would let
// the second in ahead of it.
//
// # Limits
//
// Other non-retriable errors (a batch too large, authorization) fail every
// pending batch of the partition, and the partition continues with the
// next. There are no transactions.
package producer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
	"github.com/ktape/ktape/record"
)

// Config configures a Producer. Zero values are the defaults.
type Config struct {
	// Acks is -1 (all in-sync replicas; the default and required for
	// idempotence), 1 (the leader) or 0 (no acknowledgement).
	Acks int16
	// AcksSet must be true for Acks 0 to mean 0 rather than the default.
	AcksSet bool
	// NotIdempotent turns idempotence off (it needs Acks -1).
	NotIdempotent bool
	// MaxInFlight is the number of batches per partition in flight at
	// once: 1 to 5 (the broker remembers five per producer), default 5.
	MaxInFlight int
	// RequestTimeout is the Produce request's timeout; default 30 s.
	RequestTimeout time.Duration
	// DeliveryTimeout bounds the time from SendBatch to acknowledgement,
	// retries included; default 2 minutes.
	DeliveryTimeout time.Duration
	// MaxBufferedBytes bounds the bytes of batches not yet acknowledged;
	// SendBatch waits (or fails, see SendBatch) beyond it. Default 64 MiB.
	MaxBufferedBytes int64
	Backoff          client.Backoff

	// The record-append path (Append):

	// BatchSize is the size of each batch buffer, header included; a
	// record must fit in one. Default 256 KiB: every partition being
	// appended to keeps its open batch warm in the CPU caches, and 1 MiB
	// batches measured 25% slower across 16 partitions (10% faster on
	// one). At most the topic's max.message.bytes.
	BatchSize int
	// Linger is how long a batch waits for more records before it is
	// sent; default 5 ms, at most 8 s (timestamp deltas are two bytes).
	Linger time.Duration
	// LingerSet must be true for Linger 0 to mean 0 (send at once).
	LingerSet bool
	// Compression is the codec appended batches are compressed with.
	Compression record.Codec
	// OnError, if set, is called for each appended batch that fails, on
	// the delivery goroutine; it must not block.
	OnError func(tp client.TopicPartition, err error)
}

func (c Config) withDefaults() (Config, error) {
	if !c.AcksSet && c.Acks == 0 {
		c.Acks = -1
	}
	if c.Acks != -1 && c.Acks != 0 && c.Acks != 1 {
		return c, fmt.Errorf("producer: acks %d: must be -1, 0 or 1", c.Acks)
	}
	if !c.NotIdempotent && c.Acks != -1 {
		return c, fmt.Errorf("producer: idempotence needs acks -1 (all), not %d", c.Acks)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 5
	}
	if c.MaxInFlight < 1 || (!c.NotIdempotent && c.MaxInFlight > 5) {
		return c, fmt.Errorf("producer: max in flight %d: must be 1 to 5 with idempotence", c.MaxInFlight)
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.DeliveryTimeout <= 0 {
		c.DeliveryTimeout = 2 * time.Minute
	}
	if c.MaxBufferedBytes <= 0 {
		c.MaxBufferedBytes = 64 << 20
	}
	if c.BatchSize == 0 {
		c.BatchSize = 256 << 10
	}
	if c.BatchSize < 1024 || c.BatchSize > 64<<20 {
		return c, fmt.Errorf("producer: batch size %d: must be 1 KiB to 64 MiB", c.BatchSize)
	}
	if int64(c.BatchSize)*2 > c.MaxBufferedBytes {
		return c, fmt.Errorf("producer: max buffered bytes %d must hold at least two batches of %d", c.MaxBufferedBytes, c.BatchSize)
	}
	if c.Linger == 0 && !c.LingerSet {
		c.Linger = 5 * time.Millisecond
	}
	if c.Linger < 0 || c.Linger > 8*time.Second {
		return c, fmt.Errorf("producer: linger %s: must be 0 to 8s", c.Linger)
	}
	switch c.Compression {
	case record.None, record.Gzip, record.Snappy, record.LZ4, record.Zstd:
	default:
		return c, fmt.Errorf("producer: unknown compression codec %d", c.Compression)
	}
	return c, nil
}

// Done is called once per batch with the offset the broker gave its first
// record (-1 when unknown: acks 0, or a duplicate acknowledged again), or
// the error that ended its delivery. It runs on a producer goroutine and
// must not block; the batch's buffer is the caller's again when it runs.
type Done func(baseOffset int64, err error)

// Producer sends batches. It is safe for concurrent use.
type Producer struct {
	c   *client.Client
	cfg Config

	pid   int64
	epoch int16

	mu       sync.Mutex
	cond     *sync.Cond
	parts    map[client.TopicPartition]*partition
	loops    map[int32]bool
	buffered int64
	closed   bool
	// stopped: Stop was called; nothing more is sent (see Stop).
	stopped bool
	// Callbacks run in order on their own goroutine, never under mu, so
	// that a Done may call SendBatch or Flush.
	callbacks []func()
	resets    int          // partitions started over under a new producer id
	throttles atomic.Int64 // responses asking for a pause (KIP-219)
	throttled atomic.Int64 // nanoseconds senders paused for them
	cbIdle    bool
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	// The record-append path (appender.go).
	shut       atomic.Bool
	topicsMu   sync.Mutex // serializes addTopic
	topics     atomic.Pointer[map[string]*topicAppender]
	firstTopic atomic.Pointer[topicAppender]
	appenders  atomic.Pointer[[]*partAppender]
	clock      atomic.Int64 // wall clock in ms, kept by the sealer
	lingerMs   int64
	sealWake   chan struct{}
	flushing   atomic.Int32
	space      notifier // a batch buffer was freed
	resolvedN  notifier // a generation was resolved
	slabs      bufPool  // batch buffers of the append path
	outs       bufPool  // compressed batches of the append path
}

type partition struct {
	tp          client.TopicPartition
	leader      int32 // -1: look up
	epoch       int32
	queue       []*pending // unacknowledged, in order
	next        int        // index in queue of the next batch to send
	sent        int        // batches in flight (pending.inFlight)
	nextSeq     int32
	draining    bool // a batch failed: resend from queue[0] once sent == 0
	needRefresh bool
	// lookedUp: a leader lookup has included the partition; another
	// one while it still has no leader is a retry, paced by the backoff.
	lookedUp bool
	// The producer id and epoch this partition's batches carry. A
	// partition whose sequence state the broker no longer shares (an
	// unknown producer id, a sequence gap after a batch of unknown outcome
	// failed) starts over under a new producer id: needPID until then.
	pid      int64
	pidEpoch int16
	needPID  bool
	// confirmed: a batch under the current producer id was acknowledged.
	// Until then only one batch is in flight: a broker that has no state
	// for a producer id accepts its first batch whatever its sequence, so
	// a lost first batch would let the second one in ahead of it.
	confirmed bool
}

type pending struct {
	batch    record.Batch
	seq      int32
	done     Done
	deadline time.Time
	inFlight bool  // sent, response not yet settled
	writing  bool  // being written to the socket: the bytes are in use
	failed   error // failed while writing: reported once the write returns
}

// New returns a producer sending through c. With idempotence on (the
// default) it first asks the cluster for a producer id.
func New(ctx context.Context, c *client.Client, cfg Config) (*Producer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Producer{c: c, cfg: cfg, pid: -1, epoch: -1, parts: map[client.TopicPartition]*partition{}, loops: map[int32]bool{}}
	p.cond = sync.NewCond(&p.mu)
	p.topics.Store(&map[string]*topicAppender{})
	p.appenders.Store(&[]*partAppender{})
	p.clock.Store(time.Now().UnixMilli())
	p.lingerMs = cfg.Linger.Milliseconds()
	p.sealWake = make(chan struct{}, 1)
	p.slabs = bufPool{max: int(cfg.MaxBufferedBytes / int64(cfg.BatchSize)), size: cfg.BatchSize}
	p.outs = bufPool{max: p.slabs.max}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if !cfg.NotIdempotent {
		if p.pid, p.epoch, err = initProducerID(ctx, c, cfg.Backoff); err != nil {
			return nil, err
		}
	}
	p.wg.Add(3)
	go p.supervise()
	go p.deliver()
	go p.sealer()
	return p, nil
}

// deliver runs queued callbacks in order, outside the lock.
func (p *Producer) deliver() {
	defer p.wg.Done()
	p.mu.Lock()
	for {
		for len(p.callbacks) == 0 && !p.closed {
			p.cbIdle = true
			p.cond.Wait()
		}
		p.cbIdle = false
		cbs := p.callbacks
		p.callbacks = nil
		if len(cbs) == 0 && p.closed {
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for _, cb := range cbs {
			cb()
		}
		p.mu.Lock()
		p.cond.Broadcast()
	}
}

// finishLocked queues pd's callback. Caller holds p.mu.
func (p *Producer) finishLocked(pd *pending, base int64, err error) {
	p.buffered -= int64(len(pd.batch))
	if pd.done != nil {
		done := pd.done
		p.callbacks = append(p.callbacks, func() { done(base, err) })
	}
	p.cond.Broadcast()
}

// ProducerID returns the producer id and epoch (-1, -1 when not
// idempotent).
func (p *Producer) ProducerID() (int64, int16) { return p.pid, p.epoch }

func initProducerID(ctx context.Context, c *client.Client, backoff client.Backoff) (int64, int16, error) {
	for attempt := 0; ; attempt++ {
		conn, err := c.AnyConn(ctx)
		if err != nil {
			return -1, -1, err
		}
		v, err := conn.Version(api.InitProducerId)
		if err != nil {
			return -1, -1, err
		}
		req := protocol.NewRecord(api.InitProducerId.Request).
			SetName("TransactionalId", nil).
			SetName("TransactionTimeoutMs", int32(-1))
		resp, err := conn.Do(ctx, req, v, 0)
		if err == nil {
			var rec *protocol.Record
			rec, err = protocol.Decode(api.InitProducerId.Response, v, resp.Body)
			resp.Release()
			if err == nil {
				s := api.InitProducerId.Response
				if err = protocol.ErrorForCode(rec.Int16(s.Handle("ErrorCode"))); err == nil {
					return rec.Int64(s.Handle("ProducerId")), rec.Int16(s.Handle("ProducerEpoch")), nil
				}
			}
		}
		if !client.IsRetriable(err) || attempt >= 5 {
			return -1, -1, fmt.Errorf("producer: InitProducerId: %w", err)
		}
		if err := backoff.Sleep(ctx, attempt); err != nil {
			return -1, -1, err
		}
	}
}

// ErrBufferFull is returned by SendBatch with a nil context when the
// buffered bytes would exceed MaxBufferedBytes.
var ErrBufferFull = errors.New("producer: buffer full")

// SendBatch queues a complete v2 batch for tp. Its header is rewritten in
// place (base offset 0, leader epoch -1, and with idempotence the producer
// id, epoch and sequence), so the producer owns batch until done runs. The
// batch must have contiguous offset deltas (renumber compacted batches
// with record.Renumberer first). When the buffer is full, SendBatch waits
// until ctx ends, or with a nil ctx returns ErrBufferFull at once.
func (p *Producer) SendBatch(ctx context.Context, tp client.TopicPartition, batch record.Batch, done Done) error {
	if err := batch.Validate(); err != nil {
		return fmt.Errorf("producer: %s: %w", tp, err)
	}
	return p.send(ctx, tp, batch, done)
}

// SendCheckedBatch is SendBatch for a batch whose CRC the caller has
// just checked (a restore checks each stored batch as it reads it): only
// its framing is checked again, so that its bytes are not read twice.
func (p *Producer) SendCheckedBatch(ctx context.Context, tp client.TopicPartition, batch record.Batch, done Done) error {
	if err := batch.ValidateFraming(); err != nil {
		return fmt.Errorf("producer: %s: %w", tp, err)
	}
	return p.send(ctx, tp, batch, done)
}

func (p *Producer) send(ctx context.Context, tp client.TopicPartition, batch record.Batch, done Done) error {
	if !batch.Contiguous() {
		return fmt.Errorf("producer: %s: batch at offset %d has offset gaps (renumber it first)", tp, batch.BaseOffset())
	}
	size := int64(len(batch))
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.closed && p.buffered > 0 && p.buffered+size > p.cfg.MaxBufferedBytes {
		if ctx == nil {
			return ErrBufferFull
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		stop := context.AfterFunc(ctx, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
		p.cond.Wait()
		stop()
	}
	if p.closed {
		return errors.New("producer: closed")
	}
	if p.stopped {
		return errStopped
	}
	p.enqueueLocked(p.partitionLocked(tp), batch, done)
	return nil
}

// partitionLocked returns tp's send queue, creating it. Caller holds p.mu.
func (p *Producer) partitionLocked(tp client.TopicPartition) *partition {
	part := p.parts[tp]
	if part == nil {
		part = &partition{tp: tp, leader: -1, pid: p.pid, pidEpoch: p.epoch}
		p.parts[tp] = part
	}
	return part
}

// enqueueLocked queues a batch for sending: its header gets base offset 0,
// leader epoch -1 and, with idempotence, the producer id, epoch and the
// partition's next sequence. Caller holds p.mu.
func (p *Producer) enqueueLocked(part *partition, batch record.Batch, done Done) {
	pd := &pending{batch: batch, done: done, deadline: time.Now().Add(p.cfg.DeliveryTimeout)}
	batch.SetBaseOffset(0)
	batch.SetPartitionLeaderEpoch(-1)
	if !p.cfg.NotIdempotent {
		pd.seq = part.nextSeq
		part.nextSeq += batch.NumRecords() // wraps at MaxInt32 to negative...
		if part.nextSeq < 0 {
			part.nextSeq &= 0x7fffffff // ...and Kafka's sequences wrap to 0
		}
		batch.SetProducer(record.ProducerState{ProducerID: part.pid, ProducerEpoch: part.pidEpoch, BaseSequence: pd.seq})
	}
	part.queue = append(part.queue, pd)
	p.buffered += int64(len(batch))
	p.cond.Broadcast()
}

// Flush sends every record appended so far at once, without waiting for
// the linger, and waits until it and every batch handed over so far are
// acknowledged or failed.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.flushAppends(ctx); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.buffered > 0 || len(p.callbacks) > 0 || !p.cbIdle {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("producer: flush: %d bytes still unacknowledged: %w", p.buffered, err)
		}
		p.cond.Wait()
	}
	return nil
}

// Close stops the producer; batches and records not yet acknowledged fail
// (call Flush first to deliver them).
func (p *Producer) Close() {
	p.shut.Store(true)
	p.space.notify()
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	for _, part := range p.parts {
		for _, pd := range part.queue {
			pd.writing = false // every writer has stopped
		}
		p.failLocked(part, errNotAcked)
	}
	cbs := p.callbacks
	p.callbacks = nil
	p.mu.Unlock()
	for _, cb := range cbs {
		cb()
	}
	p.closeAppends()
}

var errNotAcked = fmt.Errorf("%w before the batch was acknowledged", ErrClosed)

var errStopped = fmt.Errorf("%w: stopped before the batch was sent", ErrClosed)

// Stop stops sending, for a caller that hands its partitions over to
// another producer (a restore worker whose partitions were given to
// another process): it must know that nothing of its own is appended to
// them any more once Stop returns. No request is written from now on;
// the batches queued and not sent fail with ErrClosed at once, and Stop
// waits until every request already written is answered, or its
// connection has failed. A connection fails a request not answered
// within its timeout (the produce timeout plus the client's request
// timeout) by closing itself, so that wait is bounded; a batch whose
// request fails is not sent again. What Stop cannot rule out is a broker
// that read a request whose connection then broke and appends it a
// moment later: the next writer waits for the end offsets to settle for
// that.
//
// Stop returns ctx's error if it ends first, with requests still
// unanswered. Close the producer after Stop; batches whose requests
// failed are reported failed then.
func (p *Producer) Stop(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	for _, part := range p.parts {
		// queue[next:] were never sent (a partition that drains resends
		// from next = 0 only once nothing is in flight, and a stopped
		// producer takes none of them).
		for _, pd := range part.queue[part.next:] {
			p.finishLocked(pd, -1, errStopped)
		}
		clear(part.queue[part.next:])
		part.queue = part.queue[:part.next]
	}
	p.cond.Broadcast()
	for {
		n := 0
		for _, part := range p.parts {
			n += part.sent
		}
		if n == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("producer: stop: %d requests still unanswered: %w", n, err)
		}
		p.cond.Wait()
	}
}

// supervise looks up leaders and starts one sender loop per leader.
func (p *Producer) supervise() {
	defer p.wg.Done()
	var lastRefresh time.Time
	for attempt := 0; ; {
		p.mu.Lock()
		for !p.closed && !p.needsLeaders() && len(p.readyForPID()) == 0 {
			p.cond.Wait()
		}
		if p.closed {
			p.mu.Unlock()
			return
		}
		if parts := p.readyForPID(); len(parts) > 0 {
			p.mu.Unlock()
			p.resetProducerIDs(parts)
			continue
		}
		var topics []string
		seen := map[string]bool{}
		retry := false // a partition looked up before, or after an error, still needs a leader
		for _, part := range p.parts {
			if (part.leader < 0 || part.needRefresh) && len(part.queue) > 0 {
				retry = retry || part.needRefresh || part.lookedUp
				part.lookedUp = true
				if !seen[part.tp.Topic] {
					seen[part.tp.Topic] = true
					topics = append(topics, part.tp.Topic)
				}
			}
		}
		p.mu.Unlock()
		// Paced like the fetcher's: an error metadata does not cure must
		// not become a tight loop of metadata and produce requests. A
		// lookup only for partitions never looked up before (written for
		// the first time, as a restore of many partitions starts them one
		// after another) is no retry and goes at once: counting those as
		// failed attempts made each new partition wait up to the
		// backoff's cap, 5 s.
		if time.Since(lastRefresh) > 5*time.Second {
			attempt = 0
		}
		if retry {
			if attempt > 0 {
				p.cfg.Backoff.Sleep(p.ctx, attempt-1)
			}
			attempt++
		}
		lastRefresh = time.Now()
		if _, err := p.c.RefreshMetadata(p.ctx, topics); err != nil && p.ctx.Err() != nil {
			return
		}
		m := p.c.Metadata()
		p.mu.Lock()
		for _, part := range p.parts {
			if part.leader >= 0 && !part.needRefresh {
				continue
			}
			t := m.Topics[part.tp.Topic]
			if t == nil {
				continue
			}
			if t.Err != nil && !protocol.IsRetriable(t.Err) {
				p.failLocked(part, fmt.Errorf("producer: %s: %w", part.tp, t.Err))
				continue
			}
			pm, ok := t.Partition(part.tp.Partition)
			if !ok && t.Err == nil {
				p.failLocked(part, fmt.Errorf("producer: %s: %w", part.tp, protocol.ErrUnknownTopicOrPartition))
				continue
			}
			if ok && pm.Leader >= 0 && pm.Err == nil {
				part.leader, part.epoch, part.needRefresh = pm.Leader, pm.LeaderEpoch, false
				if !p.loops[pm.Leader] {
					p.loops[pm.Leader] = true
					p.wg.Add(1)
					go p.brokerLoop(pm.Leader)
				}
			}
		}
		// Batches that found no leader before their delivery timeout fail
		// (nothing of theirs is in flight).
		now := time.Now()
		for _, part := range p.parts {
			if (part.leader < 0 || part.needRefresh) && part.sent == 0 && len(part.queue) > 0 && now.After(part.queue[0].deadline) {
				p.failLocked(part, fmt.Errorf("producer: %s: no leader within the delivery timeout", part.tp))
			}
		}
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// readyForPID lists the partitions waiting for a new producer id that have
// nothing in flight. Caller holds p.mu.
func (p *Producer) readyForPID() []*partition {
	if p.stopped {
		return nil
	}
	var out []*partition
next:
	for _, part := range p.parts {
		if !part.needPID || part.sent > 0 || len(part.queue) == 0 {
			continue
		}
		for _, pd := range part.queue {
			if pd.writing {
				continue next
			}
		}
		out = append(out, part)
	}
	return out
}

// resetProducerIDs gives each partition a new producer id and renumbers
// its queued batches from sequence 0, in order. None of them was written:
// the broker refused the first, and with it every later one.
func (p *Producer) resetProducerIDs(parts []*partition) {
	for _, part := range parts {
		pid, epoch, err := initProducerID(p.ctx, p.c, p.cfg.Backoff)
		p.mu.Lock()
		if err != nil {
			p.failLocked(part, fmt.Errorf("producer: %s: a new producer id after the broker lost this one's state: %w", part.tp, err))
			p.mu.Unlock()
			continue
		}
		part.pid, part.pidEpoch, part.nextSeq, part.needPID, part.confirmed = pid, epoch, 0, false, false
		for _, pd := range part.queue {
			pd.seq = part.nextSeq
			pd.batch.SetProducer(record.ProducerState{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: pd.seq})
			part.nextSeq += pd.batch.NumRecords()
			if part.nextSeq < 0 {
				part.nextSeq &= 0x7fffffff
			}
		}
		p.resets++
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

func (p *Producer) needsLeaders() bool {
	if p.stopped {
		return false // nothing is sent any more
	}
	for _, part := range p.parts {
		if (part.leader < 0 || part.needRefresh) && len(part.queue) > 0 {
			return true
		}
	}
	return false
}

// failLocked fails every pending batch of a partition. A batch still being
// written is reported when its write returns: until then its bytes are in
// use.
func (p *Producer) failLocked(part *partition, err error) {
	for _, pd := range part.queue {
		pd.inFlight = false // a late response for it is ignored
		if pd.writing {
			pd.failed = err // its bytes are still being written
			continue
		}
		p.finishLocked(pd, -1, err)
	}
	part.queue, part.next, part.sent, part.draining = nil, 0, 0, false
	p.cond.Broadcast()
}

// sendItem is one partition's batch in a Produce request.
type sendItem struct {
	part *partition
	pd   *pending
}

// brokerLoop sends, for the partitions broker id leads, the next unsent
// batch of each, pipelined: it writes the next request without waiting for
// the previous response. A receiver settles responses strictly in the
// order the requests were written, which is the order the broker answers
// them in, so each partition's acknowledgements come in queue order.
func (p *Producer) brokerLoop(id int32) {
	defer p.wg.Done()
	type begun struct {
		call  *client.Call
		v     int16
		items []sendItem
	}
	inflight := make(chan begun, 16)
	// throttledUntil is when the broker, over its quota, lets this
	// producer send again (unix nanoseconds; KIP-219).
	var throttledUntil atomic.Int64
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for b := range inflight {
			resp, err := b.call.Wait(p.ctx)
			if err != nil {
				p.settle(b.items, nil, err)
				continue
			}
			var d protocol.Decoder
			r, err := api.DecodeProduceResponse(&d, b.v, resp.Body)
			if err != nil {
				p.settle(b.items, nil, err)
			} else {
				if ms := r.ThrottleTimeMs(); ms > 0 && b.v >= throttleAfterResponseVersion {
					until := time.Now().Add(time.Duration(ms) * time.Millisecond).UnixNano()
					throttledUntil.Store(max(throttledUntil.Load(), until))
					p.throttles.Add(1)
				}
				p.settle(b.items, &r, nil)
			}
			resp.Release()
		}
	}()
	defer close(inflight)
	for {
		if !p.waitThrottle(throttledUntil.Load()) {
			return
		}
		items, ok := p.take(id, &throttledUntil)
		if !ok {
			return
		}
		if len(items) == 0 {
			continue // throttled while waiting for batches
		}
		conn, err := p.c.BrokerConn(p.ctx, id)
		if err != nil {
			p.doneWriting(items)
			p.settle(items, nil, err)
			if p.ctx.Err() != nil {
				return
			}
			p.cfg.Backoff.Sleep(p.ctx, 0)
			continue
		}
		req, v, err := p.request(conn, items)
		if err != nil {
			p.doneWriting(items)
			p.settle(items, nil, err)
			continue
		}
		if p.cfg.Acks == 0 {
			err := conn.Send(p.ctx, req, v)
			p.doneWriting(items)
			p.settle(items, nil, err)
			continue
		}
		call, err := conn.Begin(p.ctx, req, v, p.cfg.RequestTimeout)
		p.doneWriting(items)
		if err != nil {
			p.settle(items, nil, err)
			continue
		}
		inflight <- begun{call: call, v: v, items: items}
	}
}

// throttleAfterResponseVersion is the first Produce version whose broker
// answers a client over its quota at once and expects it to wait the
// throttle time before its next request (KIP-219); an older broker held
// the response back instead, so there is nothing left to wait.
const throttleAfterResponseVersion = 6

// waitThrottle waits until unixNanos, the end of a broker's throttle,
// counting the wait; false when the producer closed meanwhile. Batches
// keep queueing while it waits, and go out together after it.
func (p *Producer) waitThrottle(unixNanos int64) bool {
	d := time.Until(time.Unix(0, unixNanos))
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	start := time.Now()
	defer func() { p.throttled.Add(int64(time.Since(start))) }()
	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// doneWriting marks items' bytes as no longer in use by a write, and
// reports those that failed meanwhile.
func (p *Producer) doneWriting(items []sendItem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, it := range items {
		it.pd.writing = false
		if it.pd.failed != nil {
			p.finishLocked(it.pd, -1, it.pd.failed)
			it.pd.failed = nil
		}
	}
}

// take waits for partitions led by id with a batch ready to send and marks
// one batch of each in flight. It returns none when the broker throttles
// the producer meanwhile (throttledUntil, set before the response that
// asked for it is settled, which wakes take).
func (p *Producer) take(id int32, throttledUntil *atomic.Int64) ([]sendItem, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.closed || p.stopped {
			// The loop stays registered (p.loops), so that none is
			// started again for this broker; its receiver still settles
			// the requests in flight.
			return nil, false
		}
		if time.Now().UnixNano() < throttledUntil.Load() {
			return nil, true
		}
		var items []sendItem
		led := false
		for _, part := range p.parts {
			if part.leader != id || part.needRefresh {
				continue
			}
			led = true
			if part.needPID {
				continue
			}
			limit := p.cfg.MaxInFlight
			if !part.confirmed && !p.cfg.NotIdempotent {
				limit = 1
			}
			if !part.draining && part.next < len(part.queue) && part.sent < limit {
				pd := part.queue[part.next]
				pd.inFlight, pd.writing = true, true
				items = append(items, sendItem{part, pd})
				part.next++
				part.sent++
			}
		}
		if len(items) > 0 {
			return items, true
		}
		if !led {
			delete(p.loops, id)
			return nil, false
		}
		p.cond.Wait()
	}
}

func (p *Producer) request(conn *client.Conn, items []sendItem) (*protocol.Record, int16, error) {
	v, err := conn.Version(api.Produce)
	if err != nil {
		return nil, 0, err
	}
	s := api.Produce.Request
	req := protocol.NewRecord(s).
		SetName("TransactionalId", nil).
		SetName("Acks", p.cfg.Acks).
		SetName("TimeoutMs", int32(p.cfg.RequestTimeout/time.Millisecond))
	m := p.c.Metadata()
	topics := map[string]*protocol.Record{}
	for _, it := range items {
		t := topics[it.part.tp.Topic]
		if t == nil {
			t = req.Append(s.Handle("TopicData")).SetName("Name", it.part.tp.Topic)
			if tm := m.Topics[it.part.tp.Topic]; tm != nil {
				t.SetName("TopicId", tm.ID)
			}
			topics[it.part.tp.Topic] = t
		}
		t.Append(t.Schema().Handle("PartitionData")).
			SetName("Index", it.part.tp.Partition).
			SetName("Records", []byte(it.pd.batch))
	}
	return req, v, nil
}

// settle processes the outcome of a request: a response, or an error for
// all of it.
func (p *Producer) settle(items []sendItem, r *api.ProduceResponseView, reqErr error) {
	type key = client.TopicPartition
	results := map[key]struct {
		code       int16
		baseOffset int64
		msg        []byte
	}{}
	if r != nil {
		for i := 0; i < r.NumTopics(); i++ {
			t := r.Topic(i)
			name := string(t.Name())
			if name == "" {
				for n, tm := range p.c.Metadata().Topics {
					if tm.ID == t.TopicID() {
						name = n
					}
				}
			}
			for j := 0; j < t.NumPartitions(); j++ {
				pr := t.Partition(j)
				results[key{Topic: name, Partition: pr.Index()}] = struct {
					code       int16
					baseOffset int64
					msg        []byte
				}{pr.ErrorCode(), pr.BaseOffset(), pr.ErrorMessage()}
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for _, it := range items {
		part, pd := it.part, it.pd
		if p.parts[part.tp] != part || !pd.inFlight {
			continue // failed meanwhile: the queue has moved on
		}
		pd.inFlight = false
		part.sent--
		err := reqErr
		base := int64(-1)
		if r != nil {
			res, ok := results[part.tp]
			switch {
			case !ok:
				err = fmt.Errorf("producer: %s missing from the Produce response", part.tp)
			case res.code == protocol.ErrDuplicateSequence.Code:
				err = nil // written before: acknowledged again
			default:
				err = protocol.ErrorForCode(res.code)
				base = res.baseOffset
				if err != nil && len(res.msg) > 0 {
					err = fmt.Errorf("%w: %s", err, res.msg)
				}
			}
		}
		switch {
		case err == nil && part.draining:
			// Acknowledged while the partition drains: a batch sent before
			// the failure still made it. Only queue[0] can be acknowledged
			// in order; anything else is resent and deduplicated.
			if part.queue[0] == pd {
				p.ackLocked(part, base)
			}
		case err == nil:
			if part.queue[0] != pd {
				// Acknowledged out of order: cannot happen on one
				// connection. Treat as a failure of the partition.
				p.failLocked(part, fmt.Errorf("producer: %s: acknowledgement out of order", part.tp))
				continue
			}
			p.ackLocked(part, base)
		case retriable(err, part.draining) && now.Before(pd.deadline):
			part.draining = true
			if !errors.Is(err, protocol.ErrOutOfOrderSequence) {
				part.needRefresh = true
			}
		case lostState(err) && !p.cfg.NotIdempotent && part.queue[0] == pd && now.Before(pd.deadline):
			// The broker refused the head batch because it does not
			// share this partition's sequence state (it forgot the
			// producer id, or a batch whose outcome was unknown was
			// failed): nothing from here on was written. Start over
			// under a new producer id, same batches, same order.
			part.draining, part.needPID = true, true
		default:
			if rejected(err) && part.queue[0] == pd && !p.cfg.NotIdempotent {
				// The broker refused the head batch for good: it and
				// everything behind it were not written, so the next
				// batch may take its sequence.
				part.nextSeq = pd.seq
			}
			p.failLocked(part, fmt.Errorf("producer: %s: %w", part.tp, err))
			continue
		}
		if part.draining && part.sent == 0 {
			part.draining, part.next = false, 0 // resend from queue[0], same bytes
		}
	}
	p.cond.Broadcast()
}

// retriable: errors after which the same batch may be sent again. While a
// partition drains, the sequence errors of the batches behind the failed
// one are expected.
func retriable(err error, draining bool) bool {
	if lostState(err) && draining {
		return true // behind a batch that failed, these are expected
	}
	if errors.Is(err, protocol.ErrOutOfOrderSequence) {
		return false
	}
	return client.IsRetriable(err)
}

// lostState: errors after which the broker will accept this partition's
// queued batches only under a new producer id.
func lostState(err error) bool {
	return errors.Is(err, protocol.ErrUnknownProducerID) || errors.Is(err, protocol.ErrOutOfOrderSequence) ||
		errors.Is(err, protocol.ErrInvalidProducerEpoch)
}

// rejected: the broker answered with an error that refuses the batch for
// good without touching the producer's sequence state. After a timeout or
// a lost connection the outcome is unknown, and after a sequence or
// producer-id error the broker's state is not what the producer thinks:
// no rewind then.
func rejected(err error) bool {
	var ke *protocol.KafkaError
	if !errors.As(err, &ke) {
		return false
	}
	switch ke.Code {
	case protocol.ErrOutOfOrderSequence.Code, protocol.ErrUnknownProducerID.Code,
		protocol.ErrInvalidProducerEpoch.Code, protocol.ErrProducerFenced.Code,
		protocol.ErrDuplicateSequence.Code, protocol.ErrRequestTimedOut.Code:
		return false
	}
	return !ke.Retriable
}

func (p *Producer) ackLocked(part *partition, base int64) {
	part.confirmed = true
	pd := part.queue[0]
	part.queue[0] = nil
	part.queue = part.queue[1:]
	part.next-- // the head had been sent
	p.finishLocked(pd, base, nil)
}

// Stats are counters for monitoring.
type Stats struct {
	// BufferedBytes is the size of the batches queued and not yet
	// acknowledged.
	BufferedBytes int64
	// ProducerIDResets counts the times a partition started over under a
	// new producer id because the broker no longer shared its sequence
	// state (UNKNOWN_PRODUCER_ID, OUT_OF_ORDER_SEQUENCE_NUMBER).
	ProducerIDResets int
	// Throttles counts the responses in which a broker over its quota
	// asked for a pause, and Throttled is the time senders paused for
	// them, added up across brokers.
	Throttles int64
	Throttled time.Duration
}

// Stats returns the producer's counters.
func (p *Producer) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{BufferedBytes: p.buffered, ProducerIDResets: p.resets, Throttles: p.throttles.Load(), Throttled: time.Duration(p.throttled.Load())}
}
