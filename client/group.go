package client

// group.go: membership of a classic Kafka group (JoinGroup, SyncGroup,
// Heartbeat, LeaveGroup), by which ktape workers share work items
// (partitions) between processes with Kafka's own coordination: the
// coordinator says who is in the group and who leads; the leader decides
// who gets what (group_assign.go); everyone learns it through SyncGroup and
// keeps its membership alive with heartbeats. Rebalancing is eager: when
// anyone joins or leaves, every member gives up all its items and rejoins.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
)

// GroupConfig configures a member of a classic group.
type GroupConfig struct {
	Group string
	// InstanceID makes the member static (group.instance.id, KIP-345): a
	// process that restarts with the same InstanceID within the session
	// timeout takes its predecessor's place and items without a
	// rebalance. "" for a dynamic member.
	InstanceID string
	// ProtocolType defaults to DefaultGroupProtocolType ("ktape"). It is
	// never "consumer": a Kafka consumer group of the same name must refuse
	// ktape's members, not hand them its partitions.
	ProtocolType      string
	SessionTimeout    time.Duration // default 30s
	RebalanceTimeout  time.Duration // default 60s or SessionTimeout if longer: how long members have to stop work and rejoin; at least SessionTimeout
	HeartbeatInterval time.Duration // default SessionTimeout/10, at most 3s
	// Plan runs on the member the coordinator chose as leader, once per
	// generation, before it assigns: it returns the work items to share
	// and opaque bytes given to every member with its assignment (ktape
	// puts the id of the run the workers share there). Members heartbeat
	// meanwhile; Plan must end within RebalanceTimeout, after which Kafka
	// gives up on the members waiting for the assignment.
	Plan func(ctx context.Context) (items []TopicPartition, shared []byte, err error)
	Log  *slog.Logger
}

// Assignment is what a member got for one generation.
type Assignment struct {
	Generation int32
	MemberID   string
	Leader     bool
	Members    int              // members in this generation
	Items      []TopicPartition // this member's, sorted by topic then partition
	Shared     []byte           // the leader's Plan bytes, the same for every member of the generation
}

// ErrRebalance is GroupMember.Err after a plain rebalance: the coordinator
// asked every member to rejoin because a member joined or left.
var ErrRebalance = errors.New("client: group rebalance")

// ErrGroupMemberClosed is GroupMember.Err after Leave or Close.
var ErrGroupMemberClosed = errors.New("client: group member closed")

// Defaults of GroupConfig.
const (
	DefaultGroupSessionTimeout   = 30 * time.Second
	DefaultGroupRebalanceTimeout = 60 * time.Second
	maxDefaultHeartbeatInterval  = 3 * time.Second
)

// A GroupMember is one process's membership of a group. Join, Leave and
// Close are not to be called concurrently with one another, except that
// Close may interrupt a Join; Revoked and Err may be called at any time.
type GroupMember struct {
	c   *Client
	cfg GroupConfig
	log *slog.Logger

	closed    context.Context // done after Close or Leave
	closeOnce func()

	mu         sync.Mutex
	memberID   string
	generation int32
	owned      groupMetadata // what this member claims when it rejoins
	coord      string        // the coordinator's address, "" when unknown
	joinConn   *Conn         // JoinGroup, SyncGroup, LeaveGroup
	hbConn     *Conn         // heartbeats
	revoked    chan struct{}
	revokedErr error
	fenced     error // FENCED_INSTANCE_ID: another process has this InstanceID
	hbStop     context.CancelFunc
	hbDone     chan struct{}
}

// NewGroupMember checks cfg and returns a member that has not joined yet;
// it does not contact the broker.
func (c *Client) NewGroupMember(cfg GroupConfig) (*GroupMember, error) {
	if cfg.Group == "" {
		return nil, errors.New("client: group member: no group name")
	}
	if cfg.ProtocolType == "" {
		cfg.ProtocolType = DefaultGroupProtocolType
	}
	if cfg.ProtocolType == "consumer" {
		return nil, fmt.Errorf("client: group %s: protocol type \"consumer\" is Kafka consumers'; ktape members would take partitions from them", cfg.Group)
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = DefaultGroupSessionTimeout
	}
	if cfg.RebalanceTimeout == 0 {
		cfg.RebalanceTimeout = max(DefaultGroupRebalanceTimeout, cfg.SessionTimeout)
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = min(cfg.SessionTimeout/10, maxDefaultHeartbeatInterval)
	}
	switch {
	case cfg.SessionTimeout < time.Millisecond || cfg.SessionTimeout > time.Duration(1<<31-1)*time.Millisecond:
		return nil, fmt.Errorf("client: group %s: session timeout %v out of range", cfg.Group, cfg.SessionTimeout)
	case cfg.RebalanceTimeout < time.Millisecond || cfg.RebalanceTimeout > time.Duration(1<<31-1)*time.Millisecond:
		return nil, fmt.Errorf("client: group %s: rebalance timeout %v out of range", cfg.Group, cfg.RebalanceTimeout)
	case cfg.RebalanceTimeout < cfg.SessionTimeout:
		// A member cut off from the coordinator gives its items up a
		// session timeout after its last heartbeat; a rebalance that
		// could complete without it sooner would hand them out while it
		// still works on them.
		return nil, fmt.Errorf("client: group %s: rebalance timeout %v is shorter than the session timeout %v; items could have two owners at once",
			cfg.Group, cfg.RebalanceTimeout, cfg.SessionTimeout)
	case cfg.HeartbeatInterval <= 0 || cfg.HeartbeatInterval >= cfg.SessionTimeout:
		return nil, fmt.Errorf("client: group %s: heartbeat interval %v must be positive and below the session timeout %v", cfg.Group, cfg.HeartbeatInterval, cfg.SessionTimeout)
	case cfg.Plan == nil:
		return nil, fmt.Errorf("client: group %s: no Plan (every member may be chosen leader and must be able to plan)", cfg.Group)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("group", cfg.Group)
	if cfg.InstanceID != "" {
		log = log.With("instance", cfg.InstanceID)
	}
	closed, cancel := context.WithCancel(context.Background())
	m := &GroupMember{c: c, cfg: cfg, log: log, closed: closed, closeOnce: cancel,
		generation: -1, owned: groupMetadata{Generation: -1}, revoked: make(chan struct{})}
	return m, nil
}

// Revoked is closed when the assignment Join returned ends (and from the
// time Join starts until it returns a new one): the
// coordinator started a rebalance (REBALANCE_IN_PROGRESS on a heartbeat),
// the membership was lost (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
// FENCED_INSTANCE_ID), or no heartbeat succeeded for a session timeout:
// the coordinator has then presumably removed the member and given its
// items to others, so it must stop writing (fencing by time). The caller
// stops working on its items, saves its progress, and calls Join again
// within RebalanceTimeout.
func (m *GroupMember) Revoked() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.revoked
}

// Err says why Revoked was closed: ErrRebalance for a plain rebalance,
// ErrGroupMemberClosed after Leave or Close, else the error that ended the
// membership. It is nil while the assignment holds.
func (m *GroupMember) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.revokedErr
}

// revoke ends the current assignment with err, once; later calls do not
// change the first reason.
func (m *GroupMember) revoke(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.revokeLocked(err)
}

func (m *GroupMember) revokeLocked(err error) {
	select {
	case <-m.revoked:
		return
	default:
	}
	m.revokedErr = err
	close(m.revoked)
}

// Join joins the group, or rejoins it after Revoked, and returns the
// member's assignment for the new generation. It finds the coordinator,
// sends JoinGroup (which the coordinator holds until every member has
// rejoined, up to the rebalance timeout), and, on the leader, runs Plan
// and the sticky assignment, then SyncGroup; after that the member
// heartbeats in the background until Revoked.
//
// The coordinator moving or loading, a lost connection, or a rebalance
// starting again before SyncGroup are retried with backoff until ctx ends;
// a member the coordinator forgot (UNKNOWN_MEMBER_ID) rejoins as a new one.
// Refusals (INCONSISTENT_GROUP_PROTOCOL: the group is used by other
// clients; GROUP_AUTHORIZATION_FAILED; INVALID_SESSION_TIMEOUT;
// FENCED_INSTANCE_ID; GROUP_MAX_SIZE_REACHED...) return an error naming
// the group.
func (m *GroupMember) Join(ctx context.Context) (Assignment, error) {
	if m.closed.Err() != nil {
		return Assignment{}, fmt.Errorf("client: join group %s: %w", m.cfg.Group, ErrGroupMemberClosed)
	}
	m.stopHeartbeats()
	m.revoke(ErrRebalance) // rejoining ends the current assignment, if any
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(m.closed, cancel)
	defer stop()

	var last error
	for attempt := 0; ; attempt++ {
		m.mu.Lock()
		fenced := m.fenced
		m.mu.Unlock()
		if fenced != nil {
			return Assignment{}, fenced
		}
		if attempt > 0 {
			if err := m.c.backoff.Sleep(ctx, min(attempt-1, 4)); err != nil {
				return Assignment{}, m.joinErr(withLast(err, last))
			}
		}
		a, again, err := m.joinOnce(ctx)
		if err == nil {
			if !m.startHeartbeats(a) {
				return Assignment{}, m.joinErr(ErrGroupMemberClosed)
			}
			return a, nil
		}
		last = err
		if ctx.Err() != nil {
			return Assignment{}, m.joinErr(withLast(ctx.Err(), last))
		}
		if !again {
			return Assignment{}, m.joinErr(err)
		}
		m.log.Debug("rejoining group", "attempt", attempt+1, "err", err)
	}
}

func (m *GroupMember) joinErr(err error) error {
	if m.closed.Err() != nil {
		err = fmt.Errorf("%w (%w)", ErrGroupMemberClosed, err)
	}
	return fmt.Errorf("client: join group %s: %w", m.cfg.Group, err)
}

// joinOnce runs one JoinGroup and SyncGroup round. again says whether
// trying again may succeed.
func (m *GroupMember) joinOnce(ctx context.Context) (a Assignment, again bool, err error) {
	conn, err := m.coordinatorConn(ctx, &m.joinConn)
	if err != nil {
		return a, m.retriable(err), err
	}
	jv, err := conn.Version(api.JoinGroup)
	if err != nil {
		return a, false, err
	}
	sv, err := conn.Version(api.SyncGroup)
	if err != nil {
		return a, false, err
	}
	if m.cfg.InstanceID != "" && (jv < 5 || sv < 3) {
		return a, false, fmt.Errorf("static membership needs JoinGroup v5 and SyncGroup v3 (Kafka 2.3); broker %s supports JoinGroup v%d, SyncGroup v%d", conn.Addr(), jv, sv)
	}

	// JoinGroup, twice when the broker first hands out a member id
	// (MEMBER_ID_REQUIRED, KIP-394).
	var join *protocol.Record
	for range 2 {
		m.mu.Lock()
		md := encodeGroupMetadata(m.owned)
		memberID := m.memberID
		m.mu.Unlock()
		s := api.JoinGroup.Request
		req := protocol.NewRecord(s).
			SetName("GroupId", m.cfg.Group).
			SetName("SessionTimeoutMs", durationMs(m.cfg.SessionTimeout)).
			SetName("RebalanceTimeoutMs", durationMs(m.cfg.RebalanceTimeout)).
			SetName("MemberId", memberID).
			SetName("GroupInstanceId", m.instanceID()).
			SetName("ProtocolType", m.cfg.ProtocolType)
		req.Append(s.Handle("Protocols")).SetName("Name", GroupProtocol).SetName("Metadata", md)
		m.log.Debug("JoinGroup", "member", memberID, "claims", len(m.owned.Owned), "claims_generation", m.owned.Generation)
		// The coordinator holds a JoinGroup until every member has
		// rejoined, up to the longest rebalance timeout of the group.
		join, err = m.holdable(ctx, conn, req, jv)
		if err != nil {
			return a, m.retriable(err), err
		}
		rs := api.JoinGroup.Response
		code := join.Int16(rs.Handle("ErrorCode"))
		if err := protocol.ErrorForCode(code); err != nil {
			if code == 79 { // MEMBER_ID_REQUIRED
				m.mu.Lock()
				m.memberID = join.String(rs.Handle("MemberId"))
				m.mu.Unlock()
				continue
			}
			return a, m.joinGroupError(err), fmt.Errorf("JoinGroup: %w", m.explain(err))
		}
		break
	}
	rs := api.JoinGroup.Response
	if code := join.Int16(rs.Handle("ErrorCode")); code != 0 {
		return a, true, fmt.Errorf("JoinGroup: %w twice", protocol.ErrorForCode(code))
	}
	gen := join.Int32(rs.Handle("GenerationId"))
	memberID := join.String(rs.Handle("MemberId"))
	leader := join.String(rs.Handle("Leader"))
	if name := recNullString(join, rs.Handle("ProtocolName")); name != nil && *name != GroupProtocol {
		return a, false, fmt.Errorf("JoinGroup: the coordinator chose protocol %q; ktape offers only %q", *name, GroupProtocol)
	}
	m.mu.Lock()
	m.memberID = memberID
	m.generation = gen
	m.mu.Unlock()
	// The coordinator now expects heartbeats: while the leader plans and
	// everyone waits in SyncGroup, a member that sends none for a session
	// timeout is expired, and the rebalance starts over.
	hbCtx, hbStop := context.WithCancel(ctx)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		m.heartbeat(hbCtx, gen, memberID)
	}()
	defer func() { hbStop(); <-hbDone }()

	// The leader plans and assigns, unless the coordinator says the
	// assignment stands (KIP-814: a static leader replaced itself).
	s := api.SyncGroup.Request
	sync := protocol.NewRecord(s).
		SetName("GroupId", m.cfg.Group).
		SetName("GenerationId", gen).
		SetName("MemberId", memberID).
		SetName("GroupInstanceId", m.instanceID()).
		SetName("ProtocolType", m.cfg.ProtocolType).
		SetName("ProtocolName", GroupProtocol)
	isLeader := leader == memberID
	if isLeader && !recBool(join, rs.Handle("SkipAssignment")) {
		assigned, err := m.lead(ctx, gen, join)
		if err != nil {
			// The others wait for this SyncGroup; leave so that the
			// coordinator chooses another leader at once.
			m.leaveQuietly(ctx)
			return a, false, err
		}
		for id, b := range assigned {
			sync.Append(s.Handle("Assignments")).SetName("MemberId", id).SetName("Assignment", b)
		}
	}
	m.log.Debug("SyncGroup", "generation", gen, "member", memberID, "leader", isLeader)
	syncResp, err := m.holdable(ctx, conn, sync, sv)
	if err != nil {
		return a, m.retriable(err), err
	}
	srs := api.SyncGroup.Response
	if err := protocol.ErrorForCode(syncResp.Int16(srs.Handle("ErrorCode"))); err != nil {
		return a, m.joinGroupError(err), fmt.Errorf("SyncGroup (generation %d): %w", gen, m.explain(err))
	}
	if name := recNullString(syncResp, srs.Handle("ProtocolName")); name != nil && *name != GroupProtocol {
		return a, false, fmt.Errorf("SyncGroup: protocol %q; ktape offers only %q", *name, GroupProtocol)
	}
	ga, err := decodeGroupAssignment(syncResp.Bytes(srs.Handle("Assignment")))
	if err != nil {
		return a, false, fmt.Errorf("SyncGroup (generation %d, leader %s): %w", gen, leader, err)
	}
	m.mu.Lock()
	m.owned = groupMetadata{Generation: gen, Owned: ga.Items}
	m.mu.Unlock()
	a = Assignment{Generation: gen, MemberID: memberID, Leader: isLeader, Members: ga.Members,
		Items: ga.Items, Shared: ga.Shared}
	m.log.Info("joined group", "generation", gen, "member", memberID, "leader", isLeader, "items", len(ga.Items))
	return a, false, nil
}

// joinHoldSlack is how much longer than the rebalance timeout a member
// waits for a JoinGroup or SyncGroup answer, as Kafka's consumer does.
const joinHoldSlack = 5 * time.Second

// holdable sends a JoinGroup or SyncGroup, which the coordinator holds
// until the rebalance completes: at the latest after the rebalance
// timeout. A coordinator that has not answered by then plus
// joinHoldSlack never will (it dropped the request); the connection,
// whose later answers would queue behind the missing one, is closed and
// the error is retriable.
func (m *GroupMember) holdable(ctx context.Context, conn *Conn, req *protocol.Record, v int16) (*protocol.Record, error) {
	hold := m.cfg.RebalanceTimeout + joinHoldSlack
	hctx, cancel := context.WithTimeout(ctx, hold)
	defer cancel()
	rec, err := adminDo(hctx, conn, req, v, hold)
	if err != nil && ctx.Err() == nil && hctx.Err() != nil {
		conn.Close()
		a := req.Schema().API()
		err = &ConnError{Addr: conn.Addr(), Err: fmt.Errorf("%s not answered within the rebalance timeout %v and %v", a.Name, m.cfg.RebalanceTimeout, joinHoldSlack), Retriable: true}
	}
	return rec, err
}

// lead runs Plan and the sticky assignment and returns each member's
// encoded assignment.
func (m *GroupMember) lead(ctx context.Context, gen int32, join *protocol.Record) (map[string][]byte, error) {
	rs := api.JoinGroup.Response
	var claims []memberClaim
	for _, e := range join.Elems(rs.Handle("Members")) {
		es := e.Schema()
		id := e.String(es.Handle("MemberId"))
		md, err := decodeGroupMetadata(e.Bytes(es.Handle("Metadata")))
		if err != nil {
			// Its claims cannot be honoured, but it can still be given
			// items: balance does not depend on them.
			m.log.Warn("ignoring a member's claims", "member", id, "err", err)
			md = groupMetadata{Generation: -1}
		}
		claims = append(claims, memberClaim{ID: id, groupMetadata: md})
	}
	items, shared, err := m.cfg.Plan(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan of generation %d (this member leads): %w", gen, err)
	}
	for _, tp := range items {
		if err := validItem(tp); err != nil {
			return nil, fmt.Errorf("plan of generation %d: %w", gen, err)
		}
	}
	out := make(map[string][]byte, len(claims))
	for id, its := range assignSticky(items, claims) {
		out[id] = encodeGroupAssignment(groupAssignment{Members: len(claims), Shared: shared, Items: its})
	}
	m.log.Info("assigned group", "generation", gen, "members", len(claims), "items", len(sortItems(items)))
	return out, nil
}

// joinGroupError says whether a JoinGroup or SyncGroup error may go away
// by joining again, and updates the member's state for it.
func (m *GroupMember) joinGroupError(err error) bool {
	switch {
	case retriableCoordinatorError(err):
		m.dropCoordinator()
		return true
	case errors.Is(err, errRebalanceInProgress), errors.Is(err, errIllegalGeneration):
		return true
	case errors.Is(err, errUnknownMemberID):
		m.mu.Lock()
		m.memberID = ""
		m.mu.Unlock()
		return true
	case errors.Is(err, errFencedInstanceID):
		m.mu.Lock()
		m.fenced = fmt.Errorf("client: group %s: instance id %q is in use by another member (FENCED_INSTANCE_ID): %w", m.cfg.Group, m.cfg.InstanceID, err)
		m.mu.Unlock()
		return false
	}
	return IsRetriable(err)
}

// explain adds what a refusal means for ktape.
func (m *GroupMember) explain(err error) error {
	switch {
	case errors.Is(err, errInconsistentGroupProtocol):
		return fmt.Errorf("%w: group %s is in use by clients of another protocol type or protocol than ktape's (%q, %q), e.g. Kafka consumers; use another group name",
			err, m.cfg.Group, m.cfg.ProtocolType, GroupProtocol)
	case errors.Is(err, errInvalidSessionTimeout):
		return fmt.Errorf("%w: session timeout %v is outside the broker's group.min/max.session.timeout.ms", err, m.cfg.SessionTimeout)
	}
	return err
}

// retriable says whether a request failure may go away on a new
// connection or coordinator, dropping the coordinator if so.
func (m *GroupMember) retriable(err error) bool {
	if retriableCoordinatorError(err) || IsRetriable(err) {
		m.dropCoordinator()
		return true
	}
	return false
}

// dropCoordinator forgets the coordinator and closes the member's
// connections to it, so that the next request looks it up again.
func (m *GroupMember) dropCoordinator() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.coord = ""
	for _, c := range []*Conn{m.joinConn, m.hbConn} {
		if c != nil {
			c.Close()
		}
	}
	m.joinConn, m.hbConn = nil, nil
}

// coordinatorConn returns the member's connection in *slot to the group's
// coordinator, finding the coordinator and dialling as needed. The
// connection is the member's own: the coordinator holds a JoinGroup for up
// to the rebalance timeout and answers a connection's requests in order,
// so it must not share one with other requests.
func (m *GroupMember) coordinatorConn(ctx context.Context, slot **Conn) (*Conn, error) {
	m.mu.Lock()
	conn, addr := *slot, m.coord
	m.mu.Unlock()
	if conn != nil && conn.Err() == nil {
		return conn, nil
	}
	if addr == "" {
		found, err := m.c.findCoordinatorsOnce(ctx, CoordinatorGroup, []string{m.cfg.Group})
		if err != nil {
			return nil, fmt.Errorf("finding the coordinator: %w", err)
		}
		f, ok := found[m.cfg.Group]
		if !ok {
			return nil, errors.New("finding the coordinator: group missing from the FindCoordinator response")
		}
		if f.err != nil {
			return nil, fmt.Errorf("finding the coordinator: %w", f.err)
		}
		addr = f.Addr()
	}
	conn, err := m.c.DialDedicated(ctx, addr)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Err() != nil {
		conn.Close()
		return nil, ErrGroupMemberClosed
	}
	if old := *slot; old != nil {
		old.Close()
	}
	m.coord = addr
	*slot = conn
	return conn, nil
}

func (m *GroupMember) instanceID() any {
	if m.cfg.InstanceID == "" {
		return nil
	}
	return m.cfg.InstanceID
}

// startHeartbeats starts the heartbeat loop for the assignment a, with a
// new Revoked channel; false when the member was closed meanwhile. (Close
// cancels m.closed before it stops heartbeats: either this sees it, or
// Close stops the loop started here.)
func (m *GroupMember) startHeartbeats(a Assignment) bool {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.mu.Lock()
	if m.closed.Err() != nil {
		m.mu.Unlock()
		cancel()
		return false
	}
	m.revoked = make(chan struct{})
	m.revokedErr = nil
	m.hbStop, m.hbDone = cancel, done
	m.mu.Unlock()
	go func() {
		defer close(done)
		m.heartbeat(ctx, a.Generation, a.MemberID)
	}()
	return true
}

// stopHeartbeats stops the heartbeat loop, if one runs, and waits for it.
func (m *GroupMember) stopHeartbeats() {
	m.mu.Lock()
	stop, done := m.hbStop, m.hbDone
	m.hbStop, m.hbDone = nil, nil
	m.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// heartbeat sends a heartbeat every HeartbeatInterval until ctx ends or the
// membership is lost. After a rebalance starts it goes on (the member is
// still in the group until it rejoins) but Revoked is closed.
//
// The session clock runs from when the last successful heartbeat was
// sent, not answered: the coordinator received it after that, so the
// member gives up no later than the coordinator removes it, at the
// moment the session timeout is up, not at the next heartbeat.
func (m *GroupMember) heartbeat(ctx context.Context, gen int32, memberID string) {
	// SyncGroup just succeeded; the coordinator's session clock restarted
	// when it answered, a network latency before now.
	lastOK := time.Now()
	next := lastOK.Add(m.cfg.HeartbeatInterval)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last error
	for {
		deadline := lastOK.Add(m.cfg.SessionTimeout)
		wake := next
		if deadline.Before(wake) {
			wake = deadline
		}
		timer.Reset(time.Until(wake)) // go ≥ 1.23: Reset drops a stale tick
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if !time.Now().Before(deadline) {
			m.loseSession(last)
			return
		}
		sent := time.Now()
		next = sent.Add(m.cfg.HeartbeatInterval)
		err := m.heartbeatOnce(ctx, gen, memberID, time.Until(deadline))
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			lastOK, last = sent, nil
		case errors.Is(err, errRebalanceInProgress):
			lastOK, last = sent, nil
			m.revoke(ErrRebalance)
		case errors.Is(err, errUnknownMemberID), errors.Is(err, errIllegalGeneration), errors.Is(err, errFencedInstanceID):
			m.joinGroupError(err) // forgets the member id, or marks the member fenced
			m.revoke(fmt.Errorf("client: group %s: membership lost (generation %d, member %s): %w", m.cfg.Group, gen, memberID, err))
			return
		case retriableCoordinatorError(err) || IsRetriable(err) || errors.Is(err, context.DeadlineExceeded):
			if last == nil || !errors.Is(err, context.DeadlineExceeded) {
				last = err // a timeout of ours says less than the broker's last answer
			}
			m.log.Debug("heartbeat failed", "err", err)
			if retriableCoordinatorError(err) {
				m.dropCoordinator()
			}
		default:
			m.revoke(fmt.Errorf("client: group %s: heartbeat: %w", m.cfg.Group, err))
			return
		}
	}
}

// loseSession ends the assignment when no heartbeat succeeded for a
// session timeout: the coordinator has presumably removed the member and
// given its items to others.
func (m *GroupMember) loseSession(last error) {
	err := fmt.Errorf("client: group %s: no heartbeat succeeded for the session timeout (%v): the coordinator has presumably removed this member; stop work on its items",
		m.cfg.Group, m.cfg.SessionTimeout)
	if last != nil {
		err = fmt.Errorf("%w (last error: %w)", err, last)
	}
	// Rejoin as a new member: a static one then takes its own place by
	// its instance id, whether or not the coordinator still has it.
	m.mu.Lock()
	m.memberID = ""
	m.mu.Unlock()
	m.revoke(err)
}

// heartbeatOnce sends one heartbeat, waiting at most left for the answer;
// a connection whose answer does not come in time is closed, since later
// answers would queue behind it.
func (m *GroupMember) heartbeatOnce(ctx context.Context, gen int32, memberID string, left time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, left)
	defer cancel()
	conn, err := m.coordinatorConn(ctx, &m.hbConn)
	if err != nil {
		return err
	}
	v, err := conn.Version(api.Heartbeat)
	if err != nil {
		return err
	}
	req := protocol.NewRecord(api.Heartbeat.Request).
		SetName("GroupId", m.cfg.Group).
		SetName("GenerationId", gen).
		SetName("MemberId", memberID).
		SetName("GroupInstanceId", m.instanceID())
	resp, err := adminDo(ctx, conn, req, v, 0)
	if err != nil {
		if ctx.Err() != nil {
			conn.Close()
		}
		return err
	}
	return protocol.ErrorForCode(resp.Int16(api.Heartbeat.Response.Handle("ErrorCode")))
}

// Leave leaves the group (LeaveGroup; a static member by its instance id
// too, so that the coordinator does not wait a session timeout for a
// restart) and stops heartbeats: the others rebalance at once and share
// its items. Call it when the member's work is over, or on a shutdown no
// restart is to bridge. The member cannot join again.
func (m *GroupMember) Leave(ctx context.Context) error {
	m.stopHeartbeats()
	var err error
	if m.closed.Err() == nil {
		err = m.leave(ctx)
	}
	m.Close()
	return err
}

func (m *GroupMember) leaveQuietly(ctx context.Context) {
	if err := m.leave(ctx); err != nil {
		m.log.Warn("leaving the group failed", "err", err)
	}
}

// leave sends LeaveGroup, retrying while the coordinator moves.
func (m *GroupMember) leave(ctx context.Context) error {
	m.mu.Lock()
	memberID := m.memberID
	m.mu.Unlock()
	if memberID == "" && m.cfg.InstanceID == "" {
		return nil // never joined, or already forgotten
	}
	var last error
	for attempt := 0; attempt < adminMaxAttempts; attempt++ {
		if attempt > 0 {
			if err := m.c.backoff.Sleep(ctx, attempt-1); err != nil {
				return fmt.Errorf("client: leave group %s: %w", m.cfg.Group, withLast(err, last))
			}
		}
		err := m.leaveOnce(ctx, memberID)
		if err == nil || errors.Is(err, errUnknownMemberID) {
			m.mu.Lock()
			m.memberID = ""
			m.mu.Unlock()
			return nil // gone already: the coordinator removed it
		}
		last = err
		if !m.retriable(err) || ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("client: leave group %s: %w", m.cfg.Group, last)
}

func (m *GroupMember) leaveOnce(ctx context.Context, memberID string) error {
	conn, err := m.coordinatorConn(ctx, &m.joinConn)
	if err != nil {
		return err
	}
	v, err := conn.Version(api.LeaveGroup)
	if err != nil {
		return err
	}
	s := api.LeaveGroup.Request
	req := protocol.NewRecord(s).SetName("GroupId", m.cfg.Group)
	if v >= 3 {
		req.Append(s.Handle("Members")).SetName("MemberId", memberID).SetName("GroupInstanceId", m.instanceID())
	} else {
		if m.cfg.InstanceID != "" {
			return fmt.Errorf("a static member leaves with LeaveGroup v3 (Kafka 2.4); broker %s supports v%d", conn.Addr(), v)
		}
		req.SetName("MemberId", memberID)
	}
	rec, err := adminDo(ctx, conn, req, v, 0)
	if err != nil {
		return err
	}
	rs := api.LeaveGroup.Response
	if err := protocol.ErrorForCode(rec.Int16(rs.Handle("ErrorCode"))); err != nil {
		return err
	}
	for _, e := range rec.Elems(rs.Handle("Members")) {
		if err := protocol.ErrorForCode(e.Int16(e.Schema().Handle("ErrorCode"))); err != nil {
			return err
		}
	}
	return nil
}

// Close stops heartbeats and closes the member's connections without
// leaving: the coordinator removes the member after its session timeout,
// unless a static member with the same InstanceID takes its place first,
// which then gets its items without a rebalance. Close may interrupt a
// Join. The member cannot join again.
func (m *GroupMember) Close() {
	m.closeOnce()
	m.stopHeartbeats()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.revokeLocked(ErrGroupMemberClosed)
	m.revokedErr = ErrGroupMemberClosed // whatever ended the last assignment, the member is closed now
	for _, c := range []*Conn{m.joinConn, m.hbConn} {
		if c != nil {
			c.Close()
		}
	}
	m.joinConn, m.hbConn = nil, nil
}

// Group error codes the membership branches on.
var (
	errIllegalGeneration         = protocol.ErrorForCode(22)
	errInconsistentGroupProtocol = protocol.ErrorForCode(23)
	errUnknownMemberID           = protocol.ErrorForCode(25)
	errInvalidSessionTimeout     = protocol.ErrorForCode(26)
	errRebalanceInProgress       = protocol.ErrorForCode(27)
	errFencedInstanceID          = protocol.ErrorForCode(82)
)
