package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/protocol"
)

// Group membership against kfake's classic group coordinator, several
// members in one process, each with its own connections. franz-go (kadm,
// kgo) is the independent reference for what the coordinator holds.

// Short timeouts keep the tests fast; kfake's group.min.session.timeout
// (6 s by default, as Kafka's) is lowered to allow them.
const (
	testSession   = 600 * time.Millisecond
	testHeartbeat = 50 * time.Millisecond
	testRebalance = 3 * time.Second
)

func startGroupCluster(t *testing.T) *kfaketest.Cluster {
	return kfaketest.Start(t, kfaketest.Topics(4, "t"),
		kfaketest.KfakeOpts(kfake.GroupMinSessionTimeout(50*time.Millisecond)))
}

// groupItems is what the leaders plan: 12 items over two topics.
var groupItems = append(seq("t", 0, 8), seq("u", 0, 4)...)

// worker runs one member the way a ktape worker does: join, work until
// revoked, rejoin; it records every assignment and every revocation.
type worker struct {
	name  string
	m     *GroupMember
	plans atomic.Int32 // Plan calls

	mu      sync.Mutex
	history []Assignment
	current *Assignment // nil while revoked or before the first join
	revokes []error
	joinErr error
	done    chan struct{}
	// stopOn ends the loop after a revocation it returns true for.
	stopOn func(error) bool
	// ledger, if set, records who holds what, when.
	ledger *ledger
}

// ledger checks the property the group exists for: no item is held by
// two members at once. A member holds its items from Join's return until
// it sees Revoked; it records the release before it rejoins.
type ledger struct {
	mu         sync.Mutex
	holder     map[TopicPartition]string
	violations []string
}

func newLedger() *ledger { return &ledger{holder: map[TopicPartition]string{}} }

func (l *ledger) take(who string, items []TopicPartition) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tp := range items {
		if h, ok := l.holder[tp]; ok && h != who {
			l.violations = append(l.violations, fmt.Sprintf("%s took %s while %s held it", who, tp, h))
		}
		l.holder[tp] = who
	}
}

func (l *ledger) release(who string, items []TopicPartition) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tp := range items {
		if l.holder[tp] == who {
			delete(l.holder, tp)
		}
	}
}

func (l *ledger) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range l.violations {
		t.Error(v)
	}
}

type groupOpt func(*GroupConfig)

func newWorker(t *testing.T, cl *Client, name, group string, opts ...groupOpt) *worker {
	t.Helper()
	w := &worker{name: name, done: make(chan struct{})}
	cfg := GroupConfig{Group: group, SessionTimeout: testSession, HeartbeatInterval: testHeartbeat,
		RebalanceTimeout: testRebalance,
		Plan: func(context.Context) ([]TopicPartition, []byte, error) {
			w.plans.Add(1)
			return slices.Clone(groupItems), []byte("run-" + group), nil
		}}
	if os.Getenv("KTAPE_GROUP_LOG") != "" {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("worker", name)
	}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := cl.NewGroupMember(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.m = m
	t.Cleanup(m.Close)
	return w
}

func (w *worker) start(ctx context.Context) *worker {
	go func() {
		defer close(w.done)
		for {
			a, err := w.m.Join(ctx)
			if err != nil {
				w.mu.Lock()
				w.joinErr = err
				w.mu.Unlock()
				return
			}
			if w.ledger != nil {
				w.ledger.take(w.name, a.Items)
			}
			w.mu.Lock()
			w.history = append(w.history, a)
			w.current = &a
			w.mu.Unlock()
			select {
			case <-w.m.Revoked():
			case <-ctx.Done():
				return
			}
			err = w.m.Err()
			if w.ledger != nil {
				w.ledger.release(w.name, a.Items)
			}
			w.mu.Lock()
			w.current = nil
			w.revokes = append(w.revokes, err)
			w.mu.Unlock()
			if errors.Is(err, ErrGroupMemberClosed) || (w.stopOn != nil && w.stopOn(err)) {
				return
			}
		}
	}()
	return w
}

func (w *worker) snapshot() (cur *Assignment, revokes []error, joinErr error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.current != nil {
		c := *w.current
		cur = &c
	}
	return cur, slices.Clone(w.revokes), w.joinErr
}

// settle waits until every worker holds an assignment of one generation,
// together covering want, and nothing changes for a few heartbeats. It
// returns the assignments by worker name and how long it took.
func settle(t *testing.T, want []TopicPartition, ws ...*worker) (map[string]Assignment, time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(15 * time.Second)
	var last string
	var stableSince time.Time
	var prev map[string]Assignment
	for time.Now().Before(deadline) {
		got, why := settled(want, ws)
		if why == "" && prev != nil && sameGeneration(got, prev) {
			if time.Since(stableSince) > 4*testHeartbeat {
				return got, stableSince.Sub(start)
			}
		} else {
			stableSince = time.Now()
		}
		if why == "" {
			prev = got
		} else {
			prev = nil
		}
		last = why
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("group did not settle in 15s: %s", last)
	return nil, 0
}

func sameGeneration(a, b map[string]Assignment) bool {
	for k, v := range a {
		if b[k].Generation != v.Generation || b[k].MemberID != v.MemberID {
			return false
		}
	}
	return len(a) == len(b)
}

func settled(want []TopicPartition, ws []*worker) (map[string]Assignment, string) {
	got := map[string]Assignment{}
	var gen int32 = -2
	owner := map[TopicPartition]string{}
	for _, w := range ws {
		cur, _, joinErr := w.snapshot()
		if joinErr != nil {
			return nil, fmt.Sprintf("%s: join failed: %v", w.name, joinErr)
		}
		if cur == nil {
			return nil, w.name + " holds no assignment"
		}
		if gen != -2 && cur.Generation != gen {
			return nil, fmt.Sprintf("generations differ: %d and %d", gen, cur.Generation)
		}
		gen = cur.Generation
		for _, tp := range cur.Items {
			if o, dup := owner[tp]; dup {
				return nil, fmt.Sprintf("%s held by %s and %s", tp, o, w.name)
			}
			owner[tp] = w.name
		}
		got[w.name] = *cur
	}
	if len(owner) != len(want) {
		return nil, fmt.Sprintf("%d items held, want %d", len(owner), len(want))
	}
	for _, tp := range want {
		if _, ok := owner[tp]; !ok {
			return nil, fmt.Sprintf("%s held by nobody", tp)
		}
	}
	return got, ""
}

// checkShares checks a settled generation: items once each, counts within
// one, the same Shared, Generation and Members everywhere, one leader.
//
// kfake (pinned version) has a bug where the leader is removed (it left,
// or its session expired): completeRebalance makes each member in turn
// the leader, and tells each so, instead of electing one (Kafka picks
// one at once). Every member then plans and sends assignments; kfake uses
// the last one's, so the shares stay consistent. Where a test removes
// members it passes anyLeaders and only at least one leader is required.
func checkShares(t *testing.T, got map[string]Assignment, group string, anyLeaders ...bool) {
	t.Helper()
	lo, hi, leaders := 1<<30, -1, 0
	var gen int32
	for name, a := range got {
		lo, hi = min(lo, len(a.Items)), max(hi, len(a.Items))
		if string(a.Shared) != "run-"+group {
			t.Errorf("%s: shared %q, want %q", name, a.Shared, "run-"+group)
		}
		if a.Members != len(got) {
			t.Errorf("%s: Members %d, want %d", name, a.Members, len(got))
		}
		if !slices.IsSortedFunc(a.Items, compareItems) {
			t.Errorf("%s: items not sorted: %v", name, a.Items)
		}
		if a.Leader {
			leaders++
		}
		gen = a.Generation
	}
	if hi-lo > 1 {
		t.Errorf("unbalanced: %d to %d items", lo, hi)
	}
	if len(anyLeaders) > 0 && anyLeaders[0] && leaders > 1 {
		t.Logf("%d members were told they lead generation %d (kfake's leader election bug)", leaders, gen)
		leaders = 1
	}
	if leaders != 1 {
		t.Errorf("%d leaders in generation %d: %+v", leaders, gen, got)
	}
}

// checkPlans: Plan ran only on members that led some generation, at
// least once per generation they led.
func checkPlans(t *testing.T, ws ...*worker) {
	t.Helper()
	for _, w := range ws {
		w.mu.Lock()
		led := 0
		for _, a := range w.history {
			if a.Leader {
				led++
			}
		}
		w.mu.Unlock()
		if plans := int(w.plans.Load()); plans < led || (led == 0 && plans != 0) {
			t.Errorf("%s: Plan ran %d times; it led %d generations", w.name, plans, led)
		}
	}
}

func groupCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestGroupJoin: three members join one group: every item is assigned
// once, counts differ by at most one, all see the same Shared bytes and
// generation, and only leaders planned. Then a fourth joins: the others
// are revoked with ErrRebalance and, after rejoining, each keeps all its
// items but the one it gives up for balance.
func TestGroupJoin(t *testing.T) {
	kc := startGroupCluster(t)
	cl := newAdminClient(t, kc)
	ctx := groupCtx(t)
	ws := []*worker{newWorker(t, cl, "a", "g"), newWorker(t, cl, "b", "g"), newWorker(t, cl, "c", "g")}
	for _, w := range ws {
		w.start(ctx)
	}
	got, took := settle(t, groupItems, ws...)
	t.Logf("3 members settled in %v, generation %d", took, got["a"].Generation)
	checkShares(t, got, "g")
	checkPlans(t, ws...)
	for name, a := range got {
		if len(a.Items) != 4 {
			t.Errorf("%s: %d items, want 4", name, len(a.Items))
		}
	}
	revokedBefore := map[string]int{}
	for _, w := range ws {
		_, r, _ := w.snapshot()
		revokedBefore[w.name] = len(r)
	}

	d := newWorker(t, cl, "d", "g").start(ctx)
	ws = append(ws, d)
	got2, took := settle(t, groupItems, ws...)
	t.Logf("a 4th member: settled again in %v, generation %d", took, got2["a"].Generation)
	checkShares(t, got2, "g")
	checkPlans(t, ws...)
	for _, w := range ws[:3] {
		_, r, _ := w.snapshot()
		if len(r) <= revokedBefore[w.name] {
			t.Errorf("%s was not revoked when d joined", w.name)
		}
		for _, err := range r[revokedBefore[w.name]:] {
			if !errors.Is(err, ErrRebalance) {
				t.Errorf("%s revoked with %v, want ErrRebalance", w.name, err)
			}
		}
		before, after := got[w.name].Items, got2[w.name].Items
		if len(after) != 3 || !subset(after, before) {
			t.Errorf("%s had %v, now %v: want 3 of its own 4", w.name, before, after)
		}
	}
	if len(got2["d"].Items) != 3 {
		t.Errorf("d got %v", got2["d"].Items)
	}
}

// TestGroupLeave: a member leaves; the others are revoked at once (no
// session timeout to wait for), rejoin, keep theirs and share its items.
func TestGroupLeave(t *testing.T) {
	for _, leader := range []bool{false, true} {
		t.Run(fmt.Sprintf("leader %v", leader), func(t *testing.T) {
			kc := startGroupCluster(t)
			cl := newAdminClient(t, kc)
			ctx := groupCtx(t)
			l := newLedger()
			ws := []*worker{newWorker(t, cl, "a", "g"), newWorker(t, cl, "b", "g"), newWorker(t, cl, "c", "g")}
			for _, w := range ws {
				w.ledger = l
				w.start(ctx)
			}
			got, _ := settle(t, groupItems, ws...)
			i := slices.IndexFunc(ws, func(w *worker) bool { return got[w.name].Leader == leader })
			leaver := ws[i]
			rest := slices.Delete(slices.Clone(ws), i, i+1)
			start := time.Now()
			if err := leaver.m.Leave(ctx); err != nil {
				t.Fatal(err)
			}
			<-leaver.done
			if _, r, _ := leaver.snapshot(); !errors.Is(r[len(r)-1], ErrGroupMemberClosed) {
				t.Errorf("leaver's revocation: %v", r)
			}
			if _, err := leaver.m.Join(ctx); !errors.Is(err, ErrGroupMemberClosed) {
				t.Errorf("Join after Leave: %v", err)
			}
			got2, took := settle(t, groupItems, rest...)
			t.Logf("after a Leave the others settled in %v (%v after the leave)", took, time.Since(start))
			if took > testSession {
				t.Errorf("rebalance after a leave took %v, longer than the session timeout", took)
			}
			checkShares(t, got2, "g", leader)
			l.check(t)
			for _, w := range rest {
				if !subset(got[w.name].Items, got2[w.name].Items) || len(got2[w.name].Items) != 6 {
					t.Errorf("%s had %v, now %v", w.name, got[w.name].Items, got2[w.name].Items)
				}
				_, r, _ := w.snapshot()
				if !errors.Is(r[len(r)-1], ErrRebalance) {
					t.Errorf("%s: revoked with %v", w.name, r[len(r)-1])
				}
			}
		})
	}
}

// TestGroupSessionTimeout: a member that stops heartbeating is removed by
// the coordinator after the session timeout and the others get its items.
// Two ways: the process closes without leaving, and its heartbeats fail
// (kfake fault) while it runs; the latter member must itself give up its
// items after a session timeout without a successful heartbeat (fencing
// by time), and it does so no later than the coordinator removes it.
func TestGroupSessionTimeout(t *testing.T) {
	t.Run("close", func(t *testing.T) {
		kc := startGroupCluster(t)
		cl := newAdminClient(t, kc)
		ctx := groupCtx(t)
		ws := []*worker{newWorker(t, cl, "a", "g"), newWorker(t, cl, "b", "g"), newWorker(t, cl, "c", "g")}
		l := newLedger()
		defer l.check(t)
		for _, w := range ws {
			w.ledger = l
		}
		for _, w := range ws {
			w.start(ctx)
		}
		got, _ := settle(t, groupItems, ws...)
		start := time.Now()
		ws[2].m.Close()
		got2, _ := settle(t, groupItems, ws[:2]...)
		took := time.Since(start)
		t.Logf("closed member's items reassigned %v after Close (session timeout %v)", took, testSession)
		if took < testSession-2*testHeartbeat {
			t.Errorf("reassigned after %v, before the session timeout %v", took, testSession)
		}
		for _, w := range ws[:2] {
			if !subset(got[w.name].Items, got2[w.name].Items) {
				t.Errorf("%s lost items: had %v, now %v", w.name, got[w.name].Items, got2[w.name].Items)
			}
		}
	})
	t.Run("heartbeats fail", func(t *testing.T) {
		kc := startGroupCluster(t)
		cl := newAdminClient(t, kc)
		ctx := groupCtx(t)
		ws := []*worker{newWorker(t, cl, "a", "g"), newWorker(t, cl, "b", "g"), newWorker(t, cl, "c", "g")}
		l := newLedger()
		defer l.check(t)
		for _, w := range ws {
			w.ledger = l
		}
		ws[2].stopOn = func(err error) bool { return !errors.Is(err, ErrRebalance) }
		for _, w := range ws {
			w.start(ctx)
		}
		got, _ := settle(t, groupItems, ws...)
		victim := got["c"].MemberID
		// Every heartbeat of c fails as if the coordinator were away;
		// kfake then neither counts them nor tells c anything else.
		h := kc.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Heartbeat}, Err: kerr.CoordinatorNotAvailable, Count: -1,
			When: func(r kmsg.Request) bool { return r.(*kmsg.HeartbeatRequest).MemberID == victim }})
		defer h.Remove()
		start := time.Now()
		select {
		case <-ws[2].done:
		case <-time.After(10 * testSession):
			t.Fatal("c was never revoked")
		}
		fenced := time.Since(start)
		_, r, _ := ws[2].snapshot()
		err := r[len(r)-1]
		if errors.Is(err, ErrRebalance) || !strings.Contains(err.Error(), "no heartbeat succeeded for the session timeout") ||
			!errors.Is(err, protocol.ErrCoordinatorNotAvailable) {
			t.Fatalf("c revoked with %v; want the session timeout, with the last heartbeat error", err)
		}
		got2, _ := settle(t, groupItems, ws[:2]...)
		took := time.Since(start)
		t.Logf("c gave up its items %v after its heartbeats began failing; the others had them %v after (session timeout %v)", fenced, took, testSession)
		if fenced > took {
			t.Errorf("c gave up its items %v in, after the others got them (%v)", fenced, took)
		}
		if fenced < testSession-2*testHeartbeat || fenced > testSession+2*testHeartbeat {
			t.Errorf("c gave up after %v; want about the session timeout %v", fenced, testSession)
		}
		for _, w := range ws[:2] {
			if !subset(got[w.name].Items, got2[w.name].Items) {
				t.Errorf("%s lost items", w.name)
			}
		}
		// c joins again: the coordinator forgot it, so it comes back as
		// a new member (its old id is the one still faulted).
		ws[2].stopOn, ws[2].done = nil, make(chan struct{})
		ws[2].start(ctx)
		got3, _ := settle(t, groupItems, ws...)
		if got3["c"].MemberID == victim {
			t.Errorf("c rejoined with its old member id")
		}
	})
}

// TestGroupJoinRetries: the coordinator unavailable, moved or
// rebalancing while a member joins is retried; a failing Plan fails the
// leader's Join with an error naming the group, and the leader leaves so
// that the others need not wait for its session to time out.
func TestGroupJoinRetries(t *testing.T) {
	kc := startGroupCluster(t)
	cl := newAdminClient(t, kc)
	ctx := groupCtx(t)
	h := kc.Kfake().Fault(
		kfake.Fault{Keys: []kmsg.Key{kmsg.FindCoordinator}, Err: kerr.CoordinatorNotAvailable, Count: 2},
		kfake.Fault{Keys: []kmsg.Key{kmsg.JoinGroup}, Err: kerr.NotCoordinator, Count: 2},
		kfake.Fault{Keys: []kmsg.Key{kmsg.SyncGroup}, Err: kerr.RebalanceInProgress, Count: 1},
	)
	defer h.Remove()
	w := newWorker(t, cl, "a", "g")
	a, err := w.m.Join(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := h.Hits(); n != 5 {
		t.Errorf("%d faults hit, want 5", n)
	}
	if !slices.Equal(a.Items, groupItems) || !a.Leader || a.Members != 1 {
		t.Errorf("alone after retries: %+v", a)
	}
	w.m.Close()

	planErr := errors.New("listing partitions failed")
	bad := newWorker(t, cl, "bad", "g2", func(c *GroupConfig) {
		c.Plan = func(context.Context) ([]TopicPartition, []byte, error) { return nil, nil, planErr }
	})
	if _, err := bad.m.Join(ctx); !errors.Is(err, planErr) || !strings.Contains(err.Error(), "group g2") {
		t.Fatalf("Join with a failing Plan: %v", err)
	}
	d, err := kadm.NewClient(kc.Client(t)).DescribeGroups(ctx, "g2")
	if err != nil || len(d["g2"].Members) != 0 {
		t.Errorf("the failed leader is still in the group: %+v %v", d["g2"], err)
	}
	bad2 := newWorker(t, cl, "bad2", "g3", func(c *GroupConfig) {
		c.Plan = func(context.Context) ([]TopicPartition, []byte, error) {
			return []TopicPartition{{"t", -1}}, nil, nil
		}
	})
	if _, err := bad2.m.Join(ctx); err == nil || !strings.Contains(err.Error(), "negative partition") {
		t.Fatalf("Join with a Plan giving partition -1: %v", err)
	}
}

// TestGroupStatic: a static member (InstanceID) that closes without
// leaving and is replaced within the session timeout by a process with
// the same InstanceID: the newcomer gets the same items in the same
// generation and the others are not revoked: no rebalance (KIP-345).
//
// Kafka keeps the group stable whatever metadata the newcomer sends, as
// long as the chosen protocol stays; kfake is stricter and rebalances
// unless the metadata bytes are identical to its predecessor's last
// JoinGroup. A fresh process claims nothing; so does a member that joined
// once and was never revoked, which is the case tested here: s joins a
// running group and is replaced.
func TestGroupStatic(t *testing.T) {
	kc := startGroupCluster(t)
	cl := newAdminClient(t, kc)
	ctx := groupCtx(t)
	static := func(c *GroupConfig) { c.InstanceID = "worker-s" }
	a, b := newWorker(t, cl, "a", "g").start(ctx), newWorker(t, cl, "b", "g").start(ctx)
	settle(t, groupItems, a, b)
	s := newWorker(t, cl, "s", "g", static).start(ctx)
	got, _ := settle(t, groupItems, a, b, s)
	_, ra, _ := a.snapshot()
	_, rb, _ := b.snapshot()

	s.m.Close()
	<-s.done
	s2 := newWorker(t, cl, "s", "g", static).start(ctx)
	// Past the old member's session timeout: the coordinator must not
	// have expired it (it was replaced) nor rebalanced.
	time.Sleep(testSession + 4*testHeartbeat)
	got2, _ := settle(t, groupItems, a, b, s2)
	if g1, g2 := got["a"].Generation, got2["a"].Generation; g1 != g2 {
		t.Errorf("generation %d became %d: the group rebalanced", g1, g2)
	}
	if !slices.Equal(got["s"].Items, got2["s"].Items) {
		t.Errorf("s had %v; its replacement got %v", got["s"].Items, got2["s"].Items)
	}
	if got2["s"].MemberID == got["s"].MemberID {
		t.Errorf("replacement kept member id %s; the coordinator gives a new one", got2["s"].MemberID)
	}
	if string(got2["s"].Shared) != "run-g" {
		t.Errorf("replacement's shared bytes: %q", got2["s"].Shared)
	}
	if _, r, _ := a.snapshot(); len(r) != len(ra) {
		t.Errorf("a was revoked: %v", r[len(ra):])
	}
	if _, r, _ := b.snapshot(); len(r) != len(rb) {
		t.Errorf("b was revoked: %v", r[len(rb):])
	}

	// s2 is revoked once (a rebalance, below) and so claims its items
	// when it rejoins; a replacement of it then claims nothing. Kafka
	// keeps the group stable; kfake rebalances. Either way the
	// replacement must get s2's items back: nobody else claims them.
	d := newWorker(t, cl, "d", "g").start(ctx)
	got3, _ := settle(t, groupItems, a, b, s2, d)
	if err := d.m.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	got4, _ := settle(t, groupItems, a, b, s2)
	if !subset(got3["s"].Items, got4["s"].Items) {
		t.Errorf("s2 had %v, now %v", got3["s"].Items, got4["s"].Items)
	}
	_, ra, _ = a.snapshot()
	s2.m.Close()
	<-s2.done
	s3 := newWorker(t, cl, "s", "g", static).start(ctx)
	got5, _ := settle(t, groupItems, a, b, s3)
	if !slices.Equal(got4["s"].Items, got5["s"].Items) {
		t.Errorf("s2 had %v; its replacement got %v", got4["s"].Items, got5["s"].Items)
	}
	_, ra2, _ := a.snapshot()
	t.Logf("a static member whose claims changed was replaced: others revoked %d times (kfake rebalances when the metadata differs; Kafka would not)", len(ra2)-len(ra))
	s2 = s3

	// A static member that leaves goes at once: the others rebalance
	// without waiting for its session timeout.
	start := time.Now()
	if err := s2.m.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	_, took := settle(t, groupItems, a, b)
	t.Logf("static member left; the others settled %v after (%v after the leave)", took, time.Since(start))
	if took > testSession {
		t.Errorf("static leave took %v to rebalance", took)
	}
}

// TestGroupConsumerConflict: a Kafka consumer group (franz-go kgo,
// protocol type "consumer") and ktape members cannot share a group name:
// whichever comes second is refused with INCONSISTENT_GROUP_PROTOCOL and
// the first is not disturbed. kadm's DescribeGroups shows the coordinator
// holding ktape's members with protocol type "ktape", protocol
// "ktape-sticky", and the very assignment bytes the leader sent.
func TestGroupConsumerConflict(t *testing.T) {
	kc := startGroupCluster(t)
	cl := newAdminClient(t, kc)
	ctx := groupCtx(t)

	t.Run("consumer first", func(t *testing.T) {
		kg := kc.Client(t, kgo.ConsumerGroup("taken"), kgo.ConsumeTopics("t"),
			kgo.SessionTimeout(testSession), kgo.HeartbeatInterval(testHeartbeat))
		adm := kadm.NewClient(kc.Client(t))
		deadline := time.Now().Add(10 * time.Second)
		for {
			pctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			kg.PollRecords(pctx, 1) // drives the group join; there are no records
			cancel()
			d, err := adm.DescribeGroups(ctx, "taken")
			if err == nil && d["taken"].State == "Stable" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kgo consumer never got a stable group: %v %v", d, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		w := newWorker(t, cl, "k", "taken")
		_, err := w.m.Join(ctx)
		if !errors.Is(err, errInconsistentGroupProtocol) || !strings.Contains(err.Error(), "group taken") ||
			!strings.Contains(err.Error(), "Kafka consumers") {
			t.Fatalf("ktape member joining a consumer group: %v", err)
		}
		d, err := adm.DescribeGroups(ctx, "taken")
		if err != nil || d["taken"].State != "Stable" || d["taken"].ProtocolType != "consumer" || len(d["taken"].Members) != 1 {
			t.Fatalf("consumer group disturbed: %+v %v", d["taken"], err)
		}
	})

	t.Run("ktape first", func(t *testing.T) {
		ws := []*worker{newWorker(t, cl, "a", "ours"), newWorker(t, cl, "b", "ours")}
		for _, w := range ws {
			w.start(ctx)
		}
		got, _ := settle(t, groupItems, ws...)

		adm := kadm.NewClient(kc.Client(t))
		d, err := adm.DescribeGroups(ctx, "ours")
		if err != nil {
			t.Fatal(err)
		}
		g := d["ours"]
		if g.Err != nil || g.State != "Stable" || g.ProtocolType != "ktape" || g.Protocol != GroupProtocol || len(g.Members) != 2 {
			t.Fatalf("kadm describes %+v", g)
		}
		byID := map[string]Assignment{}
		for _, a := range got {
			byID[a.MemberID] = a
		}
		for _, m := range g.Members {
			a, ok := byID[m.MemberID]
			if !ok {
				t.Fatalf("coordinator's member %s is none of ktape's %v", m.MemberID, slices.Collect(maps.Keys(byID)))
			}
			raw, _ := m.Assigned.Raw()
			want := encodeGroupAssignment(groupAssignment{Members: 2, Shared: []byte("run-ours"), Items: a.Items})
			if string(raw) != string(want) {
				t.Errorf("member %s: coordinator holds assignment %x, ktape got %x", m.MemberID, raw, want)
			}
			meta, _ := m.Join.Raw()
			if _, err := decodeGroupMetadata(meta); err != nil {
				t.Errorf("member %s: metadata the coordinator holds: %v", m.MemberID, err)
			}
		}

		// A kgo consumer of the same group is refused and ktape's
		// members carry on undisturbed.
		var refused atomic.Value
		kg := kc.Client(t, kgo.ConsumerGroup("ours"), kgo.ConsumeTopics("t"),
			kgo.SessionTimeout(testSession), kgo.HeartbeatInterval(testHeartbeat),
			kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { refused.Store("assigned") }))
		deadline := time.Now().Add(10 * time.Second)
		for refused.Load() == nil && time.Now().Before(deadline) {
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fs := kg.PollRecords(pctx, 1)
			cancel()
			fs.EachError(func(_ string, _ int32, err error) {
				if errors.Is(err, kerr.InconsistentGroupProtocol) {
					refused.Store("refused")
				}
			})
		}
		if r := refused.Load(); r != "refused" {
			t.Fatalf("kgo consumer in ktape's group: %v, want INCONSISTENT_GROUP_PROTOCOL", r)
		}
		got2, _ := settle(t, groupItems, ws...)
		if got2["a"].Generation != got["a"].Generation {
			t.Errorf("the consumer's attempt rebalanced ktape's group: generation %d -> %d", got["a"].Generation, got2["a"].Generation)
		}
	})
}

// TestGroupConfig: bad configurations are refused before any request.
func TestGroupConfig(t *testing.T) {
	cl := &Client{}
	plan := func(context.Context) ([]TopicPartition, []byte, error) { return nil, nil, nil }
	for _, tc := range []struct {
		cfg  GroupConfig
		want string
	}{
		{GroupConfig{Plan: plan}, "no group name"},
		{GroupConfig{Group: "g"}, "no Plan"},
		{GroupConfig{Group: "g", Plan: plan, ProtocolType: "consumer"}, "Kafka consumers'"},
		{GroupConfig{Group: "g", Plan: plan, SessionTimeout: time.Second, HeartbeatInterval: time.Second}, "heartbeat interval"},
		{GroupConfig{Group: "g", Plan: plan, RebalanceTimeout: -1}, "rebalance timeout"},
		{GroupConfig{Group: "g", Plan: plan, RebalanceTimeout: 10 * time.Second}, "two owners"},
	} {
		if _, err := cl.NewGroupMember(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	m, err := cl.NewGroupMember(GroupConfig{Group: "g", Plan: plan})
	if err != nil || m.cfg.SessionTimeout != 30*time.Second || m.cfg.HeartbeatInterval != 3*time.Second ||
		m.cfg.RebalanceTimeout != time.Minute || m.cfg.ProtocolType != "ktape" {
		t.Fatalf("defaults: %+v %v", m.cfg, err)
	}
}

// TestGroupSlowPlan: a leader whose Plan takes twice the session timeout
// still completes the generation: members heartbeat while they wait in
// SyncGroup and while the leader plans, so the coordinator does not
// expire them.
func TestGroupSlowPlan(t *testing.T) {
	kc := startGroupCluster(t)
	cl := newAdminClient(t, kc)
	ctx := groupCtx(t)
	slow := func(c *GroupConfig) {
		plan := c.Plan
		c.Plan = func(ctx context.Context) ([]TopicPartition, []byte, error) {
			time.Sleep(2 * testSession)
			return plan(ctx)
		}
	}
	a := newWorker(t, cl, "a", "g", slow).start(ctx)
	settle(t, groupItems, a)
	b := newWorker(t, cl, "b", "g", slow).start(ctx)
	got, _ := settle(t, groupItems, a, b)
	checkShares(t, got, "g")
	for _, w := range []*worker{a, b} {
		_, r, _ := w.snapshot()
		for _, err := range r {
			if !errors.Is(err, ErrRebalance) {
				t.Errorf("%s: revoked with %v", w.name, err)
			}
		}
	}
	if got["a"].Generation != 2 {
		t.Errorf("generation %d, want 2: members were expired while the leader planned", got["a"].Generation)
	}
}

// TestGroupStaticFenced: two processes with the same InstanceID at once:
// the second takes the first's place; the first is told
// FENCED_INSTANCE_ID, gives up its items, and refuses to join again
// (joining would fence the second in turn, back and forth).
func TestGroupStaticFenced(t *testing.T) {
	kc := startGroupCluster(t)
	cl := newAdminClient(t, kc)
	ctx := groupCtx(t)
	static := func(c *GroupConfig) { c.InstanceID = "dup" }
	a := newWorker(t, cl, "a", "g").start(ctx)
	s1 := newWorker(t, cl, "s", "g", static).start(ctx)
	got, _ := settle(t, groupItems, a, s1)
	s2 := newWorker(t, cl, "s", "g", static).start(ctx)
	select {
	case <-s1.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the fenced member is still running")
	}
	_, r, joinErr := s1.snapshot()
	if !errors.Is(r[len(r)-1], errFencedInstanceID) || !errors.Is(joinErr, errFencedInstanceID) ||
		!strings.Contains(joinErr.Error(), `instance id "dup"`) {
		t.Fatalf("fenced member: revoked with %v, join error %v", r[len(r)-1], joinErr)
	}
	got2, _ := settle(t, groupItems, a, s2)
	if !slices.Equal(got["s"].Items, got2["s"].Items) {
		t.Errorf("s1 had %v; s2 got %v", got["s"].Items, got2["s"].Items)
	}
}

// TestGroupSlowRejoin: a revoked member has the rebalance timeout, not
// the session timeout, to save its progress and rejoin: it heartbeats
// meanwhile, so it stays the same member and keeps its claims.
func TestGroupSlowRejoin(t *testing.T) {
	kc := startGroupCluster(t)
	cl := newAdminClient(t, kc)
	ctx := groupCtx(t)
	a := newWorker(t, cl, "a", "g")
	first, err := a.m.Join(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := newWorker(t, cl, "b", "g").start(ctx)
	select {
	case <-a.m.Revoked():
	case <-time.After(5 * time.Second):
		t.Fatal("a was not revoked when b joined")
	}
	time.Sleep(2 * testSession) // saving progress, slowly
	second, err := a.m.Join(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second.MemberID != first.MemberID || second.Generation != first.Generation+1 {
		t.Errorf("a rejoined as %s in generation %d; was %s in %d: it was expired meanwhile",
			second.MemberID, second.Generation, first.MemberID, first.Generation)
	}
	if len(second.Items) != 6 || !subset(second.Items, first.Items) {
		t.Errorf("a had %v, now %v", first.Items, second.Items)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		cur, _, _ := b.snapshot()
		if cur != nil && cur.Generation == second.Generation && len(cur.Items) == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b: %+v", cur)
		}
	}
}

// TestGroupCloseDuringJoin: Close interrupts a Join the coordinator is
// holding (here for a member that does not rejoin), at once.
func TestGroupCloseDuringJoin(t *testing.T) {
	kc := startGroupCluster(t)
	cl := newAdminClient(t, kc)
	ctx := groupCtx(t)
	a := newWorker(t, cl, "a", "g")
	if _, err := a.m.Join(ctx); err != nil {
		t.Fatal(err)
	}
	// a never rejoins: the coordinator holds b's JoinGroup for up to
	// a's rebalance timeout.
	b := newWorker(t, cl, "b", "g")
	errc := make(chan error, 1)
	go func() {
		_, err := b.m.Join(ctx)
		errc <- err
	}()
	<-a.m.Revoked()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	b.m.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrGroupMemberClosed) {
			t.Errorf("Join interrupted by Close: %v", err)
		}
		t.Logf("Join returned %v after Close", time.Since(start))
	case <-time.After(testRebalance / 2):
		t.Fatal("Close did not interrupt Join")
	}
	if !errors.Is(b.m.Err(), ErrGroupMemberClosed) {
		t.Errorf("Err after Close: %v", b.m.Err())
	}
}
