package client

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupChurn: members come and go at random (dynamic and static
// joins, leaves, closes without leaving, static restarts, heartbeats cut
// off by a fault) and after each event the group must settle with every
// item held exactly once, counts within one, and, at every moment in
// between, no item held by two members at once.
//
// The CI form runs KTAPE_GROUP_CHURN events (default 8) from seed
// KTAPE_GROUP_CHURN_SEED (default 1); make reliability-group runs 300.
func TestGroupChurn(t *testing.T) {
	events, seed := 8, uint64(1)
	if v := os.Getenv("KTAPE_GROUP_CHURN"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KTAPE_GROUP_CHURN=%q: want a positive count", v)
		}
		events = n
	}
	if v := os.Getenv("KTAPE_GROUP_CHURN_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("KTAPE_GROUP_CHURN_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("%d events, seed %d", events, seed)
	r := rand.New(rand.NewPCG(seed, seed))

	kc := startGroupCluster(t)
	cl := newAdminClient(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(events)*20*time.Second)
	defer cancel()
	l := newLedger()
	next := 0
	add := func(instance string) *worker {
		next++
		var opts []groupOpt
		if instance != "" {
			opts = append(opts, func(c *GroupConfig) { c.InstanceID = instance })
		}
		w := newWorker(t, cl, fmt.Sprintf("w%d", next), "g", opts...)
		w.ledger = l
		return w.start(ctx)
	}
	instanceOf := map[*worker]string{}
	var live []*worker
	for range 3 {
		live = append(live, add(""))
	}
	settle(t, groupItems, live...)

	took := map[string][]time.Duration{}
	statics := 0
	for i := range events {
		kinds := []string{"join", "join-static", "leave", "close", "restart-static", "fault"}
		kind := kinds[r.IntN(len(kinds))]
		if len(live) >= 6 && strings.HasPrefix(kind, "join") {
			kind = "leave"
		}
		if len(live) <= 2 && (kind == "leave" || kind == "close" || kind == "fault") {
			kind = "join"
		}
		var static []*worker
		for _, w := range live {
			if instanceOf[w] != "" {
				static = append(static, w)
			}
		}
		if kind == "restart-static" && len(static) == 0 {
			kind = "join-static"
		}
		pick := r.IntN(len(live))
		victim := live[pick]
		t.Logf("event %d: %s (%s of %d)", i, kind, victim.name, len(live))
		start := time.Now()
		switch kind {
		case "join":
			live = append(live, add(""))
		case "join-static":
			statics++
			id := fmt.Sprintf("static-%d", statics)
			w := add(id)
			instanceOf[w] = id
			live = append(live, w)
		case "leave":
			if err := victim.m.Leave(ctx); err != nil {
				t.Fatalf("event %d: leave: %v", i, err)
			}
			live = slices.Delete(live, pick, pick+1)
		case "close":
			victim.m.Close()
			live = slices.Delete(live, pick, pick+1)
		case "restart-static":
			old := static[r.IntN(len(static))]
			old.m.Close()
			<-old.done
			w := add(instanceOf[old])
			instanceOf[w] = instanceOf[old]
			live[slices.Index(live, old)] = w
		case "fault":
			cur, _, _ := victim.snapshot()
			if cur == nil {
				t.Fatalf("event %d: %s holds nothing after settling", i, victim.name)
			}
			id := cur.MemberID
			h := kc.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Heartbeat}, Err: kerr.CoordinatorNotAvailable, Count: -1,
				When: func(r kmsg.Request) bool { return r.(*kmsg.HeartbeatRequest).MemberID == id }})
			defer h.Remove()
			// The victim gives up its items after a session timeout and
			// rejoins as a new member.
			for deadline := time.Now().Add(10 * testSession); ; time.Sleep(5 * time.Millisecond) {
				if cur, _, _ := victim.snapshot(); cur == nil || cur.MemberID != id {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("event %d: %s kept its items with failing heartbeats", i, victim.name)
				}
			}
		}
		settleStart := time.Now()
		got, settled := settle(t, groupItems, live...)
		d := settleStart.Sub(start) + settled
		took[kind] = append(took[kind], d)
		checkShares(t, got, "g", true)
		l.check(t)
		if t.Failed() {
			t.Fatalf("event %d (%s of %s) broke the group", i, kind, victim.name)
		}
	}
	for _, kind := range slices.Sorted(maps.Keys(took)) {
		ds := took[kind]
		var sum, worst time.Duration
		for _, d := range ds {
			sum += d
			worst = max(worst, d)
		}
		t.Logf("%-14s %3d times: settled after mean %v, max %v", kind, len(ds),
			(sum / time.Duration(len(ds))).Round(time.Millisecond), worst.Round(time.Millisecond))
	}
}
