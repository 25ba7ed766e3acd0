package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/protocol"
)

// Admin calls against kfake, each checked through franz-go (kgo and kmsg
// requests) as an independent reference.

var (
	errTopicExists       = protocol.ErrorForCode(36) // TOPIC_ALREADY_EXISTS
	errInvalidPartitions = protocol.ErrorForCode(37) // INVALID_PARTITIONS
)

func adminCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newAdminClient returns a ktape client for kc with a short backoff, so
// that retried errors (unknown topics) do not slow the tests down.
func newAdminClient(t *testing.T, kc *kfaketest.Cluster) *Client {
	t.Helper()
	cl, err := New(adminCtx(t), kc.Addrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl.backoff = Backoff{Base: 2 * time.Millisecond, Max: 20 * time.Millisecond}
	t.Cleanup(cl.Close)
	return cl
}

// countKey counts the requests of one API key that kfake receives, from
// now on, without handling them.
func countKey(kc *kfaketest.Cluster, key int16) *atomic.Int64 {
	var n atomic.Int64
	kf := kc.Kfake()
	kf.ControlKey(key, func(kmsg.Request) (kmsg.Response, error, bool) {
		n.Add(1)
		kf.KeepControl()
		return nil, nil, false
	})
	return &n
}

func ptr[T any](v T) *T { return &v }

// kgoPartitions returns the partition count of topics per franz-go's own
// metadata request (-1 for a topic the broker does not know).
func kgoPartitions(t *testing.T, kg *kgo.Client, topics ...string) map[string]int {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(adminCtx(t), kg)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, rt := range resp.Topics {
		n := len(rt.Partitions)
		if rt.ErrorCode != 0 {
			n = -1
		}
		out[*rt.Topic] = n
	}
	return out
}

func configsByName(entries []ConfigEntry) map[string]ConfigEntry {
	m := map[string]ConfigEntry{}
	for _, e := range entries {
		m[e.Name] = e
	}
	return m
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

func TestAdminTopics(t *testing.T) {
	t.Parallel()
	kc := kfaketest.Start(t, kfaketest.Brokers(3))
	cl := newAdminClient(t, kc)
	kg := kc.Client(t)
	ctx := adminCtx(t)

	creates := countKey(kc, 19)
	res := cl.CreateTopics(ctx, []TopicSpec{
		{Name: "a", NumPartitions: 3, ReplicationFactor: -1, Configs: map[string]string{"retention.ms": "12345"}},
		{Name: "b", NumPartitions: 1, ReplicationFactor: 1},
		{Name: "zero", NumPartitions: 0, ReplicationFactor: 1},
		{Name: "dup", NumPartitions: 1, ReplicationFactor: 1},
		{Name: "dup", NumPartitions: 2, ReplicationFactor: 1},
	})
	if len(res) != 4 || res["a"] != nil || res["b"] != nil {
		t.Fatalf("create: %v", res)
	}
	wantErr(t, "create zero partitions", res["zero"], errInvalidPartitions)
	if res["dup"] == nil || !strings.Contains(res["dup"].Error(), "dup") {
		t.Fatalf("create dup: %v", res["dup"])
	}
	if n := creates.Load(); n != 1 {
		t.Fatalf("%d CreateTopics requests, want 1 (to the controller)", n)
	}
	res = cl.CreateTopics(ctx, []TopicSpec{{Name: "a", NumPartitions: 1, ReplicationFactor: 1}})
	wantErr(t, "create a again", res["a"], errTopicExists)
	if !strings.Contains(res["a"].Error(), "create topic a") {
		t.Fatalf("error without context: %v", res["a"])
	}
	if got := kgoPartitions(t, kg, "a", "b", "zero"); got["a"] != 3 || got["b"] != 1 || got["zero"] != -1 {
		t.Fatalf("kgo sees %v", got)
	}

	// Configs: the one set at creation is the topic's own; the rest are
	// inherited.
	cfgs, err := cl.DescribeTopicConfigs(ctx, []string{"a", "nope"})
	wantErr(t, "describe nope", err, protocol.ErrUnknownTopicOrPartition)
	if !strings.Contains(err.Error(), "nope") || strings.Contains(err.Error(), "topic a:") {
		t.Fatalf("describe error: %v", err)
	}
	if _, ok := cfgs["nope"]; ok || len(cfgs["a"]) == 0 {
		t.Fatalf("describe: %v", cfgs)
	}
	a := configsByName(cfgs["a"])
	if e := a["retention.ms"]; e.Value == nil || *e.Value != "12345" || e.Source != ConfigSourceDynamicTopic || e.IsDefault() {
		t.Fatalf("retention.ms: %+v", e)
	}
	if e := a["cleanup.policy"]; e.Value == nil || *e.Value != "delete" || e.Source != ConfigSourceDefault || !e.IsDefault() {
		t.Fatalf("cleanup.policy: %+v", e)
	}
	if got := NonDefaultTopicConfigs(cfgs["a"]); !maps.Equal(got, map[string]string{"retention.ms": "12345"}) {
		t.Fatalf("non-default configs %v", got)
	}

	// Partitions: more is fine, fewer is not, unknown topics are unknown.
	res = cl.CreatePartitions(ctx, map[string]int32{"a": 5, "b": 0, "nope": 2})
	if len(res) != 3 || res["a"] != nil {
		t.Fatalf("create partitions: %v", res)
	}
	wantErr(t, "shrink b", res["b"], errInvalidPartitions)
	wantErr(t, "grow nope", res["nope"], protocol.ErrUnknownTopicOrPartition)
	if got := kgoPartitions(t, kg, "a", "b"); got["a"] != 5 || got["b"] != 1 {
		t.Fatalf("kgo sees %v", got)
	}

	// Alter: set one key, delete another; both checked through kmsg too.
	res = cl.IncrementalAlterTopicConfigs(ctx, map[string]map[string]*string{
		"a":    {"retention.ms": nil, "segment.ms": ptr("60000")},
		"nope": {"segment.ms": ptr("1")},
	})
	if len(res) != 2 || res["a"] != nil {
		t.Fatalf("alter: %v", res)
	}
	wantErr(t, "alter nope", res["nope"], protocol.ErrUnknownTopicOrPartition)
	cfgs, err = cl.DescribeTopicConfigs(ctx, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	a = configsByName(cfgs["a"])
	if e := a["retention.ms"]; !e.IsDefault() || e.Value == nil || *e.Value == "12345" {
		t.Fatalf("retention.ms after delete: %+v", e)
	}
	if got := NonDefaultTopicConfigs(cfgs["a"]); !maps.Equal(got, map[string]string{"segment.ms": "60000"}) {
		t.Fatalf("non-default configs after alter %v", got)
	}
	dreq := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "a"
	dreq.Resources = append(dreq.Resources, rr)
	dresp, err := dreq.RequestWith(ctx, kg)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range dresp.Resources[0].Configs {
		if e := a[rc.Name]; e.Source != ConfigSource(rc.Source) || (rc.Value == nil) != (e.Value == nil) || (e.Value != nil && *e.Value != *rc.Value) {
			t.Fatalf("%s: ktape %+v, kmsg source %v value %v", rc.Name, e, rc.Source, rc.Value)
		}
	}

	res = cl.DeleteTopics(ctx, []string{"a", "nope", "a"})
	if len(res) != 2 || res["a"] != nil {
		t.Fatalf("delete: %v", res)
	}
	wantErr(t, "delete nope", res["nope"], protocol.ErrUnknownTopicOrPartition)
	if got := kgoPartitions(t, kg, "a", "b"); got["a"] != -1 || got["b"] != 1 {
		t.Fatalf("kgo sees %v after delete", got)
	}
}

// hideAPI makes kfake's ApiVersions answer leave out one API key, as an
// older broker would.
func hideAPI(t *testing.T, kc *kfaketest.Cluster, key int16) {
	t.Helper()
	capVersions(t, kc, map[int16]int16{key: -1})
}

// capVersions makes kfake's ApiVersions answer offer at most the given
// version of each API key (-1: not at all), as an older broker would.
func capVersions(t *testing.T, kc *kfaketest.Cluster, caps map[int16]int16) {
	t.Helper()
	kg := kc.Client(t)
	tmpl, err := kmsg.NewPtrApiVersionsRequest().RequestWith(adminCtx(t), kg)
	if err != nil {
		t.Fatal(err)
	}
	var keys []kmsg.ApiVersionsResponseApiKey
	for _, k := range tmpl.ApiKeys {
		if c, ok := caps[k.ApiKey]; ok {
			if c < 0 {
				continue
			}
			k.MaxVersion = min(k.MaxVersion, c)
		}
		keys = append(keys, k)
	}
	tmpl.ApiKeys = keys
	kf := kc.Kfake()
	kf.ControlKey(18, func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		kf.KeepControl()
		req := kreq.(*kmsg.ApiVersionsRequest)
		if req.Version > tmpl.Version {
			return nil, nil, false
		}
		resp := *tmpl
		resp.Version = req.Version
		return &resp, nil, true
	})
}

func TestAdminDescribeCluster(t *testing.T) {
	t.Parallel()
	for _, fallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("fallback=%v", fallback), func(t *testing.T) {
			t.Parallel()
			kc := kfaketest.Start(t, kfaketest.Brokers(3))
			ref, err := kmsg.NewPtrMetadataRequest().RequestWith(adminCtx(t), kc.Client(t))
			if err != nil {
				t.Fatal(err)
			}
			if fallback {
				hideAPI(t, kc, 60)
			}
			cl := newAdminClient(t, kc)
			described := countKey(kc, 60)
			info, err := cl.DescribeCluster(adminCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if n := described.Load(); (n == 0) != fallback {
				t.Fatalf("%d DescribeCluster requests with fallback %v", n, fallback)
			}
			if info.ClusterID == "" || info.ClusterID != *ref.ClusterID || info.Controller != ref.ControllerID || len(info.Brokers) != len(ref.Brokers) {
				t.Fatalf("ktape %+v, kmsg cluster %v controller %d brokers %d", info, *ref.ClusterID, ref.ControllerID, len(ref.Brokers))
			}
			for _, rb := range ref.Brokers {
				found := false
				for _, b := range info.Brokers {
					found = found || (b.ID == rb.NodeID && b.Host == rb.Host && b.Port == rb.Port)
				}
				if !found {
					t.Fatalf("broker %d %s:%d missing from %+v", rb.NodeID, rb.Host, rb.Port, info.Brokers)
				}
			}
			for i := 1; i < len(info.Brokers); i++ {
				if info.Brokers[i-1].ID >= info.Brokers[i].ID {
					t.Fatalf("brokers not sorted: %+v", info.Brokers)
				}
			}
		})
	}
}

// kgoGroupOffsets is franz-go's view of a group's committed offsets.
func kgoGroupOffsets(t *testing.T, kg *kgo.Client, group string) map[TopicPartition]int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	resp, err := req.RequestWith(adminCtx(t), kg)
	if err != nil {
		t.Fatal(err)
	}
	out := map[TopicPartition]int64{}
	topics := resp.Topics
	code := resp.ErrorCode
	if len(resp.Groups) > 0 {
		code = resp.Groups[0].ErrorCode
		topics = nil
		for _, gt := range resp.Groups[0].Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = gt.Topic
			for _, gp := range gt.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.ErrorCode = gp.Partition, gp.Offset, gp.ErrorCode
				rt.Partitions = append(rt.Partitions, rp)
			}
			topics = append(topics, rt)
		}
	}
	if code != 0 && code != 69 { // GROUP_ID_NOT_FOUND: no offsets
		t.Fatalf("kmsg offset fetch of %s: error %d", group, code)
	}
	for _, rt := range topics {
		for _, rp := range rt.Partitions {
			out[TopicPartition{rt.Topic, rp.Partition}] = rp.Offset
		}
	}
	return out
}

func offsetsOnly(m map[TopicPartition]GroupOffset) map[TopicPartition]int64 {
	out := map[TopicPartition]int64{}
	for tp, o := range m {
		out[tp] = o.Offset
	}
	return out
}

func TestAdminGroups(t *testing.T) {
	t.Parallel()
	kc := kfaketest.Start(t, kfaketest.Brokers(3), kfaketest.Topics(3, "t"))
	cl := newAdminClient(t, kc)
	kg := kc.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := adminCtx(t)

	var recs []*kgo.Record
	for p := int32(0); p < 3; p++ {
		for i := 0; i < 10; i++ {
			recs = append(recs, &kgo.Record{Topic: "t", Partition: p, Value: []byte("v")})
		}
	}
	if err := kg.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// A real consumer group: join, consume everything, commit, stay.
	consumer, err := kgo.NewClient(kgo.SeedBrokers(kc.Addrs()...), kgo.ClientID("ktape-test-consumer"),
		kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	for n := 0; n < len(recs); {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		n += fs.NumRecords()
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	committed := map[TopicPartition]int64{{"t", 0}: 10, {"t", 1}: 10, {"t", 2}: 10}

	lists := countKey(kc, 16)
	groups, err := cl.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0] != (GroupListing{Group: "g", ProtocolType: "consumer", State: "Stable", Type: "classic"}) {
		t.Fatalf("groups %+v", groups)
	}
	if n := lists.Load(); n != 3 {
		t.Fatalf("%d ListGroups requests, want one per broker", n)
	}

	desc, err := cl.DescribeGroups(ctx, []string{"g", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	g := desc["g"]
	if g.Err != nil || g.State != "Stable" || g.ProtocolType != "consumer" || g.Protocol == "" || len(g.Members) != 1 {
		t.Fatalf("describe g: %+v", g)
	}
	if m := g.Members[0]; m.ClientID != "ktape-test-consumer" || m.MemberID == "" || len(m.Assignment) == 0 {
		t.Fatalf("member %+v", m)
	}
	if m := desc["missing"]; m.Err == nil && m.State != "Dead" {
		t.Fatalf("describe missing: %+v", m)
	}

	offs, err := cl.FetchGroupOffsets(ctx, []string{"g", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	if got := offsetsOnly(offs["g"]); !maps.Equal(got, committed) || !maps.Equal(got, kgoGroupOffsets(t, kg, "g")) {
		t.Fatalf("offsets of g: ktape %v, kgo %v, committed %v", got, kgoGroupOffsets(t, kg, "g"), committed)
	}
	if m, ok := offs["missing"]; !ok || len(m) != 0 {
		t.Fatalf("offsets of a missing group: %v (present %v)", m, ok)
	}

	// An admin commit while the group has a member is refused, per
	// partition.
	cres, err := cl.CommitGroupOffsets(ctx, "g", map[TopicPartition]GroupOffset{{"t", 0}: {Offset: 1, LeaderEpoch: -1}})
	if err != nil || len(cres) != 1 || cres[TopicPartition{"t", 0}] == nil {
		t.Fatalf("commit to an active group: %v, %v", cres, err)
	}

	// Once the consumer left, the group is Empty and takes admin commits.
	consumer.Close()
	desc, err = cl.DescribeGroups(ctx, []string{"g"})
	if err != nil || desc["g"].State != "Empty" || len(desc["g"].Members) != 0 {
		t.Fatalf("describe after leave: %+v, %v", desc["g"], err)
	}
	cres, err = cl.CommitGroupOffsets(ctx, "g", map[TopicPartition]GroupOffset{
		{"t", 0}: {Offset: 3, LeaderEpoch: -1, Metadata: "reset"},
		{"t", 1}: {Offset: 5, LeaderEpoch: -1},
	})
	if err != nil || len(cres) != 2 || cres[TopicPartition{"t", 0}] != nil || cres[TopicPartition{"t", 1}] != nil {
		t.Fatalf("commit to an empty group: %v, %v", cres, err)
	}
	committed[TopicPartition{"t", 0}], committed[TopicPartition{"t", 1}] = 3, 5
	offs, err = cl.FetchGroupOffsets(ctx, []string{"g"})
	if err != nil {
		t.Fatal(err)
	}
	if got := offsetsOnly(offs["g"]); !maps.Equal(got, committed) || !maps.Equal(got, kgoGroupOffsets(t, kg, "g")) {
		t.Fatalf("offsets of g after reset: ktape %v, kgo %v, want %v", got, kgoGroupOffsets(t, kg, "g"), committed)
	}
	if o := offs["g"][TopicPartition{"t", 0}]; o.Metadata != "reset" || o.Err != nil {
		t.Fatalf("t/0: %+v", o)
	}

	// Commits create groups; a dozen of them spread over the
	// coordinators, fetched in one call: one OffsetFetch per
	// coordinator, one FindCoordinator for all.
	var names []string
	want := map[string]map[TopicPartition]int64{}
	for i := 0; i < 12; i++ {
		name := fmt.Sprintf("m%d", i)
		names = append(names, name)
		want[name] = map[TopicPartition]int64{{"t", int32(i % 3)}: int64(i)}
		cres, err := cl.CommitGroupOffsets(ctx, name, map[TopicPartition]GroupOffset{{"t", int32(i % 3)}: {Offset: int64(i), LeaderEpoch: -1}})
		if err != nil || cres[TopicPartition{"t", int32(i % 3)}] != nil {
			t.Fatalf("commit %s: %v, %v", name, cres, err)
		}
	}
	fetches, finds := countKey(kc, 9), countKey(kc, 10)
	offs, err = cl.FetchGroupOffsets(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	coords, err := cl.FindCoordinators(ctx, CoordinatorGroup, names)
	if err != nil {
		t.Fatal(err)
	}
	distinct := map[int32]bool{}
	for _, id := range coords {
		distinct[id] = true
	}
	if n := fetches.Load(); n != int64(len(distinct)) {
		t.Fatalf("%d OffsetFetch requests for %d groups on %d coordinators", n, len(names), len(distinct))
	}
	if n := finds.Load(); n != 2 {
		t.Fatalf("%d FindCoordinator requests, want 2 (one per call)", n)
	}
	for _, name := range names {
		if got := offsetsOnly(offs[name]); !maps.Equal(got, want[name]) || !maps.Equal(got, kgoGroupOffsets(t, kg, name)) {
			t.Fatalf("%s: ktape %v, kgo %v, want %v", name, got, kgoGroupOffsets(t, kg, name), want[name])
		}
	}

	// FindCoordinators agrees with franz-go's FindCoordinator.
	freq := kmsg.NewPtrFindCoordinatorRequest()
	freq.CoordinatorKeys = names
	fresp, err := freq.RequestWith(ctx, kg)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range fresp.Coordinators {
		if rc.ErrorCode != 0 || coords[rc.Key] != rc.NodeID {
			t.Fatalf("coordinator of %s: ktape %d, kmsg %d (error %d)", rc.Key, coords[rc.Key], rc.NodeID, rc.ErrorCode)
		}
	}

	// Committing for a topic that does not exist fails for that
	// partition only.
	cres, err = cl.CommitGroupOffsets(ctx, "g", map[TopicPartition]GroupOffset{
		{"nope", 0}: {Offset: 1, LeaderEpoch: -1},
		{"t", 2}:    {Offset: 9, LeaderEpoch: -1},
	})
	if err != nil || cres[TopicPartition{"nope", 0}] == nil || cres[TopicPartition{"t", 2}] != nil {
		t.Fatalf("commit with an unknown topic: %v, %v", cres, err)
	}
	if !strings.Contains(cres[TopicPartition{"nope", 0}].Error(), "group g") {
		t.Fatalf("error without context: %v", cres[TopicPartition{"nope", 0}])
	}

	// Offsets of a topic deleted since are left out: from v10 the broker
	// names topics by an id, which no longer resolves even after one
	// metadata refresh. (kfake drops a deleted topic's commits, so the
	// answer is made up here.)
	if _, err := cl.RefreshMetadata(ctx, []string{"t"}); err != nil {
		t.Fatal(err)
	}
	tid := cl.Metadata().Topics["t"].ID
	kf := kc.Kfake()
	kf.ControlKey(9, func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.OffsetFetchRequest)
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.Version = req.Version
		g := kmsg.NewOffsetFetchResponseGroup()
		g.Group = req.Groups[0].Group
		for i, id := range [][16]byte{{1, 2, 3}, tid} {
			rt := kmsg.NewOffsetFetchResponseGroupTopic()
			rt.TopicID = id
			rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = 0, int64(i+7), -1
			rt.Partitions = append(rt.Partitions, rp)
			g.Topics = append(g.Topics, rt)
		}
		resp.Groups = append(resp.Groups, g)
		return resp, nil, true
	})
	metas := countKey(kc, 3)
	offs, err = cl.FetchGroupOffsets(ctx, []string{"g2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := offsetsOnly(offs["g2"]); !maps.Equal(got, map[TopicPartition]int64{{"t", 0}: 8}) {
		t.Fatalf("g2 with a vanished topic id: %v", offs["g2"])
	}
	if n := metas.Load(); n != 1 {
		t.Fatalf("%d metadata requests to name topic ids, want 1", n)
	}
}

func TestAdminDeleteRecords(t *testing.T) {
	t.Parallel()
	kc := kfaketest.Start(t, kfaketest.Brokers(3), kfaketest.Topics(3, "t"))
	cl := newAdminClient(t, kc)
	kg := kc.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := adminCtx(t)
	var recs []*kgo.Record
	for p := int32(0); p < 3; p++ {
		for i := 0; i < 10; i++ {
			recs = append(recs, &kgo.Record{Topic: "t", Partition: p, Value: []byte("v")})
		}
	}
	if err := kg.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	res := cl.DeleteRecords(ctx, map[TopicPartition]int64{
		{"t", 0}: 4, {"t", 1}: -1, {"t", 2}: 11, {"nope", 0}: 1, {"t", -1}: 0,
	})
	if len(res) != 5 {
		t.Fatalf("results %v", res)
	}
	if r := res[TopicPartition{"t", 0}]; r.Err != nil || r.LowWatermark != 4 {
		t.Fatalf("t/0: %+v", r)
	}
	if r := res[TopicPartition{"t", 1}]; r.Err != nil || r.LowWatermark != 10 {
		t.Fatalf("t/1: %+v", r)
	}
	wantErr(t, "past the end", res[TopicPartition{"t", 2}].Err, protocol.ErrOffsetOutOfRange)
	wantErr(t, "unknown topic", res[TopicPartition{"nope", 0}].Err, protocol.ErrUnknownTopicOrPartition)
	if err := res[TopicPartition{"t", -1}].Err; err == nil || !strings.Contains(err.Error(), "t/-1") {
		t.Fatalf("negative partition: %v", err)
	}

	lo, err := cl.ListOffsets(ctx, ReadUncommitted, map[TopicPartition]int64{{"t", 0}: Earliest, {"t", 1}: Earliest, {"t", 2}: Earliest})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range []int64{4, 10, 0} {
		if r := lo[TopicPartition{"t", int32(p)}]; r.Err != nil || r.Offset != want {
			t.Fatalf("log start of t/%d: %+v, want %d", p, r, want)
		}
	}
	// franz-go reads what is left: 6 + 0 + 10 records.
	if got := kc.ConsumeAll(t, "t"); len(got) != 16 {
		t.Fatalf("kgo reads %d records after the delete, want 16", len(got))
	}
}

// TestAdminFanOut: per-partition admin calls on a 300-partition topic take
// one request per leader, not one per partition.
func TestAdminFanOut(t *testing.T) {
	t.Parallel()
	const parts = 300
	kc := kfaketest.Start(t, kfaketest.Brokers(3), kfaketest.Topics(parts, "big"))
	cl := newAdminClient(t, kc)
	kg := kc.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := adminCtx(t)
	var recs []*kgo.Record
	for p := int32(0); p < parts; p += 10 {
		recs = append(recs, &kgo.Record{Topic: "big", Partition: p, Value: []byte("v")})
	}
	if err := kg.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	deletes, lists, metas := countKey(kc, 21), countKey(kc, 2), countKey(kc, 3)
	before := map[TopicPartition]int64{}
	earliest := map[TopicPartition]int64{}
	for p := int32(0); p < parts; p++ {
		before[TopicPartition{"big", p}] = -1
		earliest[TopicPartition{"big", p}] = Earliest
	}
	res := cl.DeleteRecords(ctx, before)
	lo, err := cl.ListOffsets(ctx, ReadUncommitted, earliest)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != parts || len(lo) != parts {
		t.Fatalf("%d delete results, %d offsets", len(res), len(lo))
	}
	for p := int32(0); p < parts; p++ {
		tp := TopicPartition{"big", p}
		want := int64(0)
		if p%10 == 0 {
			want = 1
		}
		if r := res[tp]; r.Err != nil || r.LowWatermark != want {
			t.Fatalf("delete %s: %+v, want low watermark %d", tp, r, want)
		}
		if r := lo[tp]; r.Err != nil || r.Offset != want {
			t.Fatalf("log start of %s: %+v, want %d", tp, r, want)
		}
	}
	if d, l, m := deletes.Load(), lists.Load(), metas.Load(); d > 3 || l > 3 || m > 1 {
		t.Fatalf("%d DeleteRecords, %d ListOffsets, %d Metadata requests for %d partitions on 3 brokers", d, l, m, parts)
	}
}

// TestAdminOldVersions runs the admin calls against a broker offering only
// older versions: one FindCoordinator and one OffsetFetch per group, topic
// names in OffsetCommit, DescribeConfigs v0's IsDefault, no broker-default
// counts in CreateTopics.
func TestAdminOldVersions(t *testing.T) {
	t.Parallel()
	kc := kfaketest.Start(t, kfaketest.Brokers(3), kfaketest.Topics(3, "t"))
	capVersions(t, kc, map[int16]int16{19: 3, 20: 5, 10: 3, 9: 7, 8: 9, 15: 5, 16: 3, 32: 0})
	cl := newAdminClient(t, kc)
	ctx := adminCtx(t)

	res := cl.CreateTopics(ctx, []TopicSpec{
		{Name: "a", NumPartitions: 2, ReplicationFactor: 1, Configs: map[string]string{"retention.ms": "1000"}},
		{Name: "d", NumPartitions: -1, ReplicationFactor: -1},
	})
	if res["a"] != nil || res["d"] == nil || !strings.Contains(res["d"].Error(), "v4") {
		t.Fatalf("create: %v", res)
	}
	cfgs, err := cl.DescribeTopicConfigs(ctx, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	a := configsByName(cfgs["a"])
	if a["retention.ms"].Source != ConfigSourceDynamicTopic || a["cleanup.policy"].Source != ConfigSourceDefault {
		t.Fatalf("v0 sources: %+v, %+v", a["retention.ms"], a["cleanup.policy"])
	}
	if res := cl.DeleteTopics(ctx, []string{"a"}); res["a"] != nil {
		t.Fatalf("delete: %v", res)
	}

	var names []string
	for i := 0; i < 6; i++ {
		name := fmt.Sprintf("old%d", i)
		names = append(names, name)
		cres, err := cl.CommitGroupOffsets(ctx, name, map[TopicPartition]GroupOffset{{"t", 1}: {Offset: int64(i + 1), LeaderEpoch: -1}})
		if err != nil || cres[TopicPartition{"t", 1}] != nil {
			t.Fatalf("commit %s: %v, %v", name, cres, err)
		}
	}
	fetches, finds := countKey(kc, 9), countKey(kc, 10)
	offs, err := cl.FetchGroupOffsets(ctx, append(names, "missing"))
	if err != nil {
		t.Fatal(err)
	}
	if f, o := finds.Load(), fetches.Load(); f != 7 || o != 7 {
		t.Fatalf("%d FindCoordinator and %d OffsetFetch requests for 7 groups, want one each per group", f, o)
	}
	for i, name := range names {
		if got := offsetsOnly(offs[name]); !maps.Equal(got, map[TopicPartition]int64{{"t", 1}: int64(i + 1)}) {
			t.Fatalf("%s: %v", name, offs[name])
		}
	}
	if len(offs["missing"]) != 0 {
		t.Fatalf("missing: %v", offs["missing"])
	}
	groups, err := cl.ListGroups(ctx)
	if err != nil || len(groups) != len(names) || groups[0].Group != "old0" || groups[0].State != "" {
		t.Fatalf("list: %+v, %v", groups, err)
	}
	desc, err := cl.DescribeGroups(ctx, []string{"old0", "missing"})
	if err != nil || desc["old0"].State != "Empty" || desc["missing"].State != "Dead" || desc["missing"].Err != nil {
		t.Fatalf("describe: %+v, %v", desc, err)
	}
}

// TestAdminRetries: moved controllers, coordinators and leaders are found
// again; an unreachable broker fails ListGroups as a whole.
func TestAdminRetries(t *testing.T) {
	t.Parallel()
	kc := kfaketest.Start(t, kfaketest.Brokers(3), kfaketest.Topics(3, "t"))
	kf := kc.Kfake()
	cl := newAdminClient(t, kc)
	ctx := adminCtx(t)

	// NOT_CONTROLLER once: the topics are sent again.
	creates := countKey(kc, 19)
	kf.ControlKey(19, func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.CreateTopicsRequest)
		resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
		resp.Version = req.Version
		for _, rt := range req.Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic, st.ErrorCode = rt.Topic, 41
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	if res := cl.CreateTopics(ctx, []TopicSpec{{Name: "x", NumPartitions: 1, ReplicationFactor: 1}}); res["x"] != nil {
		t.Fatalf("create after NOT_CONTROLLER: %v", res)
	}
	if n := creates.Load(); n != 2 {
		t.Fatalf("%d CreateTopics requests, want 2", n)
	}

	// NOT_COORDINATOR once, per partition: the commit is sent again.
	commits := countKey(kc, 8)
	kf.ControlKey(8, func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.OffsetCommitRequest)
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		resp.Version = req.Version
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, 16
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	var names []string
	for i := 0; i < 6; i++ {
		name := fmt.Sprintf("r%d", i)
		names = append(names, name)
		cres, err := cl.CommitGroupOffsets(ctx, name, map[TopicPartition]GroupOffset{{"t", 0}: {Offset: int64(i), LeaderEpoch: -1}})
		if err != nil || cres[TopicPartition{"t", 0}] != nil {
			t.Fatalf("commit %s: %v, %v", name, cres, err)
		}
	}
	if n := commits.Load(); n != 7 {
		t.Fatalf("%d OffsetCommit requests for 6 groups, one refused: want 7", n)
	}

	// Coordinators move while the first OffsetFetch is on its way.
	finds := countKey(kc, 10)
	kf.ControlKey(9, func(kmsg.Request) (kmsg.Response, error, bool) {
		kf.RehashCoordinators()
		kf.DropControl() // once: an unhandled control otherwise stays
		return nil, nil, false
	})
	offs, err := cl.FetchGroupOffsets(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		if got := offsetsOnly(offs[name]); !maps.Equal(got, map[TopicPartition]int64{{"t", 0}: int64(i)}) {
			t.Fatalf("%s after a coordinator move: %v", name, offs[name])
		}
	}
	if n := finds.Load(); n < 2 {
		t.Fatalf("%d FindCoordinator requests: coordinators were not looked up again", n)
	}

	// A leader moves after the metadata was cached.
	if _, err := cl.RefreshMetadata(ctx, []string{"t"}); err != nil {
		t.Fatal(err)
	}
	old := kf.LeaderFor("t", 0)
	if err := kf.MoveTopicPartition("t", 0, (old+1)%3); err != nil {
		t.Fatal(err)
	}
	deletes := countKey(kc, 21)
	res := cl.DeleteRecords(ctx, map[TopicPartition]int64{{"t", 0}: 0})
	if r := res[TopicPartition{"t", 0}]; r.Err != nil || r.LowWatermark != 0 {
		t.Fatalf("delete after a leader move: %+v", r)
	}
	if n := deletes.Load(); n != 2 {
		t.Fatalf("%d DeleteRecords requests, want 2", n)
	}

	// One broker drops every ListGroups: no partial list.
	kf.ControlKey(16, func(kmsg.Request) (kmsg.Response, error, bool) {
		kf.KeepControl()
		if kf.CurrentNode() == 1 {
			return nil, errors.New("dropped"), true
		}
		return nil, nil, false
	})
	groups, err := cl.ListGroups(ctx)
	if err == nil || groups != nil || !strings.Contains(err.Error(), "broker 1") {
		t.Fatalf("list with a broker down: %v, %v", groups, err)
	}
}
