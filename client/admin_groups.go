package client

// admin_groups.go: consumer group administration: list, find coordinators,
// describe, read and commit offsets. Requests about groups go to each
// group's coordinator, one request per coordinator, all coordinators at
// once; groups whose coordinator moved are looked up again and retried.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
)

// Coordinator key types for FindCoordinators.
const (
	CoordinatorGroup       int8 = 0
	CoordinatorTransaction int8 = 1
)

// GroupListing is one group as ListGroups reports it.
type GroupListing struct {
	Group        string
	ProtocolType string // "consumer" for consumer groups, "" for groups only committing offsets
	State        string // e.g. "Stable", "Empty"; "" before ListGroups v4 (Kafka 2.6)
	Type         string // "classic", "consumer", "share"...; "" before ListGroups v5
}

// ListGroups lists the cluster's groups. Each broker lists only the groups
// it coordinates, so every broker is asked (after a metadata refresh, to
// know them all), concurrently, and the answers merged, sorted by group. A
// broker that cannot be reached, or answers with an error after retries,
// fails the whole call: a partial list is never presented as complete.
func (c *Client) ListGroups(ctx context.Context) ([]GroupListing, error) {
	m, err := c.RefreshMetadata(ctx, []string{})
	if err != nil {
		return nil, err
	}
	var (
		mu   sync.Mutex
		all  []GroupListing
		errs []error
	)
	fanOut(m.Brokers, func(id int32, b Broker) {
		gs, err := c.listGroupsOn(ctx, b)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("client: list groups on broker %d (%s): %w", id, b.Addr(), err))
			return
		}
		all = append(all, gs...)
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// A group whose coordinator moved between two answers is listed twice.
	sort.SliceStable(all, func(i, j int) bool { return all[i].Group < all[j].Group })
	return slices.CompactFunc(all, func(a, b GroupListing) bool { return a.Group == b.Group }), nil
}

func (c *Client) listGroupsOn(ctx context.Context, b Broker) ([]GroupListing, error) {
	var err error
	for attempt := 0; attempt < adminMaxAttempts; attempt++ {
		if attempt > 0 {
			if serr := c.backoff.Sleep(ctx, attempt-1); serr != nil {
				return nil, withLast(serr, err)
			}
		}
		var gs []GroupListing
		gs, err = listGroupsOnce(ctx, c, b)
		if err == nil || !IsRetriable(err) || ctx.Err() != nil {
			return gs, err
		}
	}
	return nil, err
}

func listGroupsOnce(ctx context.Context, c *Client, b Broker) ([]GroupListing, error) {
	conn, err := c.ConnTo(ctx, b.Addr())
	if err != nil {
		return nil, err
	}
	v, err := conn.Version(api.ListGroups)
	if err != nil {
		return nil, err
	}
	rec, err := adminDo(ctx, conn, protocol.NewRecord(api.ListGroups.Request), v, 0) // no filters
	if err != nil {
		return nil, err
	}
	rs := api.ListGroups.Response
	if err := protocol.ErrorForCode(rec.Int16(rs.Handle("ErrorCode"))); err != nil {
		return nil, err
	}
	var out []GroupListing
	for _, g := range rec.Elems(rs.Handle("Groups")) {
		gs := g.Schema()
		out = append(out, GroupListing{Group: g.String(gs.Handle("GroupId")), ProtocolType: g.String(gs.Handle("ProtocolType")),
			State: g.String(gs.Handle("GroupState")), Type: g.String(gs.Handle("GroupType"))})
	}
	return out, nil
}

// FindCoordinators returns the broker id coordinating each key: groups
// (CoordinatorGroup) or transactional ids (CoordinatorTransaction). Any
// broker answers; from FindCoordinator v4 (Kafka 3.0, KIP-699) one request
// carries every key, before that one request per key. Keys answered
// COORDINATOR_NOT_AVAILABLE or COORDINATOR_LOAD_IN_PROGRESS (a coordinator
// being elected or loading its state) are asked again after a backoff.
//
// Keys that got no coordinator are missing from the map and each named in
// the returned error, which joins them; the map still holds the others.
// The map is nil only when the whole call failed.
func (c *Client) FindCoordinators(ctx context.Context, keyType int8, keys []string) (map[string]int32, error) {
	keys = dedupe(keys)
	out := make(map[string]int32, len(keys))
	var errs []error
	todo := keys
	var last error
	for attempt := 0; len(todo) > 0; attempt++ {
		final := attempt+1 >= adminMaxAttempts
		if attempt > 0 {
			if err := c.backoff.Sleep(ctx, attempt-1); err != nil {
				return nil, withLast(err, last)
			}
		}
		found, err := c.findCoordinatorsOnce(ctx, keyType, todo)
		if err != nil {
			last = err
			if IsRetriable(err) && !final && ctx.Err() == nil {
				continue
			}
			return nil, err
		}
		var next []string
		for _, k := range todo {
			f, ok := found[k]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("client: find coordinator of %s: missing from the response", k))
			case f.err != nil && retriableCoordinatorError(f.err) && !final:
				last = f.err
				next = append(next, k)
			case f.err != nil:
				errs = append(errs, fmt.Errorf("client: find coordinator of %s: %w", k, f.err))
			default:
				out[k] = f.ID
			}
		}
		todo = next
	}
	return out, errors.Join(errs...)
}

// coordinator is one key's answer to FindCoordinator.
type coordinator struct {
	Broker
	err error
}

// findCoordinatorsOnce asks one broker for the coordinators of keys,
// without retries. A key's own failure (including, before v4, a failed
// request for it) is in its entry; the error is for the whole call.
func (c *Client) findCoordinatorsOnce(ctx context.Context, keyType int8, keys []string) (map[string]coordinator, error) {
	conn, err := c.AnyConn(ctx)
	if err != nil {
		return nil, err
	}
	v, err := conn.Version(api.FindCoordinator)
	if err != nil {
		return nil, err
	}
	if keyType != CoordinatorGroup && v < 1 {
		return nil, fmt.Errorf("client: broker %s supports only FindCoordinator v0, which finds group coordinators only", conn.Addr())
	}
	s, rs := api.FindCoordinator.Request, api.FindCoordinator.Response
	out := make(map[string]coordinator, len(keys))
	if v >= 4 {
		req := protocol.NewRecord(s).SetName("KeyType", keyType).SetName("CoordinatorKeys", keys)
		rec, err := adminDo(ctx, conn, req, v, 0)
		if err != nil {
			return nil, err
		}
		for _, e := range rec.Elems(rs.Handle("Coordinators")) {
			es := e.Schema()
			out[e.String(es.Handle("Key"))] = coordinator{
				Broker: Broker{ID: e.Int32(es.Handle("NodeId")), Host: e.String(es.Handle("Host")), Port: e.Int32(es.Handle("Port"))},
				err:    codeError(e.Int16(es.Handle("ErrorCode")), e.String(es.Handle("ErrorMessage"))),
			}
		}
		return out, nil
	}
	var mu sync.Mutex
	perKey(keys, func(k string) {
		req := protocol.NewRecord(s).SetName("Key", k).SetName("KeyType", keyType) // KeyType is left out at v0
		var f coordinator
		rec, err := adminDo(ctx, conn, req, v, 0)
		if err != nil {
			f.err = err
		} else {
			f.Broker = Broker{ID: rec.Int32(rs.Handle("NodeId")), Host: rec.String(rs.Handle("Host")), Port: rec.Int32(rs.Handle("Port"))}
			f.err = codeError(rec.Int16(rs.Handle("ErrorCode")), rec.String(rs.Handle("ErrorMessage")))
		}
		mu.Lock()
		out[k] = f
		mu.Unlock()
	})
	return out, nil
}

// retriableCoordinatorError: the coordinator is being elected, is loading
// its state, or moved; asking again (after FindCoordinator) may succeed.
// Connection failures count too.
func retriableCoordinatorError(err error) bool {
	var ce *ConnError
	if errors.As(err, &ce) {
		return ce.Retriable
	}
	return errors.Is(err, protocol.ErrCoordinatorNotAvailable) || errors.Is(err, protocol.ErrCoordinatorLoading) ||
		errors.Is(err, protocol.ErrNotCoordinator)
}

// GroupDescription is DescribeGroups' answer for one group.
type GroupDescription struct {
	Group        string
	State        string // "Stable", "Empty", "PreparingRebalance", "Dead"...
	ProtocolType string // "consumer" for consumer groups
	Protocol     string // the partition assignor, when Stable
	Members      []DescribedGroupMember
	// Err is the broker's error for the group. From DescribeGroups v6
	// (KIP-1043) a group that does not exist is GROUP_ID_NOT_FOUND;
	// before, it comes back without error in state "Dead".
	Err error
}

// DescribedGroupMember is a member of a group as DescribeGroups reports
// it. (GroupMember is this process's own membership: group.go.)
type DescribedGroupMember struct {
	MemberID   string
	InstanceID string // static membership (KIP-345); "" when none
	ClientID   string
	Host       string
	// Assignment is the member's assignment as the group's leader wrote
	// it; for consumer groups a ConsumerProtocolAssignment.
	Assignment []byte
}

// DescribeGroups describes groups: state, protocol and members. Each
// group's coordinator is found first; then one DescribeGroups request goes
// to each coordinator, for all its groups, all coordinators at once.
// Groups whose coordinator moved or is loading are retried after a
// backoff.
//
// The map has an entry for every group named, with the broker's error
// for the group, if any, in its Err. The returned error is for the whole
// call only (the context ended, no broker could be reached).
func (c *Client) DescribeGroups(ctx context.Context, groups []string) (map[string]GroupDescription, error) {
	groups = dedupe(groups)
	out := make(map[string]GroupDescription, len(groups))
	var mu sync.Mutex
	failed, err := c.groupRounds(ctx, groups, func(ctx context.Context, conn *Conn, groups []string) (map[string]error, error) {
		v, err := conn.Version(api.DescribeGroups)
		if err != nil {
			return nil, err
		}
		req := protocol.NewRecord(api.DescribeGroups.Request).SetName("Groups", groups)
		rec, err := adminDo(ctx, conn, req, v, 0)
		if err != nil {
			return nil, err
		}
		retry := map[string]error{}
		mu.Lock()
		defer mu.Unlock()
		for _, g := range rec.Elems(api.DescribeGroups.Response.Handle("Groups")) {
			gs := g.Schema()
			d := GroupDescription{
				Group:        g.String(gs.Handle("GroupId")),
				State:        g.String(gs.Handle("GroupState")),
				ProtocolType: g.String(gs.Handle("ProtocolType")),
				Protocol:     g.String(gs.Handle("ProtocolData")),
			}
			if err := codeError(g.Int16(gs.Handle("ErrorCode")), g.String(gs.Handle("ErrorMessage"))); err != nil {
				if retriableCoordinatorError(err) {
					retry[d.Group] = err
					continue
				}
				d.Err = fmt.Errorf("client: describe group %s: %w", d.Group, err)
			}
			for _, m := range g.Elems(gs.Handle("Members")) {
				ms := m.Schema()
				d.Members = append(d.Members, DescribedGroupMember{
					MemberID:   m.String(ms.Handle("MemberId")),
					InstanceID: m.String(ms.Handle("GroupInstanceId")),
					ClientID:   m.String(ms.Handle("ClientId")),
					Host:       m.String(ms.Handle("ClientHost")),
					Assignment: m.Bytes(ms.Handle("MemberAssignment")),
				})
			}
			out[d.Group] = d
		}
		return retry, nil
	})
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		if _, ok := out[g]; ok {
			continue
		}
		e := failed[g]
		if e == nil {
			e = errors.New("missing from the response")
		}
		out[g] = GroupDescription{Group: g, Err: fmt.Errorf("client: describe group %s: %w", g, e)}
	}
	return out, nil
}

// GroupOffset is a group's committed offset for one partition.
type GroupOffset struct {
	Offset      int64 // the next offset to consume; -1 when none is committed
	LeaderEpoch int32 // -1 when unknown
	Metadata    string
	Err         error
}

// GroupLevel is the key under which FetchGroupOffsets reports an error
// about a whole group (the coordinator refused it: not authorized, or it
// never answered): the only entry of that group's map, with Err set.
// Partition -1 is never a real partition.
func GroupLevel() TopicPartition { return TopicPartition{Topic: "", Partition: -1} }

// FetchGroupOffsets returns the committed offsets of groups, for every
// topic each group has committed to. Requests go to each group's
// coordinator: from OffsetFetch v8 (Kafka 3.0, KIP-709) one request per
// coordinator carries all its groups; before, one request per group. All
// coordinators are asked at once. Groups answered NOT_COORDINATOR,
// COORDINATOR_NOT_AVAILABLE or COORDINATOR_LOAD_IN_PROGRESS have their
// coordinator looked up again and are retried after a backoff.
//
// The map has an entry for every group named: its offsets, with any
// per-partition error in Err, or, when the whole group failed, a single
// entry under GroupLevel(). A group that does not exist has no offsets (an
// empty map), as Kafka answers. From v10 the broker names topics by id;
// offsets of a topic id the metadata does not know, even after a refresh
// (the topic was deleted), are left out, as the broker itself leaves out
// deleted topics. The returned error is for the whole call only.
func (c *Client) FetchGroupOffsets(ctx context.Context, groups []string) (map[string]map[TopicPartition]GroupOffset, error) {
	groups = dedupe(groups)
	out := make(map[string]map[TopicPartition]GroupOffset, len(groups))
	var mu sync.Mutex
	names := &topicNames{c: c}
	failed, err := c.groupRounds(ctx, groups, func(ctx context.Context, conn *Conn, groups []string) (map[string]error, error) {
		v, err := conn.Version(api.OffsetFetch)
		if err != nil {
			return nil, err
		}
		if v < 2 {
			return nil, fmt.Errorf("client: broker %s supports OffsetFetch up to v%d; fetching all of a group's offsets needs v2 (Kafka 0.10.2)", conn.Addr(), v)
		}
		set := func(g string, offs map[TopicPartition]GroupOffset) {
			mu.Lock()
			out[g] = offs
			mu.Unlock()
		}
		if v >= 8 {
			return offsetFetchGroups(ctx, conn, v, groups, names, set)
		}
		// One request per group, pipelined on conn.
		retry := map[string]error{}
		var rmu sync.Mutex
		perKey(groups, func(g string) {
			r, err := offsetFetchGroups(ctx, conn, v, []string{g}, names, set)
			if err != nil && !retriableCoordinatorError(err) {
				set(g, map[TopicPartition]GroupOffset{GroupLevel(): {Offset: -1, LeaderEpoch: -1,
					Err: fmt.Errorf("client: fetch offsets of group %s: %w", g, err)}})
				return
			}
			rmu.Lock()
			defer rmu.Unlock()
			if err != nil {
				retry[g] = err
			}
			for k, e := range r {
				retry[k] = e
			}
		})
		return retry, nil
	})
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		if _, ok := out[g]; ok {
			continue
		}
		e := failed[g]
		if e == nil {
			e = errors.New("missing from the response")
		}
		out[g] = map[TopicPartition]GroupOffset{GroupLevel(): {Offset: -1, LeaderEpoch: -1, Err: fmt.Errorf("client: fetch offsets of group %s: %w", g, e)}}
	}
	return out, nil
}

// offsetFetchGroups sends one OffsetFetch for groups (several only from
// v8), asking for all topics, and hands each answered group's offsets to
// set. It returns the groups to retry elsewhere with their errors.
func offsetFetchGroups(ctx context.Context, conn *Conn, v int16, groups []string, names *topicNames,
	set func(string, map[TopicPartition]GroupOffset)) (map[string]error, error) {
	s, rs := api.OffsetFetch.Request, api.OffsetFetch.Response
	req := protocol.NewRecord(s)
	if v >= 8 {
		gh := s.Handle("Groups")
		for _, g := range groups {
			req.Append(gh).SetName("GroupId", g) // Topics null: all; MemberId null, MemberEpoch -1: an admin
		}
	} else {
		req.SetName("GroupId", groups[0]) // Topics null: all
	}
	rec, err := adminDo(ctx, conn, req, v, 0)
	if err != nil {
		return nil, err
	}
	retry := map[string]error{}
	// answer handles one group's code and topics.
	answer := func(g string, code int16, topics []*protocol.Record) {
		err := protocol.ErrorForCode(code)
		switch {
		case err != nil && retriableCoordinatorError(err):
			retry[g] = err
			return
		case errors.Is(err, errGroupIDNotFound):
			// Kafka answers an unknown group with no offsets; kfake
			// (and, for describes, KIP-1043 brokers) with this code.
			set(g, map[TopicPartition]GroupOffset{})
			return
		case err != nil:
			set(g, map[TopicPartition]GroupOffset{GroupLevel(): {Offset: -1, LeaderEpoch: -1,
				Err: fmt.Errorf("client: fetch offsets of group %s: %w", g, err)}})
			return
		}
		offs := map[TopicPartition]GroupOffset{}
		for _, t := range topics {
			ts := t.Schema()
			name := ""
			if v >= 10 {
				var ok bool
				var err error
				name, ok, err = names.byID(ctx, recUUID(t, ts.Handle("TopicId")))
				if err != nil {
					set(g, map[TopicPartition]GroupOffset{GroupLevel(): {Offset: -1, LeaderEpoch: -1,
						Err: fmt.Errorf("client: fetch offsets of group %s: naming topic ids: %w", g, err)}})
					return
				}
				if !ok {
					continue // deleted since: the broker would leave it out too
				}
			} else {
				name = t.String(ts.Handle("Name"))
			}
			for _, p := range t.Elems(ts.Handle("Partitions")) {
				ps := p.Schema()
				tp := TopicPartition{name, p.Int32(ps.Handle("PartitionIndex"))}
				o := GroupOffset{Offset: p.Int64(ps.Handle("CommittedOffset")), LeaderEpoch: p.Int32(ps.Handle("CommittedLeaderEpoch")),
					Metadata: p.String(ps.Handle("Metadata"))}
				if err := protocol.ErrorForCode(p.Int16(ps.Handle("ErrorCode"))); err != nil {
					o.Err = fmt.Errorf("client: fetch offset of group %s for %s: %w", g, tp, err)
				}
				offs[tp] = o
			}
		}
		set(g, offs)
	}
	if v >= 8 {
		for _, g := range rec.Elems(rs.Handle("Groups")) {
			gs := g.Schema()
			answer(g.String(gs.Handle("GroupId")), g.Int16(gs.Handle("ErrorCode")), g.Elems(gs.Handle("Topics")))
		}
	} else {
		answer(groups[0], rec.Int16(rs.Handle("ErrorCode")), rec.Elems(rs.Handle("Topics")))
	}
	return retry, nil
}

var errGroupIDNotFound = protocol.ErrorForCode(69) // GROUP_ID_NOT_FOUND

// topicNames maps topic ids to names from the client's metadata,
// refreshing it (for every topic) at most once when an id is unknown. It
// is safe for concurrent use.
type topicNames struct {
	c         *Client
	mu        sync.Mutex
	indexed   *Metadata // the snapshot ids was built from
	ids       map[[16]byte]string
	refreshed bool
}

// byID returns the name of topic id, ok false when the metadata does not
// know the id even after a refresh; the error is the refresh's.
func (n *topicNames) byID(ctx context.Context, id [16]byte) (name string, ok bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.index(n.c.Metadata())
	if name, ok := n.ids[id]; ok || n.refreshed {
		return name, ok, nil
	}
	n.refreshed = true
	m, err := n.c.RefreshMetadata(ctx, nil)
	if err != nil {
		return "", false, err
	}
	n.index(m)
	name, ok = n.ids[id]
	return name, ok, nil
}

func (n *topicNames) index(m *Metadata) {
	if m == n.indexed {
		return
	}
	n.indexed = m
	n.ids = make(map[[16]byte]string, len(m.Topics))
	for name, t := range m.Topics {
		if t.Err == nil && t.ID != ([16]byte{}) {
			n.ids[t.ID] = name
		}
	}
}

// CommitGroupOffsets commits offsets for a group the way an admin does
// (kafka-consumer-groups --reset-offsets): as no member, with generation
// -1, member id "" and no group instance id. Kafka accepts such a commit
// only while the group has no active members (state Empty, or a group
// that does not exist yet, which it creates); otherwise every partition
// comes back UNKNOWN_MEMBER_ID (or ILLEGAL_GENERATION). The request goes
// to the group's coordinator; partitions answered NOT_COORDINATOR or
// COORDINATOR_LOAD_IN_PROGRESS are retried after the coordinator is looked
// up again. From OffsetCommit v10 topics are sent by id, taken from the
// metadata (refreshed for topics it lacks).
//
// The map has an entry for every partition given: nil when committed, else
// the broker's error for it. The returned error is for the whole call only
// (no coordinator could be found or reached), and the map is then nil.
func (c *Client) CommitGroupOffsets(ctx context.Context, group string, offsets map[TopicPartition]GroupOffset) (map[TopicPartition]error, error) {
	out := make(map[TopicPartition]error, len(offsets))
	if len(offsets) == 0 {
		return out, nil
	}
	todo := make(map[TopicPartition]GroupOffset, len(offsets))
	for tp, o := range offsets {
		todo[tp] = o
	}
	var mu sync.Mutex // one group, one coordinator: send never runs twice at once, but say so
	failed, err := c.groupRounds(ctx, []string{group}, func(ctx context.Context, conn *Conn, _ []string) (map[string]error, error) {
		mu.Lock()
		defer mu.Unlock()
		v, err := conn.Version(api.OffsetCommit)
		if err != nil {
			return nil, err
		}
		res, err := c.offsetCommitOn(ctx, conn, v, group, todo)
		if err != nil {
			return nil, err
		}
		var retryErr error
		for tp, e := range res {
			if e != nil && retriableCoordinatorError(e) {
				retryErr = e
				continue
			}
			if e != nil {
				e = fmt.Errorf("client: commit offset of group %s for %s: %w", group, tp, e)
			}
			out[tp] = e
			delete(todo, tp)
		}
		for tp := range todo {
			if _, ok := res[tp]; !ok {
				out[tp] = fmt.Errorf("client: commit offset of group %s for %s: missing from the response", group, tp)
				delete(todo, tp)
			}
		}
		if retryErr != nil {
			return map[string]error{group: retryErr}, nil
		}
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	if e := failed[group]; e != nil {
		if len(out) == 0 {
			return nil, fmt.Errorf("client: commit offsets of group %s: %w", group, e)
		}
		for tp := range todo {
			out[tp] = fmt.Errorf("client: commit offset of group %s for %s: %w", group, tp, e)
		}
	}
	return out, nil
}

// offsetCommitOn sends one admin OffsetCommit for group and returns each
// partition's raw error.
func (c *Client) offsetCommitOn(ctx context.Context, conn *Conn, v int16, group string, offs map[TopicPartition]GroupOffset) (map[TopicPartition]error, error) {
	out := map[TopicPartition]error{}
	ids := map[string][16]byte{}
	byID := map[[16]byte]string{}
	if v >= 10 {
		var missing []string
		for tp := range offs {
			if _, seen := ids[tp.Topic]; seen {
				continue
			}
			t := c.Metadata().Topics[tp.Topic]
			if t == nil || t.Err != nil || t.ID == ([16]byte{}) {
				missing = append(missing, tp.Topic)
				ids[tp.Topic] = [16]byte{}
				continue
			}
			ids[tp.Topic] = t.ID
		}
		if len(missing) > 0 {
			m, err := c.RefreshMetadata(ctx, missing)
			if err != nil {
				return nil, err
			}
			for _, name := range missing {
				if t := m.Topics[name]; t != nil && t.Err == nil {
					ids[name] = t.ID
				}
			}
		}
		for name, id := range ids {
			byID[id] = name
		}
	}
	s := api.OffsetCommit.Request
	req := protocol.NewRecord(s).
		SetName("GroupId", group).
		SetName("GenerationIdOrMemberEpoch", int32(-1)).
		SetName("MemberId", "") // GroupInstanceId stays null, RetentionTimeMs -1
	topics := map[string]*protocol.Record{}
	sent := 0
	for tp, o := range offs {
		if v >= 10 && ids[tp.Topic] == ([16]byte{}) {
			out[tp] = protocol.ErrUnknownTopicOrPartition
			continue
		}
		t := topics[tp.Topic]
		if t == nil {
			t = req.Append(s.Handle("Topics")).SetName("Name", tp.Topic).SetName("TopicId", ids[tp.Topic])
			topics[tp.Topic] = t
		}
		t.Append(t.Schema().Handle("Partitions")).
			SetName("PartitionIndex", tp.Partition).
			SetName("CommittedOffset", o.Offset).
			SetName("CommittedLeaderEpoch", o.LeaderEpoch).
			SetName("CommittedMetadata", o.Metadata)
		sent++
	}
	if sent == 0 {
		return out, nil
	}
	rec, err := adminDo(ctx, conn, req, v, 0)
	if err != nil {
		return nil, err
	}
	for _, t := range rec.Elems(api.OffsetCommit.Response.Handle("Topics")) {
		ts := t.Schema()
		name := t.String(ts.Handle("Name"))
		if v >= 10 {
			name = byID[recUUID(t, ts.Handle("TopicId"))]
		}
		for _, p := range t.Elems(ts.Handle("Partitions")) {
			ps := p.Schema()
			out[TopicPartition{name, p.Int32(ps.Handle("PartitionIndex"))}] = protocol.ErrorForCode(p.Int16(ps.Handle("ErrorCode")))
		}
	}
	return out, nil
}

// groupRounds finds each group's coordinator and calls send once per
// coordinator, all coordinators at once, with the groups it coordinates.
// send records its answers itself and returns the groups to try again,
// because their answer said the coordinator moved or is loading, with that
// error; or an error for its whole request, whose groups are tried again
// when the error is retriable. Groups to try again have their coordinator
// looked up again after a backoff, for at most adminMaxAttempts rounds.
//
// groupRounds returns the last error of each group that never got a final
// answer; its own error only when ctx ended or no coordinator could be
// looked up at all.
func (c *Client) groupRounds(ctx context.Context, groups []string,
	send func(context.Context, *Conn, []string) (map[string]error, error)) (map[string]error, error) {
	failed := map[string]error{}
	todo := groups
	var last error
	for attempt := 0; len(todo) > 0; attempt++ {
		final := attempt+1 >= adminMaxAttempts
		if attempt > 0 {
			if err := c.backoff.Sleep(ctx, attempt-1); err != nil {
				return nil, withLast(err, last)
			}
		}
		found, err := c.findCoordinatorsOnce(ctx, CoordinatorGroup, todo)
		if err != nil {
			last = err
			if IsRetriable(err) && !final && ctx.Err() == nil {
				continue
			}
			return nil, err
		}
		var mu sync.Mutex
		var next []string
		retry := func(g string, err error) {
			last = err
			if final {
				failed[g] = err
			} else {
				next = append(next, g)
			}
		}
		byCoord := map[int32][]string{}
		addrs := map[int32]string{}
		for _, g := range todo {
			f, ok := found[g]
			switch {
			case !ok:
				failed[g] = errors.New("missing from the FindCoordinator response")
			case f.err != nil && retriableCoordinatorError(f.err):
				retry(g, fmt.Errorf("finding its coordinator: %w", f.err))
			case f.err != nil:
				failed[g] = fmt.Errorf("finding its coordinator: %w", f.err)
			default:
				byCoord[f.ID] = append(byCoord[f.ID], g)
				addrs[f.ID] = f.Addr()
			}
		}
		fanOut(byCoord, func(id int32, gs []string) {
			conn, err := c.ConnTo(ctx, addrs[id])
			var res map[string]error
			if err == nil {
				res, err = send(ctx, conn, gs)
			}
			mu.Lock()
			defer mu.Unlock()
			for g, e := range res {
				retry(g, e)
			}
			if err == nil {
				return
			}
			err = fmt.Errorf("coordinator %d (%s): %w", id, addrs[id], err)
			for _, g := range gs {
				if _, again := res[g]; again {
					continue
				}
				if IsRetriable(err) && ctx.Err() == nil {
					retry(g, err)
				} else {
					failed[g] = err
				}
			}
		})
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		todo = next
	}
	return failed, nil
}

// perKey calls fn for every key, adminParallel at a time, and waits.
func perKey(keys []string, fn func(string)) {
	sem := make(chan struct{}, adminParallel)
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(k)
		}()
	}
	wg.Wait()
}
