package producer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/record"
)

// The record-append path: per-partition rings of slots, each slot one
// Kafka batch being filled in place by any number of goroutines.
//
// A claimer adds (1 record, its size) to the slot's packed claim word with
// one atomic add and owns the bytes the returned value points at, if they
// fit; it writes the record there in its final wire layout and adds its
// size to the slot's commit counter. Claims are granted in add order, so
// the claims that fit form a prefix, and the first claim that does not fit
// (there is exactly one) learns the batch's final record count and end:
// it publishes them as the slot's seal and moves the partition to the next
// slot. The sealer goroutine seals slots whose linger expired the same way,
// with an add larger than any slot. A sealed slot whose commits add up to
// its end is complete: the sealer writes its header (and compresses it into
// a second buffer when asked) and queues it on the partition's send queue,
// where it gets its sequence number like any SendBatch batch. A slot is
// free again once its batch is acknowledged or failed.
//
// Appends take no lock and make no system call: the timestamp comes from a
// clock the sealer goroutine updates every millisecond.

const ringSize = 8 // batches per partition: 5 in flight, 1 filling, 2 spare

// Slot states.
const (
	slotFree uint32 = iota
	slotOpening
	slotOpen   // claimable until sealed
	slotQueued // complete and handed to the sender
)

const sealedFlag = 1 << 63

type slot struct {
	tail      atomic.Uint64 // count<<countShift | bytes claimed (from the slot start)
	_         [56]byte      // keep claimers' and committers' lines apart
	committed atomic.Int64  // record bytes written
	_         [56]byte
	sealed    atomic.Uint64 // sealedFlag | count<<countShift | end, once known
	gen       atomic.Uint64 // the generation the slot holds
	base      atomic.Int64  // base timestamp, ms
	maxTs     atomic.Int64  // the greatest record timestamp, ms
	state     atomic.Uint32
	buf       []byte // published to claimers by the tail store that opens the slot
	out       []byte // the compressed batch, when compressing
}

// partAppender is one partition's ring.
type partAppender struct {
	p      *Producer
	tp     client.TopicPartition
	part   *partition // the send queue; guarded by p.mu
	active atomic.Uint64
	ring   [ringSize]slot

	queued   uint64        // next generation to hand to the sender; sealer only
	resolved atomic.Uint64 // every generation up to this one is acknowledged or failed

	failMu   sync.Mutex
	failures []genFailure // failed generation ranges, oldest first
}

type genFailure struct {
	from, to uint64
	err      error
}

// maxFailures bounds the failed ranges a partition remembers for tickets.
const maxFailures = 256

// topicAppender holds a topic's partitions, by index.
type topicAppender struct {
	name   string
	parts  []*partAppender
	sticky atomic.Uint32 // the partition unkeyed records without a partition go to
}

// AnyPartition, as Append's partition, picks one: by the key's murmur2
// hash like the Java client when there is a key, else the partition
// currently receiving unkeyed records, which moves on with each batch.
const AnyPartition = -1

var (
	// ErrRecordTooLarge: the record does not fit in one batch.
	ErrRecordTooLarge = errors.New("producer: record larger than the batch size")
	// ErrClosed: the producer is closed.
	ErrClosed = errors.New("producer: closed")
)

// Ticket identifies an appended record's batch. It is a small value:
// getting one allocates nothing.
type Ticket struct {
	pa  *partAppender
	gen uint64
}

// Partition is the partition the record went to.
func (t Ticket) Partition() int32 { return t.pa.tp.Partition }

// Done reports whether the record's batch is acknowledged or failed.
func (t Ticket) Done() bool { return t.pa.resolved.Load() >= t.gen }

// Err is the error that failed the record's batch: nil when acknowledged
// (or not yet done).
func (t Ticket) Err() error {
	if !t.Done() {
		return nil
	}
	return t.pa.failure(t.gen)
}

// Wait waits until the record's batch is acknowledged (nil) or failed
// (its error), or ctx ends.
func (t Ticket) Wait(ctx context.Context) error {
	for !t.Done() {
		ch := t.pa.p.resolvedN.wait()
		if t.Done() {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return t.pa.failure(t.gen)
}

func (pa *partAppender) failure(gen uint64) error {
	pa.failMu.Lock()
	defer pa.failMu.Unlock()
	for _, f := range pa.failures {
		if gen >= f.from && gen <= f.to {
			return f.err
		}
	}
	return nil
}

// Append copies a record into its partition's current batch and returns
// its ticket. partition may be AnyPartition. When the partition's batches
// are all in use (the producer is MaxBufferedBytes behind), Append waits
// until there is room or ctx ends; TryAppend returns ErrBufferFull instead.
// Nothing is allocated and no lock is taken in the common case.
func (p *Producer) Append(ctx context.Context, topic string, partition int32, key, value []byte, headers ...record.Header) (Ticket, error) {
	return p.append(ctx, topic, partition, key, value, headers)
}

// TryAppend is Append without waiting for room: ErrBufferFull when there
// is none. (The first record to a topic still waits for its metadata.)
func (p *Producer) TryAppend(topic string, partition int32, key, value []byte, headers ...record.Header) (Ticket, error) {
	return p.append(nil, topic, partition, key, value, headers)
}

func (p *Producer) append(ctx context.Context, topic string, partition int32, key, value []byte, headers []record.Header) (Ticket, error) {
	if p.shut.Load() {
		return Ticket{}, ErrClosed
	}
	t := p.firstTopic.Load()
	if t == nil || t.name != topic {
		t = (*p.topics.Load())[topic]
	}
	if t == nil {
		var err error
		if t, err = p.addTopic(ctx, topic); err != nil {
			return Ticket{}, err
		}
	}
	n := int32(len(t.parts))
	switch {
	case partition >= 0 && partition < n:
	case partition == AnyPartition && key != nil:
		partition = PartitionForKey(key, n)
	case partition == AnyPartition:
		partition = int32(t.sticky.Load() % uint32(n))
	default:
		return Ticket{}, fmt.Errorf("producer: %s/%d: %w (the topic has %d partitions)", topic, partition, protocol.ErrUnknownTopicOrPartition, n)
	}
	pa := t.parts[partition]

	body := 1 + 2 + 2 + bytesLen(key) + bytesLen(value) + protocol.VarintLen(int64(len(headers)))
	for i := range headers {
		body += bytesLen(headers[i].Key) + bytesLen(headers[i].Value)
	}
	size := uint64(protocol.VarintLen(int64(body)) + body)
	if size > uint64(p.cfg.BatchSize-batchHeaderLen) {
		return Ticket{}, fmt.Errorf("%w: %d bytes in a %d-byte batch", ErrRecordTooLarge, size, p.cfg.BatchSize)
	}
	ts := p.clock.Load()
	capacity := uint64(p.cfg.BatchSize)
	for {
		gen := pa.active.Load()
		s := &pa.ring[gen%ringSize]
		if gen != 0 {
			inc := 1<<countShift | size
			old := s.tail.Add(inc) - inc
			idx, off := old>>countShift, old&offsetMask
			if off+size <= capacity && idx < maxBatchRecords {
				// Ours. The slot cannot be recycled before we commit, so
				// its generation, base and buffer are those of our claim,
				// even if it was reopened since we read active.
				base := s.base.Load()
				delta := min(max(ts-base, minFixedDelta), maxFixedDelta)
				writeRecord(s.buf[off:off+size], body, delta, idx, key, value, headers)
				// The batch's max timestamp: a CAS once per slot and
				// clock tick, a load otherwise.
				for cur := s.maxTs.Load(); base+delta > cur && !s.maxTs.CompareAndSwap(cur, base+delta); cur = s.maxTs.Load() {
				}
				s.committed.Add(int64(size))
				return Ticket{pa: pa, gen: s.gen.Load()}, nil
			}
			if off <= capacity && idx <= maxBatchRecords {
				// The first claim past the end: the batch ends where we
				// would have started.
				s.sealed.Store(sealedFlag | old)
				p.wakeSealer()
				if partition == int32(t.sticky.Load()%uint32(n)) && key == nil {
					t.sticky.Add(1)
				}
			}
		}
		err := pa.rotate(gen)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrBufferFull) || ctx == nil {
			return Ticket{}, err
		}
		ch := p.space.wait()
		if err := pa.rotate(gen); err == nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Ticket{}, fmt.Errorf("producer: %s: waiting for buffer space: %w", pa.tp, ctx.Err())
		}
		if p.shut.Load() {
			return Ticket{}, ErrClosed
		}
	}
}

// rotate opens the generation after gen, unless another goroutine did.
func (pa *partAppender) rotate(gen uint64) error {
	p := pa.p
	for {
		if pa.active.Load() != gen {
			return nil
		}
		if p.shut.Load() {
			return ErrClosed
		}
		next := &pa.ring[(gen+1)%ringSize]
		if next.state.CompareAndSwap(slotFree, slotOpening) {
			buf := p.slabs.get()
			if buf == nil {
				next.state.Store(slotFree)
				return ErrBufferFull
			}
			next.buf = buf
			next.committed.Store(0)
			next.sealed.Store(0)
			next.base.Store(p.clock.Load())
			next.maxTs.Store(math.MinInt64)
			next.gen.Store(gen + 1)
			next.tail.Store(batchHeaderLen) // publishes the fields above
			next.state.Store(slotOpen)
			pa.active.Store(gen + 1)
			return nil
		}
		switch next.state.Load() {
		case slotOpening:
		case slotOpen:
			if next.gen.Load() != gen+1 {
				return ErrBufferFull // still filling an older generation: cannot happen, the ring is in order
			}
		default:
			return ErrBufferFull // its batch is not yet acknowledged
		}
		runtime.Gosched() // another goroutine is opening it: a few stores away
	}
}

func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return protocol.VarintLen(int64(len(b))) + len(b)
}

func putBytes(b []byte, v []byte) int {
	if v == nil {
		b[0] = 1 // zigzag -1
		return 1
	}
	n := len(protocol.AppendVarint(b[:0], int64(len(v))))
	return n + copy(b[n:], v)
}

// writeRecord writes a record of body bytes (after its length) into b.
func writeRecord(b []byte, body int, tsDelta int64, idx uint64, key, value []byte, headers []record.Header) {
	n := len(protocol.AppendVarint(b[:0], int64(body)))
	b[n] = 0 // attributes
	putFixedVarint(b[n+1:], tsDelta)
	putFixedVarint(b[n+3:], int64(idx))
	n += 5
	n += putBytes(b[n:], key)
	n += putBytes(b[n:], value)
	n += len(protocol.AppendVarint(b[n:n], int64(len(headers))))
	for i := range headers {
		n += putBytes(b[n:], headers[i].Key)
		n += putBytes(b[n:], headers[i].Value)
	}
}

// addTopic looks a topic up and creates its appenders.
func (p *Producer) addTopic(ctx context.Context, topic string) (*topicAppender, error) {
	p.topicsMu.Lock()
	defer p.topicsMu.Unlock()
	if t := (*p.topics.Load())[topic]; t != nil {
		return t, nil
	}
	if ctx == nil {
		ctx = p.ctx
	}
	m, err := p.c.RefreshMetadata(ctx, []string{topic})
	if err != nil {
		return nil, fmt.Errorf("producer: %s: %w", topic, err)
	}
	tm := m.Topics[topic]
	if tm == nil {
		return nil, fmt.Errorf("producer: %s: %w", topic, protocol.ErrUnknownTopicOrPartition)
	}
	if tm.Err != nil {
		return nil, fmt.Errorf("producer: %s: %w", topic, tm.Err)
	}
	n := 0
	for _, pm := range tm.Partitions {
		n = max(n, int(pm.Partition)+1)
	}
	if n == 0 {
		return nil, fmt.Errorf("producer: %s: the topic has no partitions", topic)
	}
	t := &topicAppender{name: topic, parts: make([]*partAppender, n)}
	p.mu.Lock()
	for i := range t.parts {
		tp := client.TopicPartition{Topic: topic, Partition: int32(i)}
		t.parts[i] = &partAppender{p: p, tp: tp, part: p.partitionLocked(tp), queued: 1}
	}
	p.mu.Unlock()
	topics := make(map[string]*topicAppender, len(*p.topics.Load())+1)
	for k, v := range *p.topics.Load() {
		topics[k] = v
	}
	topics[topic] = t
	p.topics.Store(&topics)
	p.firstTopic.CompareAndSwap(nil, t) // most producers write one topic: skip the map
	all := append(append([]*partAppender(nil), *p.appenders.Load()...), t.parts...)
	p.appenders.Store(&all)
	return t, nil
}

func (p *Producer) wakeSealer() {
	select {
	case p.sealWake <- struct{}{}:
	default:
	}
}

// seal seals pa's active slot if it holds records. Sealer only.
func (pa *partAppender) seal() {
	gen := pa.active.Load()
	if gen == 0 {
		return
	}
	s := &pa.ring[gen%ringSize]
	if s.gen.Load() != gen || s.state.Load() != slotOpen || s.sealed.Load() != 0 || s.tail.Load()>>countShift == 0 {
		return
	}
	inc := 1<<countShift | uint64(pa.p.cfg.BatchSize+1)
	old := s.tail.Add(inc) - inc
	if old&offsetMask <= uint64(pa.p.cfg.BatchSize) && old>>countShift <= maxBatchRecords {
		s.sealed.Store(sealedFlag | old)
	}
}

// handOff queues pa's complete batches, in generation order. Sealer only.
// It reports whether a sealed batch is still waiting for its writers.
func (pa *partAppender) handOff(z *record.Compressor) (waiting bool) {
	p := pa.p
	for {
		gen := pa.queued
		s := &pa.ring[gen%ringSize]
		if s.gen.Load() != gen || s.state.Load() != slotOpen {
			return false
		}
		sealed := s.sealed.Load()
		if sealed == 0 {
			return false
		}
		count, end := (sealed&^sealedFlag)>>countShift, sealed&offsetMask
		if s.committed.Load() != int64(end-batchHeaderLen) {
			return true // a writer is still copying
		}
		batch, err := p.finishBatch(s, int32(count), int(end), z)
		s.state.Store(slotQueued)
		pa.queued++
		done := func(_ int64, derr error) { pa.resolve(gen, s, derr) }
		if err != nil {
			p.mu.Lock()
			p.callbacks = append(p.callbacks, func() { done(-1, err) })
			p.cond.Broadcast()
			p.mu.Unlock()
			continue
		}
		p.mu.Lock()
		p.enqueueLocked(pa.part, batch, done)
		p.mu.Unlock()
	}
}

// finishBatch writes a complete slot's batch header, compressing the
// records into the slot's second buffer when a codec is configured.
func (p *Producer) finishBatch(s *slot, count int32, end int, z *record.Compressor) (record.Batch, error) {
	b := s.buf[:end]
	base := s.base.Load()
	h := b[:batchHeaderLen]
	binary.BigEndian.PutUint64(h[0:], 0)
	binary.BigEndian.PutUint32(h[12:], 0xffffffff) // leader epoch -1
	h[16] = 2
	binary.BigEndian.PutUint16(h[21:], uint16(p.cfg.Compression))
	binary.BigEndian.PutUint32(h[23:], uint32(count-1))
	binary.BigEndian.PutUint64(h[27:], uint64(base))
	binary.BigEndian.PutUint64(h[35:], uint64(s.maxTs.Load()))
	binary.BigEndian.PutUint64(h[43:], uint64(p.pid))
	binary.BigEndian.PutUint16(h[51:], uint16(p.epoch))
	binary.BigEndian.PutUint32(h[53:], 0xffffffff) // sequence: set when queued
	binary.BigEndian.PutUint32(h[57:], uint32(count))
	if p.cfg.Compression != record.None {
		out, err := z.Compress(append(p.outs.get()[:0], h...), p.cfg.Compression, b[batchHeaderLen:])
		if err != nil {
			return nil, fmt.Errorf("producer: compress a batch: %w", err)
		}
		s.out, b = out, out
	}
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	batch := record.Batch(b)
	batch.RecomputeCRC()
	return batch, nil
}

// resolve records a generation's outcome and frees its slot. It runs on
// the delivery goroutine, in queue order.
func (pa *partAppender) resolve(gen uint64, s *slot, err error) {
	p := pa.p
	if err != nil {
		pa.failMu.Lock()
		if n := len(pa.failures); n > 0 && pa.failures[n-1].to == gen-1 && pa.failures[n-1].err == err {
			pa.failures[n-1].to = gen
		} else {
			if n == maxFailures {
				pa.failures = append(pa.failures[:0], pa.failures[1:]...)
			}
			pa.failures = append(pa.failures, genFailure{gen, gen, err})
		}
		pa.failMu.Unlock()
		if p.cfg.OnError != nil {
			p.cfg.OnError(pa.tp, err)
		}
	}
	p.slabs.put(s.buf)
	p.outs.put(s.out)
	s.buf, s.out = nil, nil
	s.state.Store(slotFree)
	pa.resolved.Store(gen)
	p.space.notify()
	p.resolvedN.notify()
}

// sealer keeps the clock, seals batches whose linger expired (or all, on
// Flush) and hands complete batches to the sender.
func (p *Producer) sealer() {
	defer p.wg.Done()
	tick := p.clockTicker()
	defer tick.Stop()
	var z record.Compressor
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-tick.C:
			p.clock.Store(now.UnixMilli())
		case <-p.sealWake:
		}
		flush := p.flushing.Load() > 0
		now := p.clock.Load()
		for spins := 0; ; spins++ {
			waiting := false
			for _, pa := range *p.appenders.Load() {
				gen := pa.active.Load()
				if s := &pa.ring[gen%ringSize]; gen != 0 && (flush || now-s.base.Load() >= p.lingerMs) {
					pa.seal()
				}
				if pa.handOff(&z) {
					waiting = true
				}
			}
			if !waiting || spins == 100 {
				break
			}
			runtime.Gosched() // writers are a copy away from committing
		}
		if flush {
			p.resolvedN.notify()
		}
	}
}

// notifier wakes every waiter at once, with no allocation until someone
// waits.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.mu.Unlock()
}

// bufPool is a bounded free list of buffers. The batch slabs all
// partitions share come from one with size set: memory follows the batches
// in use, not the number of partitions, and get returns nil once max are
// out. The compressed-batch buffers come from one without: get returns nil
// when none is free and the compressor allocates.
type bufPool struct {
	mu   sync.Mutex
	free [][]byte
	made int
	max  int
	size int
}

func (p *bufPool) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b[:len(b):cap(b)]
	}
	if p.size == 0 || p.made >= p.max {
		return nil
	}
	p.made++
	return make([]byte, p.size)
}

func (p *bufPool) put(b []byte) {
	if b == nil {
		return
	}
	p.mu.Lock()
	if len(p.free) < p.max {
		p.free = append(p.free, b)
	}
	p.mu.Unlock()
}

// flushAppends seals every partition's batch and waits until everything
// appended before the call is resolved.
func (p *Producer) flushAppends(ctx context.Context) error {
	p.flushing.Add(1)
	defer p.flushing.Add(-1)
	type target struct {
		pa  *partAppender
		gen uint64
	}
	var targets []target
	for _, pa := range *p.appenders.Load() {
		gen := pa.active.Load()
		if gen == 0 {
			continue
		}
		if pa.ring[gen%ringSize].tail.Load()>>countShift == 0 {
			gen-- // nothing in the open batch
		}
		targets = append(targets, target{pa, gen})
	}
	for _, t := range targets {
		for t.pa.resolved.Load() < t.gen {
			ch := p.resolvedN.wait()
			p.wakeSealer()
			if t.pa.resolved.Load() >= t.gen {
				break
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return fmt.Errorf("producer: flush: %s not yet acknowledged: %w", t.pa.tp, ctx.Err())
			}
		}
	}
	return nil
}

// closeAppends fails the records of batches never handed to the sender.
// Writers may still be finishing a copy into them, so their buffers are
// left alone.
func (p *Producer) closeAppends() {
	for _, pa := range *p.appenders.Load() {
		last := pa.active.Load()
		if last == 0 {
			continue
		}
		if pa.ring[last%ringSize].tail.Load()>>countShift == 0 {
			last--
		}
		if last < pa.queued || pa.resolved.Load() >= last {
			continue
		}
		pa.failMu.Lock()
		pa.failures = append(pa.failures, genFailure{pa.queued, last, errNotAcked})
		pa.failMu.Unlock()
		if p.cfg.OnError != nil {
			p.cfg.OnError(pa.tp, errNotAcked)
		}
		pa.resolved.Store(last)
	}
	p.resolvedN.notify()
}

func (p *Producer) clockTicker() *time.Ticker { return time.NewTicker(time.Millisecond) }
