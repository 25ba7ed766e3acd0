package client

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
	"github.com/ktape/ktape/record"
)

// Isolation is a fetch's isolation level.
type Isolation int8

const (
	// ReadUncommitted returns everything up to the high watermark,
	// transactional or not, aborted or not, with the markers.
	ReadUncommitted Isolation = 0
	// ReadCommitted stops at the last stable offset and lists the aborted
	// transactions in the fetched range, so the reader can drop them.
	ReadCommitted Isolation = 1
)

// OutOfRange says what a Fetcher does when a partition's offset is no
// longer (or not yet) in the log.
type OutOfRange int8

const (
	// OutOfRangeFail stops the partition and reports the error.
	OutOfRangeFail OutOfRange = iota
	// OutOfRangeSkipToStart continues from the log start offset when the
	// offset fell below it (retention deleted the data first), reporting
	// the skipped range as a *GapError on the partition's next result. An
	// offset past the end still fails: that is truncation, not retention.
	OutOfRangeSkipToStart
)

// FetchConfig configures a Fetcher. Zero values mean the defaults, which
// are the Kafka consumer's.
type FetchConfig struct {
	Isolation         Isolation
	MaxWait           time.Duration // fetch.max.wait.ms; default 500 ms
	MinBytes          int32         // fetch.min.bytes; default 1
	MaxBytes          int32         // fetch.max.bytes; default 50 MiB
	PartitionMaxBytes int32         // max.partition.fetch.bytes; default 1 MiB
	// Budget bounds the bytes of fetch responses held at once, by the
	// Fetcher and by its caller until Release; default 256 MiB. A broker
	// is asked for at most min(MaxBytes, Budget) at a time.
	Budget     int64
	OutOfRange OutOfRange
	Backoff    Backoff
}

func (c FetchConfig) withDefaults() FetchConfig {
	if c.MaxWait <= 0 {
		c.MaxWait = 500 * time.Millisecond
	}
	if c.MinBytes <= 0 {
		c.MinBytes = 1
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 50 << 20
	}
	if c.PartitionMaxBytes <= 0 {
		c.PartitionMaxBytes = 1 << 20
	}
	if c.Budget <= 0 {
		c.Budget = 256 << 20
	}
	if int64(c.MaxBytes) > c.Budget {
		c.MaxBytes = int32(c.Budget)
	}
	// A response is read into a pooled buffer of the power of two above
	// its size, envelope included, and the budget is charged that buffer
	// (brokerLoop). Asking for as much as the budget made a full response
	// take the next power of two, twice the budget: with 1,000 partitions
	// behind a 32 MiB budget every response was a 64 MiB buffer, charged
	// 32. Ask for no more than fits the largest buffer within the budget.
	if int64(1)<<class(int(c.MaxBytes)+fetchEnvelope) > c.Budget {
		fit := int64(1) << (bits.Len64(uint64(c.Budget)) - 1) // the largest power of two <= Budget
		if fit > 2*fetchEnvelope {
			fit -= fetchEnvelope
		} else {
			fit /= 2
		}
		c.MaxBytes = int32(max(fit, 1))
	}
	return c
}

// fetchEnvelope is room for a Fetch response's fields around its record
// batches: headers, topic and partition entries, aborted transactions.
const fetchEnvelope = 64 << 10

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// GapError reports offsets that could not be fetched because the log no
// longer had them (deleted by retention or DeleteRecords).
type GapError struct {
	TopicPartition
	From, To int64 // [From, To) were skipped
}

func (e *GapError) Error() string {
	return fmt.Sprintf("client: %s: offsets %d to %d were deleted before they were fetched", e.TopicPartition, e.From, e.To-1)
}

// FetchedPartition is one partition's share of a Fetch.
type FetchedPartition struct {
	TopicPartition
	// FetchOffset is the offset that was asked for. The first batch may
	// start before it (a broker returns whole batches).
	FetchOffset int64
	// Records holds the complete batches returned, exactly as the broker
	// sent them (a trailing partial batch is cut off and fetched again),
	// their framing and CRC checked. It borrows the Fetch's buffer. It may
	// be empty: a partition is also delivered when its watermarks moved,
	// so a caller learns that it has caught up.
	Records []byte
	// NextOffset is where the next fetch of the partition starts: after
	// the last batch's last offset, so compaction gaps are stepped over.
	NextOffset       int64
	HighWatermark    int64
	LastStableOffset int64
	LogStartOffset   int64
	// Aborted lists the aborted transactions overlapping the range
	// (ReadCommitted only).
	Aborted []AbortedTransaction
	// Gap is set when offsets were skipped (OutOfRangeSkipToStart).
	Gap *GapError
	// Err is set when the partition stopped: it is not fetched again
	// until re-assigned.
	Err error
}

// AbortedTransaction is a producer's aborted transaction starting at
// FirstOffset.
type AbortedTransaction struct {
	ProducerID  int64
	FirstOffset int64
}

// Fetch is one fetch response's worth of data. Records of its partitions
// are views into one pooled buffer: call Release when done with all of
// them; the memory budget counts the Fetch until then.
type Fetch struct {
	Broker     int32
	Partitions []FetchedPartition
	resp       *Response
	f          *Fetcher
	charged    int64
	once       sync.Once
}

// Release returns the Fetch's buffer and its share of the memory budget.
func (f *Fetch) Release() {
	f.once.Do(func() {
		f.resp.Release()
		f.f.budget.release(f.charged)
	})
}

type partState struct {
	tp          TopicPartition
	offset      int64
	leader      int32 // -1: unknown, look up
	epoch       int32
	inFlight    bool
	stopped     bool
	pendingGap  *GapError
	needRefresh bool
	// refusedBy is the fetch connection whose broker last answered
	// NOT_LEADER_OR_FOLLOWER for the partition, asked at refusedEpoch;
	// fetchOnce retires that connection if it is about to be asked the same
	// question again.
	refusedBy    *Conn
	refusedEpoch int32
	// The watermarks last delivered: a partition with no new records is
	// still delivered when they move, so a caller sees it caught up.
	hwm, lso, logStart int64
	reported           bool
	// served orders partitions in requests: least recently served first,
	// since a broker fills a response in request order and partitions
	// at the end of a long request would otherwise starve.
	served uint64
}

// A Fetcher fetches assigned partitions from their leaders, one fetch loop
// per broker, and hands out responses as zero-copy views. Memory is bounded
// by the configured budget. It is safe for concurrent use.
type Fetcher struct {
	c      *Client
	cfg    FetchConfig
	budget *budget
	out    chan *Fetch

	mu        sync.Mutex
	cond      *sync.Cond
	parts     map[TopicPartition]*partState
	servedSeq uint64
	loops     map[int32]bool
	closed    bool
	started   bool
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	throttled atomic.Int64 // nanoseconds the loops paused for brokers' throttles
}

// Throttled is how long the fetcher paused because brokers over their
// quota asked it to (KIP-219), added up across brokers.
func (f *Fetcher) Throttled() time.Duration { return time.Duration(f.throttled.Load()) }

// NewFetcher returns a Fetcher over c. It fetches nothing until
// partitions are assigned and Poll is called.
func NewFetcher(c *Client, cfg FetchConfig) *Fetcher {
	cfg = cfg.withDefaults()
	f := &Fetcher{c: c, cfg: cfg, budget: newBudget(cfg.Budget), out: make(chan *Fetch, 16),
		parts: map[TopicPartition]*partState{}, loops: map[int32]bool{}}
	f.cond = sync.NewCond(&f.mu)
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f
}

// Assign starts fetching tp at offset (or moves it there).
func (f *Fetcher) Assign(tp TopicPartition, offset int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parts[tp] = &partState{tp: tp, offset: offset, leader: -1}
	f.cond.Broadcast()
}

// Unassign stops fetching tp. Data already fetched may still be delivered.
func (f *Fetcher) Unassign(tp TopicPartition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.parts, tp)
}

// Poll returns the next Fetch with data, a gap or an error for at least one
// partition, waiting until one is ready or ctx ends.
func (f *Fetcher) Poll(ctx context.Context) (*Fetch, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, errors.New("client: fetcher closed")
	}
	if !f.started {
		f.started = true
		f.wg.Add(1)
		go f.supervise()
	}
	f.mu.Unlock()
	select {
	case fe := <-f.out:
		return fe, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-f.ctx.Done():
		return nil, errors.New("client: fetcher closed")
	}
}

// Close stops every fetch loop and releases undelivered fetches.
func (f *Fetcher) Close() {
	f.mu.Lock()
	f.closed = true
	f.cond.Broadcast()
	f.mu.Unlock()
	f.cancel()
	f.budget.close()
	f.wg.Wait()
	for {
		select {
		case fe := <-f.out:
			fe.Release()
		default:
			return
		}
	}
}

// supervise resolves leaders and starts a loop for each broker that leads
// an assigned partition.
func (f *Fetcher) supervise() {
	defer f.wg.Done()
	var lastRefresh time.Time
	for attempt := 0; ; {
		f.mu.Lock()
		for !f.closed && !f.needsWork() {
			f.cond.Wait()
		}
		if f.closed {
			f.mu.Unlock()
			return
		}
		var topics []string
		seen := map[string]bool{}
		errorDriven := false
		cached := f.c.Metadata()
		for _, p := range f.parts {
			if p.leader < 0 && !p.needRefresh && !p.stopped {
				if _, err := cached.leader(p.tp.Topic, p.tp.Partition); err == nil {
					continue // a new assignment the cache can place
				}
			}
			if (p.leader < 0 || p.needRefresh) && !p.stopped && !seen[p.tp.Topic] {
				seen[p.tp.Topic] = true
				topics = append(topics, p.tp.Topic)
			}
			errorDriven = errorDriven || (p.needRefresh && !p.stopped)
		}
		f.mu.Unlock()
		if len(topics) > 0 {
			// Refreshes caused by partition errors are paced: an error
			// metadata does not cure (a stale leader epoch,
			// NOT_ENOUGH_REPLICAS) must not turn into a tight loop of
			// metadata and fetch requests. Lookups for new assignments
			// are not.
			if time.Since(lastRefresh) > quietPeriod || !errorDriven {
				attempt = 0 // the last trouble is long past
			}
			if attempt > 0 {
				f.cfg.Backoff.Sleep(f.ctx, attempt-1)
			}
			if errorDriven {
				attempt++
				lastRefresh = time.Now()
			}
			if _, err := f.c.RefreshMetadata(f.ctx, topics); err != nil {
				if f.ctx.Err() != nil {
					return
				}
				continue
			}
		}
		m := f.c.Metadata()
		f.mu.Lock()
		for _, p := range f.parts {
			if p.stopped || (p.leader >= 0 && !p.needRefresh) {
				continue
			}
			pm, err := m.leader(p.tp.Topic, p.tp.Partition)
			switch {
			case err == nil:
				p.leader, p.epoch, p.needRefresh = pm.Leader, pm.LeaderEpoch, false
			case p.tp.Partition < 0 || !protocol.IsRetriable(err):
				f.stopLocked(p, err)
			default:
				// Not (yet) known or leaderless: retried after a backoff.
			}
			if p.leader >= 0 && !f.loops[p.leader] {
				f.loops[p.leader] = true
				f.wg.Add(1)
				go f.brokerLoop(p.leader)
			}
		}
		stillUnknown := f.needsWork()
		f.cond.Broadcast()
		f.mu.Unlock()
		if stillUnknown {
			f.cfg.Backoff.Sleep(f.ctx, attempt)
			attempt++
		} else if len(topics) == 0 {
			attempt = 0
		}
	}
}

// needsWork: some partition has no known leader. Caller holds f.mu.
func (f *Fetcher) needsWork() bool {
	for _, p := range f.parts {
		if !p.stopped && (p.leader < 0 || p.needRefresh) {
			return true
		}
	}
	return false
}

// stopLocked stops a partition and delivers its error. Caller holds f.mu.
func (f *Fetcher) stopLocked(p *partState, err error) {
	p.stopped = true
	fe := &Fetch{Broker: -1, f: f, Partitions: []FetchedPartition{{TopicPartition: p.tp, FetchOffset: p.offset, NextOffset: p.offset, Err: err}}}
	go func() {
		select {
		case f.out <- fe:
		case <-f.ctx.Done():
		}
	}()
}

// brokerLoop fetches, one request at a time, the partitions led by broker
// id, until none are left or the fetcher closes. The next request goes out
// as soon as the previous response is parsed, while the caller works.
func (f *Fetcher) brokerLoop(id int32) {
	defer f.wg.Done()
	attempt := 0
	ls := &loopState{byTP: map[TopicPartition]*partState{}}
	for {
		batch, ok := f.claim(id, ls.batch[:0])
		if !ok {
			return
		}
		// Charge what the response may really take: the pool's buffer for
		// MaxBytes plus the response's envelope.
		charge := min(int64(1)<<class(int(f.cfg.MaxBytes)+fetchEnvelope), f.cfg.Budget)
		if err := f.budget.acquire(f.ctx, charge); err != nil {
			f.unclaim(batch, false)
			return
		}
		ls.batch = batch
		fe, throttle, err := f.fetchOnce(ls, id, batch, charge)
		if err != nil {
			f.budget.release(charge)
			if f.ctx.Err() != nil {
				f.unclaim(batch, false)
				return
			}
			attempt++
			if !IsRetriable(err) || attempt > maxFetchAttempts {
				// Not going to get better by retrying (no common Fetch
				// version, authentication, undecodable responses...):
				// stop the partitions and say why.
				f.mu.Lock()
				for _, p := range batch {
					p.inFlight = false
					if f.parts[p.tp] == p {
						f.stopLocked(p, fmt.Errorf("client: fetching %s from broker %d after %d attempts: %w", p.tp, id, attempt, err))
					}
				}
				f.cond.Broadcast()
				f.mu.Unlock()
				attempt = 0
				continue
			}
			f.unclaim(batch, true)
			f.cfg.Backoff.Sleep(f.ctx, attempt-1)
			continue
		}
		attempt = 0
		if fe != nil {
			select {
			case f.out <- fe:
			case <-f.ctx.Done():
				fe.Release()
				return
			}
		}
		if throttle > 0 {
			// The broker asks for a pause before the next request
			// (KIP-219): honour it on this broker only, after handing over
			// what was fetched.
			t := time.NewTimer(throttle)
			start := time.Now()
			select {
			case <-t.C:
			case <-f.ctx.Done():
				t.Stop()
			}
			f.throttled.Add(int64(time.Since(start)))
		}
	}
}

// throttleAfterFetchVersion is the first Fetch version whose broker,
// when the client is over its quota, answers at once and expects the
// client to wait the throttle time before its next request (KIP-219); an
// older broker held the response back for that time instead.
const throttleAfterFetchVersion = 8

// quietPeriod: refreshes this far apart start their backoff afresh.
const quietPeriod = 5 * time.Second

// maxFetchAttempts bounds the retries of a failing fetch before its
// partitions are stopped with the error.
const maxFetchAttempts = 10

// claim waits for partitions led by id that are not in flight and marks
// them in flight. It returns false when the loop should end.
func (f *Fetcher) claim(id int32, batch []*partState) ([]*partState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if f.closed {
			return nil, false
		}
		batch = batch[:0]
		led := false
		for _, p := range f.parts {
			if p.leader == id && !p.stopped && !p.needRefresh {
				led = true
				if !p.inFlight {
					batch = append(batch, p)
				}
			}
		}
		if len(batch) > 0 {
			for _, p := range batch {
				p.inFlight = true
			}
			return batch, true
		}
		if !led {
			delete(f.loops, id)
			return nil, false
		}
		f.cond.Wait()
	}
}

// unclaim ends the flight of a batch; with refresh, its partitions' leaders
// are looked up again.
func (f *Fetcher) unclaim(batch []*partState, refresh bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range batch {
		p.inFlight = false
		if refresh {
			p.needRefresh = true
		}
	}
	f.cond.Broadcast()
}

// fetchOnce sends one Fetch to broker id for batch and processes the
// response: offsets advance, errors are sorted into retry (leadership) and
// stop. It returns nil when nothing is worth delivering, and the throttle
// the broker asked for.
func (f *Fetcher) fetchOnce(ls *loopState, id int32, batch []*partState, charge int64) (*Fetch, time.Duration, error) {
	conn, err := f.c.FetchConn(f.ctx, id)
	if err != nil {
		return nil, 0, err
	}
	if refusedBefore(batch, conn) {
		// This connection's broker said it does not lead a partition
		// that the metadata, refreshed since, says broker id leads at
		// the very epoch it was asked at. One epoch has one leader, so
		// the connection no longer reaches the broker the metadata
		// describes: a broker replaced on the same address while the
		// old connection stayed open (as kfake's RemoveNode and AddNode
		// leave it) answers like this for every partition, forever.
		// Nothing else retires a connection that has not failed, and a
		// refresh gives the same answer each time, so retrying over it
		// would never end: dial the address again.
		conn.Close()
		if conn, err = f.c.FetchConn(f.ctx, id); err != nil {
			return nil, 0, fmt.Errorf("client: redialling broker %d, which refused partitions it leads: %w", id, err)
		}
	}
	v, err := conn.Version(api.Fetch)
	if err != nil {
		return nil, 0, err
	}
	m := f.c.Metadata()
	body, err := ls.requestBody(f, batch, v, m)
	if err != nil {
		return nil, 0, err
	}
	resp, err := conn.DoBody(f.ctx, api.Fetch, v, body, f.cfg.MaxWait)
	if err != nil {
		return nil, 0, err
	}
	r, err := api.DecodeFetchResponse(&ls.d, v, resp.Body)
	if err != nil {
		resp.Release()
		return nil, 0, &ConnError{Addr: conn.Addr(), Err: err}
	}
	var throttle time.Duration
	if v >= throttleAfterFetchVersion {
		throttle = time.Duration(r.ThrottleTimeMs()) * time.Millisecond
	}
	if err := protocol.ErrorForCode(r.ErrorCode()); err != nil {
		resp.Release()
		return nil, throttle, fmt.Errorf("client: fetch from broker %d: %w", id, err)
	}
	if v >= 13 && ls.idsOf != m {
		ls.byID = make(map[[16]byte]string, len(m.Topics))
		for name, t := range m.Topics {
			ls.byID[t.ID] = name
		}
		ls.idsOf = m
	}
	clear(ls.byTP)
	for _, p := range batch {
		ls.byTP[p.tp] = p
	}
	byID, byTP := ls.byID, ls.byTP
	fe := &Fetch{Broker: id, resp: resp, f: f, charged: charge}
	var gapLookups []*partState

	f.mu.Lock()
	topics := r.Topics()
	for i := 0; i < topics.Len(); i++ {
		t := topics.At(i)
		name := string(t.Name())
		if v >= 13 {
			name = byID[t.TopicID()]
		}
		parts := t.Partitions()
		for j := 0; j < parts.Len(); j++ {
			p := parts.At(j)
			st := byTP[TopicPartition{name, p.Partition()}]
			if st == nil || f.parts[st.tp] != st {
				continue // not asked for, or unassigned meanwhile
			}
			fp := FetchedPartition{TopicPartition: st.tp, FetchOffset: st.offset, NextOffset: st.offset,
				HighWatermark: p.HighWatermark(), LastStableOffset: p.LastStableOffset(), LogStartOffset: p.LogStartOffset()}
			switch err := protocol.ErrorForCode(p.ErrorCode()); {
			case err == nil:
				recs, next, ferr := completeBatches(p.Records(), st.offset)
				if ferr != nil {
					fp.Err = fmt.Errorf("client: %s at offset %d: %w", st.tp, st.offset, ferr)
					st.stopped = true
					break
				}
				fp.Records, fp.NextOffset = recs, next
				st.offset = next
				st.refusedBy = nil
				if len(recs) > 0 {
					f.servedSeq++
					st.served = f.servedSeq
				}
				ab := p.AbortedTransactions()
				for k := 0; k < ab.Len(); k++ {
					pid, first := ab.At(k)
					fp.Aborted = append(fp.Aborted, AbortedTransaction{ProducerID: pid, FirstOffset: first})
				}
				if st.pendingGap != nil {
					fp.Gap, st.pendingGap = st.pendingGap, nil
				}
			case errors.Is(err, protocol.ErrOffsetOutOfRange):
				if f.cfg.OutOfRange == OutOfRangeSkipToStart {
					gapLookups = append(gapLookups, st)
					continue
				}
				fp.Err = fmt.Errorf("client: %s: offset %d: %w", st.tp, st.offset, err)
				st.stopped = true
			case errors.Is(err, protocol.ErrNotLeaderOrFollower):
				st.needRefresh = true // leadership moved, or conn is stale
				st.refusedBy, st.refusedEpoch = conn, st.epoch
				continue
			case protocol.IsRetriable(err):
				st.needRefresh = true // leadership moved or is moving
				continue
			default:
				fp.Err = fmt.Errorf("client: %s: %w", st.tp, err)
				st.stopped = true
			}
			moved := !st.reported || fp.HighWatermark != st.hwm || fp.LastStableOffset != st.lso || fp.LogStartOffset != st.logStart
			if len(fp.Records) > 0 || fp.Gap != nil || fp.Err != nil || moved {
				st.hwm, st.lso, st.logStart, st.reported = fp.HighWatermark, fp.LastStableOffset, fp.LogStartOffset, true
				fe.Partitions = append(fe.Partitions, fp)
			}
		}
	}
	for _, p := range batch {
		p.inFlight = false
	}
	f.cond.Broadcast()
	f.mu.Unlock()

	for _, st := range gapLookups {
		f.skipToStart(conn, st)
	}
	if len(fe.Partitions) == 0 {
		fe.Release()
		return nil, throttle, nil
	}
	return fe, throttle, nil
}

// refusedBefore reports whether conn already answered NOT_LEADER_OR_FOLLOWER
// for a partition of batch at the leader epoch the partition is about to
// be fetched at again. The batch is claimed by the caller, so its fields
// are the caller's to read.
func refusedBefore(batch []*partState, conn *Conn) bool {
	for _, p := range batch {
		if p.refusedBy == conn && p.refusedEpoch == p.epoch {
			return true
		}
	}
	return false
}

// loopState is what a broker loop reuses from one fetch to the next.
type loopState struct {
	d     protocol.Decoder
	byTP  map[TopicPartition]*partState
	byID  map[[16]byte]string
	idsOf *Metadata // the snapshot byID was built from

	batch     []*partState // the partitions claimed for the current request
	firstSeen map[string]int

	// The last request, encoded, with a view to patch its offsets in place
	// when the next one asks for the same partitions.
	req      []byte
	reqParts []TopicPartition
	reqV     int16
	reqMeta  *Metadata
	rd       protocol.Decoder
	rview    protocol.View
}

// requestBody returns the encoded Fetch request for batch. When batch names
// the same partitions as the previous request, that request is reused with
// its offsets and leader epochs rewritten in place: steady-state fetching
// builds nothing.
func (ls *loopState) requestBody(f *Fetcher, batch []*partState, v int16, m *Metadata) ([]byte, error) {
	slices.SortFunc(batch, func(a, b *partState) int {
		if a.served != b.served {
			return cmp.Compare(a.served, b.served)
		}
		if c := strings.Compare(a.tp.Topic, b.tp.Topic); c != 0 {
			return c
		}
		return int(a.tp.Partition) - int(b.tp.Partition)
	})
	// Group by topic, topics in order of first appearance, as request()
	// encodes them: then the request's order is batch's order, which the
	// in-place patch below relies on. A stable sort keeps the service
	// order within each topic.
	if ls.firstSeen == nil {
		ls.firstSeen = map[string]int{}
	}
	clear(ls.firstSeen)
	for i, p := range batch {
		if _, ok := ls.firstSeen[p.tp.Topic]; !ok {
			ls.firstSeen[p.tp.Topic] = i
		}
	}
	slices.SortStableFunc(batch, func(a, b *partState) int {
		return cmp.Compare(ls.firstSeen[a.tp.Topic], ls.firstSeen[b.tp.Topic])
	})
	same := ls.req != nil && ls.reqV == v && ls.reqMeta == m && len(batch) == len(ls.reqParts)
	for i := 0; same && i < len(batch); i++ {
		same = batch[i].tp == ls.reqParts[i]
	}
	if !same {
		var err error
		if ls.req, err = f.request(batch, m).AppendTo(ls.req[:0], v); err != nil {
			return nil, err
		}
		if ls.rview, err = ls.rd.Decode(api.Fetch.Request, v, ls.req); err != nil {
			return nil, err
		}
		ls.reqParts = ls.reqParts[:0]
		for _, p := range batch {
			ls.reqParts = append(ls.reqParts, p.tp)
		}
		ls.reqV, ls.reqMeta = v, m
	}
	// Partitions are in batch order within each topic: request() groups
	// the batch by topic in order of first appearance.
	topics := ls.rview.Array(fetchReq.topics)
	i := 0
	for t := 0; t < topics.Len(); t++ {
		parts := topics.At(t).Array(fetchReq.partitions)
		for j := 0; j < parts.Len(); j++ {
			pv := parts.At(j)
			pv.SetInt64(fetchReq.offset, batch[i].offset)
			if pv.Has(fetchReq.epoch) {
				pv.SetInt32(fetchReq.epoch, batch[i].epoch)
			}
			i++
		}
	}
	return ls.req, nil
}

var fetchReq = func() (h struct{ topics, partitions, offset, epoch protocol.Handle }) {
	s := api.Fetch.Request
	h.topics = s.Handle("Topics")
	p := s.Child(h.topics)
	h.partitions = p.Handle("Partitions")
	pp := p.Child(h.partitions)
	h.offset, h.epoch = pp.Handle("FetchOffset"), pp.Handle("CurrentLeaderEpoch")
	return h
}()

// request builds the Fetch request for a batch of partitions.
func (f *Fetcher) request(batch []*partState, m *Metadata) *protocol.Record {
	s := api.Fetch.Request
	req := protocol.NewRecord(s).
		SetName("MaxWaitMs", int32(f.cfg.MaxWait/time.Millisecond)).
		SetName("MinBytes", f.cfg.MinBytes).
		SetName("MaxBytes", f.cfg.MaxBytes).
		SetName("IsolationLevel", int8(f.cfg.Isolation))
	topics := map[string]*protocol.Record{}
	th := s.Handle("Topics")
	for _, p := range batch {
		t := topics[p.tp.Topic]
		if t == nil {
			t = req.Append(th)
			t.SetName("Topic", p.tp.Topic)
			if tm := m.Topics[p.tp.Topic]; tm != nil {
				t.SetName("TopicId", tm.ID)
			}
			topics[p.tp.Topic] = t
		}
		pr := t.Append(t.Schema().Handle("Partitions"))
		pr.SetName("Partition", p.tp.Partition).
			SetName("CurrentLeaderEpoch", p.epoch).
			SetName("FetchOffset", p.offset).
			SetName("PartitionMaxBytes", f.cfg.PartitionMaxBytes)
	}
	return req
}

// skipToStart handles OFFSET_OUT_OF_RANGE under OutOfRangeSkipToStart.
func (f *Fetcher) skipToStart(conn *Conn, st *partState) {
	start, end, err := f.c.logBounds(f.ctx, conn, st.tp)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.parts[st.tp] != st {
		return
	}
	switch {
	case err != nil && IsRetriable(err):
		st.needRefresh = true
	case err != nil:
		f.stopLocked(st, fmt.Errorf("client: %s: looking up the log start: %w", st.tp, err))
	case st.offset < start:
		st.pendingGap = &GapError{TopicPartition: st.tp, From: st.offset, To: start}
		st.offset = start
	case st.offset > end:
		f.stopLocked(st, fmt.Errorf("client: %s: offset %d is past the log end %d (truncated?): %w", st.tp, st.offset, end, protocol.ErrOffsetOutOfRange))
	}
	f.cond.Broadcast()
}

// completeBatches returns the complete batches of a record set and the
// offset after the last one. It reads only framing, entry by entry, since
// a log whose message format was upgraded holds legacy message sets
// followed by v2 batches: both start with an offset and a length, and the
// magic at byte 16 says how to read the rest. A v2 batch ends at its last
// offset; a legacy (compressed) message carries the offset of its last
// inner message.
func completeBatches(data []byte, fetchOffset int64) ([]byte, int64, error) {
	next, pos := fetchOffset, 0
	for len(data)-pos >= 17 {
		size := int(int32(binary.BigEndian.Uint32(data[pos+8:])))
		if size < 14 {
			return nil, fetchOffset, &record.CorruptError{Offset: pos + 8, Reason: fmt.Sprintf("entry length %d", size)}
		}
		if size > len(data)-pos-12 {
			break // truncated by the broker's size limit: fetched again
		}
		entry := data[pos : pos+12+size]
		if record.PeekMagic(entry) >= 2 {
			b, err := record.Parse(entry)
			if err != nil {
				return nil, fetchOffset, err
			}
			next = max(next, b.LastOffset()+1)
		} else {
			next = max(next, int64(binary.BigEndian.Uint64(entry))+1)
		}
		pos += 12 + size
	}
	return data[:pos], next, nil
}

// budget is a FIFO byte semaphore: waiters are served in arrival order, so
// a fetch loop that keeps releasing and re-acquiring (empty long polls)
// cannot starve loops that have data.
type budget struct {
	mu      sync.Mutex
	free    int64
	waiters []*budgetWaiter
	closed  bool
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed when granted
}

func newBudget(n int64) *budget { return &budget{free: n} }

func (b *budget) acquire(ctx context.Context, n int64) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errors.New("client: fetcher closed")
	}
	if len(b.waiters) == 0 && b.free >= n {
		b.free -= n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			b.free += n
			b.grant()
		default:
			for i, o := range b.waiters {
				if o == w {
					b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
					break
				}
			}
			b.grant() // the head may have changed
		}
		return errors.New("client: fetcher closed")
	}
}

// grant serves waiters in order while the head fits. Caller holds b.mu.
func (b *budget) grant() {
	for len(b.waiters) > 0 && b.free >= b.waiters[0].n {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.free -= w.n
		close(w.ready)
	}
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.free += n
	b.grant()
	b.mu.Unlock()
}

func (b *budget) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}
