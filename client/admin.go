package client

// admin.go: topic and cluster administration (create, delete and grow
// topics, read and change topic configs, describe the cluster, delete
// records), and the fan-out and retry helpers every admin call shares.
// Group administration is in admin_groups.go.
//
// Every call batches its items per broker, one request per broker, all
// brokers at once, and reports errors per item, in its result; a returned
// error means the whole call failed (the context ended, no broker could be
// reached). DescribeTopicConfigs and FindCoordinators, whose results have
// no room for an item's error, are the exception: their returned error
// joins the items' errors, and their map holds the items that succeeded.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
)

// DefaultAdminTimeout is the TimeoutMs sent with admin requests that make
// the broker wait (CreateTopics, DeleteTopics, CreatePartitions,
// DeleteRecords) when the context has no deadline. With a deadline, what is
// left of it is sent instead.
const DefaultAdminTimeout = 30 * time.Second

// adminMaxAttempts bounds how often an admin call sends a request for an
// item whose answer was a retriable error (leadership or coordinator moved,
// connection lost), as ListOffsets does.
const adminMaxAttempts = 6

// adminParallel bounds the requests one call keeps in flight where the
// protocol needs one request per item (old brokers: FindCoordinator before
// v4, OffsetFetch before v8).
const adminParallel = 8

// Config resource types (Kafka's ConfigResource.Type).
const resourceTopic int8 = 2

// Incremental config operations (KIP-339).
const (
	configOpSet    int8 = 0
	configOpDelete int8 = 1
)

var errNotController = protocol.ErrorForCode(41) // NOT_CONTROLLER

// TopicSpec describes a topic to create.
type TopicSpec struct {
	Name string
	// NumPartitions and ReplicationFactor are sent as given: -1 asks for
	// the broker's default (num.partitions, default.replication.factor),
	// which needs CreateTopics v4 (Kafka 2.4); 0 is refused by the broker.
	NumPartitions     int32
	ReplicationFactor int16
	// Configs are topic-level configs (retention.ms, cleanup.policy...).
	Configs map[string]string
}

// CreateTopics creates topics. The request goes to the controller named by
// the cached metadata, or to any broker when it is unknown or cannot be
// reached (since Kafka 2.8 every broker forwards it, KIP-590); topics
// answered NOT_CONTROLLER are sent again after a metadata refresh. The
// broker is given what is left of ctx's deadline, or DefaultAdminTimeout,
// to finish.
//
// The result has an entry for every topic named: nil when it was created,
// else why not (errors.Is works with protocol's errors, e.g. a KafkaError
// TOPIC_ALREADY_EXISTS). A topic named twice is refused without asking the
// broker. A create that was retried after a lost connection may come back
// TOPIC_ALREADY_EXISTS although the first attempt created it.
func (c *Client) CreateTopics(ctx context.Context, topics []TopicSpec) map[string]error {
	out := map[string]error{}
	count := map[string]int{}
	for _, t := range topics {
		count[t.Name]++
	}
	specs := map[string]TopicSpec{}
	var names []string
	for _, t := range topics {
		if count[t.Name] > 1 {
			out[t.Name] = fmt.Errorf("client: create topic %s: named more than once", t.Name)
			continue
		}
		specs[t.Name] = t
		names = append(names, t.Name)
	}
	res := c.onController(ctx, "create topic", names, func(ctx context.Context, conn *Conn, names []string) (map[string]error, error) {
		return createTopicsOn(ctx, conn, specs, names)
	})
	for n, err := range res {
		out[n] = err
	}
	return out
}

func createTopicsOn(ctx context.Context, conn *Conn, specs map[string]TopicSpec, names []string) (map[string]error, error) {
	v, err := conn.Version(api.CreateTopics)
	if err != nil {
		return nil, err
	}
	timeout := adminTimeout(ctx)
	s := api.CreateTopics.Request
	th := s.Handle("Topics")
	req := protocol.NewRecord(s).SetName("TimeoutMs", durationMs(timeout))
	out := map[string]error{}
	for _, n := range names {
		sp := specs[n]
		if v < 4 && (sp.NumPartitions < 0 || sp.ReplicationFactor < 0) {
			out[n] = fmt.Errorf("broker %s supports CreateTopics up to v%d; broker defaults (-1) need v4 (Kafka 2.4)", conn.Addr(), v)
			continue
		}
		t := req.Append(th).SetName("Name", n).
			SetName("NumPartitions", sp.NumPartitions).
			SetName("ReplicationFactor", sp.ReplicationFactor)
		ch := t.Schema().Handle("Configs")
		for _, k := range sortedKeys(sp.Configs) {
			t.Append(ch).SetName("Name", k).SetName("Value", sp.Configs[k])
		}
	}
	if len(req.Elems(th)) == 0 {
		return out, nil
	}
	rec, err := adminDo(ctx, conn, req, v, timeout)
	if err != nil {
		return nil, err
	}
	for _, t := range rec.Elems(api.CreateTopics.Response.Handle("Topics")) {
		out[t.String(t.Schema().Handle("Name"))] = codeError(t.Int16(t.Schema().Handle("ErrorCode")), t.String(t.Schema().Handle("ErrorMessage")))
	}
	return out, nil
}

// DeleteTopics deletes topics by name. Routing, retries and the result are
// as for CreateTopics: an entry for every topic named, nil when deleted
// (e.g. UNKNOWN_TOPIC_OR_PARTITION when there is no such topic).
func (c *Client) DeleteTopics(ctx context.Context, names []string) map[string]error {
	return c.onController(ctx, "delete topic", dedupe(names), deleteTopicsOn)
}

func deleteTopicsOn(ctx context.Context, conn *Conn, names []string) (map[string]error, error) {
	v, err := conn.Version(api.DeleteTopics)
	if err != nil {
		return nil, err
	}
	timeout := adminTimeout(ctx)
	s := api.DeleteTopics.Request
	req := protocol.NewRecord(s).SetName("TimeoutMs", durationMs(timeout))
	if v >= 6 {
		th := s.Handle("Topics")
		for _, n := range names {
			req.Append(th).SetName("Name", n)
		}
	} else {
		req.SetName("TopicNames", names)
	}
	rec, err := adminDo(ctx, conn, req, v, timeout)
	if err != nil {
		return nil, err
	}
	out := map[string]error{}
	for _, t := range rec.Elems(api.DeleteTopics.Response.Handle("Responses")) {
		ts := t.Schema()
		out[t.String(ts.Handle("Name"))] = codeError(t.Int16(ts.Handle("ErrorCode")), t.String(ts.Handle("ErrorMessage")))
	}
	return out, nil
}

// CreatePartitions raises the partition count of topics to the given
// totals (not increments), letting the controller place the new replicas.
// Routing, retries and the result are as for CreateTopics: an entry for
// every topic named, nil when done (INVALID_PARTITIONS when the count is
// not larger than the current one, UNKNOWN_TOPIC_OR_PARTITION when there is
// no such topic).
func (c *Client) CreatePartitions(ctx context.Context, counts map[string]int32) map[string]error {
	return c.onController(ctx, "create partitions of topic", sortedKeys(counts), func(ctx context.Context, conn *Conn, names []string) (map[string]error, error) {
		v, err := conn.Version(api.CreatePartitions)
		if err != nil {
			return nil, err
		}
		timeout := adminTimeout(ctx)
		s := api.CreatePartitions.Request
		th := s.Handle("Topics")
		req := protocol.NewRecord(s).SetName("TimeoutMs", durationMs(timeout))
		for _, n := range names {
			req.Append(th).SetName("Name", n).SetName("Count", counts[n]) // Assignments stay null
		}
		rec, err := adminDo(ctx, conn, req, v, timeout)
		if err != nil {
			return nil, err
		}
		out := map[string]error{}
		for _, t := range rec.Elems(api.CreatePartitions.Response.Handle("Results")) {
			ts := t.Schema()
			out[t.String(ts.Handle("Name"))] = codeError(t.Int16(ts.Handle("ErrorCode")), t.String(ts.Handle("ErrorMessage")))
		}
		return out, nil
	})
}

// ConfigSource says where a config's value comes from, as DescribeConfigs
// reports it (Kafka's ConfigSource, KIP-226).
type ConfigSource int8

const (
	ConfigSourceUnknown              ConfigSource = 0 // UNKNOWN
	ConfigSourceDynamicTopic         ConfigSource = 1 // DYNAMIC_TOPIC_CONFIG: set on the topic itself
	ConfigSourceDynamicBroker        ConfigSource = 2 // DYNAMIC_BROKER_CONFIG: set dynamically for this broker
	ConfigSourceDynamicDefaultBroker ConfigSource = 3 // DYNAMIC_DEFAULT_BROKER_CONFIG: set dynamically for every broker
	ConfigSourceStaticBroker         ConfigSource = 4 // STATIC_BROKER_CONFIG: the broker's server.properties
	ConfigSourceDefault              ConfigSource = 5 // DEFAULT_CONFIG: Kafka's built-in default
	ConfigSourceDynamicBrokerLogger  ConfigSource = 6 // DYNAMIC_BROKER_LOGGER_CONFIG
	ConfigSourceClientMetrics        ConfigSource = 7 // CLIENT_METRICS_CONFIG (KIP-714)
	ConfigSourceGroup                ConfigSource = 8 // GROUP_CONFIG (KIP-848)
)

func (s ConfigSource) String() string {
	switch s {
	case ConfigSourceUnknown:
		return "UNKNOWN"
	case ConfigSourceDynamicTopic:
		return "DYNAMIC_TOPIC_CONFIG"
	case ConfigSourceDynamicBroker:
		return "DYNAMIC_BROKER_CONFIG"
	case ConfigSourceDynamicDefaultBroker:
		return "DYNAMIC_DEFAULT_BROKER_CONFIG"
	case ConfigSourceStaticBroker:
		return "STATIC_BROKER_CONFIG"
	case ConfigSourceDefault:
		return "DEFAULT_CONFIG"
	case ConfigSourceDynamicBrokerLogger:
		return "DYNAMIC_BROKER_LOGGER_CONFIG"
	case ConfigSourceClientMetrics:
		return "CLIENT_METRICS_CONFIG"
	case ConfigSourceGroup:
		return "GROUP_CONFIG"
	}
	return fmt.Sprintf("CONFIG_SOURCE_%d", int8(s))
}

// ConfigEntry is one config of a topic as the broker describes it.
type ConfigEntry struct {
	Name string
	// Value is nil when the broker sent none: for a sensitive config
	// (whose value is never shown) or one without a value.
	Value     *string
	Source    ConfigSource
	ReadOnly  bool
	Sensitive bool
}

// IsDefault reports whether the value was not set on the topic itself:
// the topic inherits it, from a broker's config (static or dynamic, for
// one broker or all) or from Kafka's built-in default, and follows that
// value if it changes. It is exactly Source != ConfigSourceDynamicTopic; a
// source the broker did not report (Unknown) counts as inherited.
func (e ConfigEntry) IsDefault() bool { return e.Source != ConfigSourceDynamicTopic }

// NonDefaultTopicConfigs returns the configs set on the topic itself
// (Source == ConfigSourceDynamicTopic): what must be given to recreate the
// topic with the same configuration. Entries without a value (sensitive
// ones) are left out, since there is nothing to give.
func NonDefaultTopicConfigs(entries []ConfigEntry) map[string]string {
	out := map[string]string{}
	for _, e := range entries {
		if e.Source == ConfigSourceDynamicTopic && e.Value != nil {
			out[e.Name] = *e.Value
		}
	}
	return out
}

// DescribeTopicConfigs returns every config of each topic, sorted by name,
// without synonyms. One request carries all topics to any broker (each
// knows every topic's configs); a failed connection is retried on another.
//
// Topics the broker answered with an error (e.g.
// UNKNOWN_TOPIC_OR_PARTITION) are missing from the map and each named in the
// returned error, which joins them (errors.Is works through it); the map
// still holds the topics that were described. The map is nil only when the
// whole call failed.
func (c *Client) DescribeTopicConfigs(ctx context.Context, topics []string) (map[string][]ConfigEntry, error) {
	topics = dedupe(topics)
	if len(topics) == 0 {
		return map[string][]ConfigEntry{}, nil
	}
	var out map[string][]ConfigEntry
	var errs []error
	var failed map[string]bool
	err := c.onAnyBroker(ctx, func(conn *Conn) error {
		v, err := conn.Version(api.DescribeConfigs)
		if err != nil {
			return err
		}
		s := api.DescribeConfigs.Request
		rh := s.Handle("Resources")
		req := protocol.NewRecord(s)
		for _, t := range topics {
			req.Append(rh).SetName("ResourceType", resourceTopic).SetName("ResourceName", t) // ConfigurationKeys null: all
		}
		rec, err := adminDo(ctx, conn, req, v, 0)
		if err != nil {
			return err
		}
		out, errs, failed = map[string][]ConfigEntry{}, nil, map[string]bool{}
		for _, r := range rec.Elems(api.DescribeConfigs.Response.Handle("Results")) {
			rs := r.Schema()
			name := r.String(rs.Handle("ResourceName"))
			if err := codeError(r.Int16(rs.Handle("ErrorCode")), r.String(rs.Handle("ErrorMessage"))); err != nil {
				errs = append(errs, fmt.Errorf("client: describe configs of topic %s: %w", name, err))
				failed[name] = true
				continue
			}
			entries := []ConfigEntry{}
			for _, e := range r.Elems(rs.Handle("Configs")) {
				entries = append(entries, configEntry(e, v))
			}
			sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
			out[name] = entries
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok && !failed[t] {
			errs = append(errs, fmt.Errorf("client: describe configs of topic %s: missing from the response", t))
		}
	}
	return out, errors.Join(errs...)
}

func configEntry(e *protocol.Record, v int16) ConfigEntry {
	es := e.Schema()
	ce := ConfigEntry{
		Name:      e.String(es.Handle("Name")),
		ReadOnly:  recBool(e, es.Handle("ReadOnly")),
		Sensitive: recBool(e, es.Handle("IsSensitive")),
	}
	if !ce.Sensitive {
		ce.Value = recNullString(e, es.Handle("Value"))
	}
	if v == 0 {
		// v0 says only whether the value is a default; for a topic a
		// non-default value is one set on the topic.
		ce.Source = ConfigSourceDynamicTopic
		if recBool(e, es.Handle("IsDefault")) {
			ce.Source = ConfigSourceDefault
		}
	} else if src := recInt8(e, es.Handle("ConfigSource")); src >= 0 {
		ce.Source = ConfigSource(src)
	}
	return ce
}

// IncrementalAlterTopicConfigs changes topic configs key by key, leaving
// the others alone (KIP-339): a non-nil value sets the key on the topic, a
// nil value deletes it from the topic so that it falls back to its
// default. One request carries all topics to any broker (brokers forward
// it to the controller); a failed connection is retried on another (the
// operations are idempotent).
//
// The result has an entry for every topic named: nil when its changes were
// applied, else why not (a topic's changes are applied all or none).
func (c *Client) IncrementalAlterTopicConfigs(ctx context.Context, changes map[string]map[string]*string) map[string]error {
	names := sortedKeys(changes)
	out := map[string]error{}
	if len(names) == 0 {
		return out
	}
	err := c.onAnyBroker(ctx, func(conn *Conn) error {
		v, err := conn.Version(api.IncrementalAlterConfigs)
		if err != nil {
			return err
		}
		s := api.IncrementalAlterConfigs.Request
		rh := s.Handle("Resources")
		req := protocol.NewRecord(s)
		for _, n := range names {
			r := req.Append(rh).SetName("ResourceType", resourceTopic).SetName("ResourceName", n)
			ch := r.Schema().Handle("Configs")
			for _, k := range sortedKeys(changes[n]) {
				e := r.Append(ch).SetName("Name", k)
				if val := changes[n][k]; val != nil {
					e.SetName("ConfigOperation", configOpSet).SetName("Value", *val)
				} else {
					e.SetName("ConfigOperation", configOpDelete)
				}
			}
		}
		rec, err := adminDo(ctx, conn, req, v, 0)
		if err != nil {
			return err
		}
		res := map[string]error{}
		for _, r := range rec.Elems(api.IncrementalAlterConfigs.Response.Handle("Responses")) {
			rs := r.Schema()
			res[r.String(rs.Handle("ResourceName"))] = codeError(r.Int16(rs.Handle("ErrorCode")), r.String(rs.Handle("ErrorMessage")))
		}
		for _, n := range names {
			err, ok := res[n]
			switch {
			case !ok:
				out[n] = fmt.Errorf("client: alter configs of topic %s: missing from the response", n)
			case err != nil:
				out[n] = fmt.Errorf("client: alter configs of topic %s: %w", n, err)
			default:
				out[n] = nil
			}
		}
		return nil
	})
	if err != nil {
		for _, n := range names {
			out[n] = fmt.Errorf("client: alter configs of topic %s: %w", n, err)
		}
	}
	return out
}

// ClusterInfo is what DescribeCluster reports.
type ClusterInfo struct {
	ClusterID  string
	Controller int32    // -1 when unknown
	Brokers    []Broker // by ID
}

// DescribeCluster returns the cluster's id, controller and brokers, asking
// any broker with DescribeCluster (KIP-700), or with Metadata when the
// broker does not support DescribeCluster (before Kafka 2.8). A failed
// connection is retried on another broker.
func (c *Client) DescribeCluster(ctx context.Context) (ClusterInfo, error) {
	var info ClusterInfo
	err := c.onAnyBroker(ctx, func(conn *Conn) error {
		v, err := conn.Version(api.DescribeCluster)
		var ve *VersionError
		if errors.As(err, &ve) {
			m, err := c.RefreshMetadata(ctx, []string{})
			if err != nil {
				return err
			}
			info = ClusterInfo{ClusterID: m.ClusterID, Controller: m.Controller}
			for _, b := range m.Brokers {
				info.Brokers = append(info.Brokers, b)
			}
			sort.Slice(info.Brokers, func(i, j int) bool { return info.Brokers[i].ID < info.Brokers[j].ID })
			return nil
		}
		if err != nil {
			return err
		}
		rec, err := adminDo(ctx, conn, protocol.NewRecord(api.DescribeCluster.Request), v, 0) // EndpointType 1: brokers
		if err != nil {
			return err
		}
		rs := api.DescribeCluster.Response
		if err := codeError(rec.Int16(rs.Handle("ErrorCode")), rec.String(rs.Handle("ErrorMessage"))); err != nil {
			return fmt.Errorf("client: describe cluster on %s: %w", conn.Addr(), err)
		}
		info = ClusterInfo{ClusterID: rec.String(rs.Handle("ClusterId")), Controller: rec.Int32(rs.Handle("ControllerId"))}
		for _, b := range rec.Elems(rs.Handle("Brokers")) {
			bs := b.Schema()
			info.Brokers = append(info.Brokers, Broker{ID: b.Int32(bs.Handle("BrokerId")), Host: b.String(bs.Handle("Host")),
				Port: b.Int32(bs.Handle("Port")), Rack: b.String(bs.Handle("Rack"))})
		}
		sort.Slice(info.Brokers, func(i, j int) bool { return info.Brokers[i].ID < info.Brokers[j].ID })
		return nil
	})
	if err != nil {
		return ClusterInfo{}, err
	}
	return info, nil
}

// DeleteRecordsResult is DeleteRecords' answer for one partition.
type DeleteRecordsResult struct {
	LowWatermark int64 // the partition's log start offset afterwards; set only when Err is nil
	Err          error
}

// DeleteRecords deletes every record before the given offset of each
// partition (-1: before the high watermark, i.e. all of them) by moving its
// log start offset. Requests go to each partition's leader, one request per
// leader, all leaders at once; partitions whose leader moved (or that the
// metadata does not show yet) are retried after a metadata refresh and a
// backoff. The result has an entry for every partition given
// (OFFSET_OUT_OF_RANGE for an offset past the high watermark); when ctx
// ends first, the partitions not yet answered carry its error.
func (c *Client) DeleteRecords(ctx context.Context, before map[TopicPartition]int64) map[TopicPartition]DeleteRecordsResult {
	parts := make([]TopicPartition, 0, len(before))
	for tp := range before {
		parts = append(parts, tp)
	}
	out, _ := leaderRounds(ctx, c, "delete records of", parts,
		func(ctx context.Context, conn *Conn, parts []TopicPartition) (map[TopicPartition]DeleteRecordsResult, error) {
			return deleteRecordsOn(ctx, conn, parts, before)
		},
		func(r DeleteRecordsResult) error { return r.Err },
		func(r DeleteRecordsResult, err error) DeleteRecordsResult { r.Err = err; return r })
	return out
}

func deleteRecordsOn(ctx context.Context, conn *Conn, parts []TopicPartition, before map[TopicPartition]int64) (map[TopicPartition]DeleteRecordsResult, error) {
	v, err := conn.Version(api.DeleteRecords)
	if err != nil {
		return nil, err
	}
	timeout := adminTimeout(ctx)
	s := api.DeleteRecords.Request
	req := protocol.NewRecord(s).SetName("TimeoutMs", durationMs(timeout))
	topics := map[string]*protocol.Record{}
	for _, tp := range parts {
		t := topics[tp.Topic]
		if t == nil {
			t = req.Append(s.Handle("Topics")).SetName("Name", tp.Topic)
			topics[tp.Topic] = t
		}
		t.Append(t.Schema().Handle("Partitions")).SetName("PartitionIndex", tp.Partition).SetName("Offset", before[tp])
	}
	rec, err := adminDo(ctx, conn, req, v, timeout)
	if err != nil {
		return nil, err
	}
	out := map[TopicPartition]DeleteRecordsResult{}
	for _, t := range rec.Elems(api.DeleteRecords.Response.Handle("Topics")) {
		name := t.String(t.Schema().Handle("Name"))
		for _, p := range t.Elems(t.Schema().Handle("Partitions")) {
			ps := p.Schema()
			out[TopicPartition{name, p.Int32(ps.Handle("PartitionIndex"))}] = DeleteRecordsResult{
				LowWatermark: p.Int64(ps.Handle("LowWatermark")),
				Err:          protocol.ErrorForCode(p.Int16(ps.Handle("ErrorCode"))),
			}
		}
	}
	return out, nil
}

// leaderRounds sends requests about partitions to their leaders, in rounds:
// one request per leader, all leaders at once (the shape of ListOffsets).
// send answers the partitions it was given; errOf reads an answer's error
// and withErr replaces it (on the zero R for a partition that got no
// answer). Partitions whose answer or request failed with a retriable error
// (leadership moved, topic not yet known, connection lost) go to the next
// round, after a backoff and a metadata refresh, for at most
// adminMaxAttempts rounds. Every error is wrapped with what ("delete
// records of") and the partition. The error returned is ctx's, when it ended first; the
// partitions left then carry it too.
func leaderRounds[R any](ctx context.Context, c *Client, what string, parts []TopicPartition,
	send func(context.Context, *Conn, []TopicPartition) (map[TopicPartition]R, error),
	errOf func(R) error, withErr func(R, error) R) (map[TopicPartition]R, error) {
	out := make(map[TopicPartition]R, len(parts))
	fail := func(err error) R {
		var zero R
		return withErr(zero, err)
	}
	wrap := func(tp TopicPartition, err error) error {
		return fmt.Errorf("client: %s %s: %w", what, tp, err)
	}
	todo := map[TopicPartition]bool{}
	for _, tp := range parts {
		if tp.Partition < 0 {
			out[tp] = fail(wrap(tp, errors.New("negative partition")))
			continue
		}
		todo[tp] = true
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		last := attempt+1 >= adminMaxAttempts
		// One metadata request per round, never one per partition: in
		// the first round for the topics the cache cannot answer, later
		// for every topic still to do.
		refresh := map[TopicPartition]bool{}
		if attempt > 0 {
			if err := c.backoff.Sleep(ctx, attempt-1); err != nil {
				break
			}
			refresh = todo
		} else {
			m := c.Metadata()
			for tp := range todo {
				if _, err := leaderOf(m, tp); err != nil {
					refresh[tp] = true
				}
			}
		}
		if len(refresh) > 0 {
			if _, err := c.RefreshMetadata(ctx, topicsOf(refresh)); err != nil && ctx.Err() != nil {
				break
			} // else the lookups below fail (retriably) on the old snapshot
		}
		m := c.Metadata()
		byLeader := map[int32][]TopicPartition{}
		for tp := range todo {
			leader, err := leaderOf(m, tp)
			if err != nil {
				if last || !IsRetriable(err) {
					out[tp] = fail(wrap(tp, err))
					delete(todo, tp)
				}
				continue
			}
			byLeader[leader] = append(byLeader[leader], tp)
		}
		var mu sync.Mutex
		fanOut(byLeader, func(leader int32, parts []TopicPartition) {
			var res map[TopicPartition]R
			conn, err := c.BrokerConn(ctx, leader)
			if err == nil {
				res, err = send(ctx, conn, parts)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, tp := range parts {
				r, ok := res[tp]
				switch {
				case err != nil && IsRetriable(err) && !last && ctx.Err() == nil:
				case err != nil:
					out[tp] = fail(wrap(tp, err))
					delete(todo, tp)
				case !ok:
					out[tp] = fail(wrap(tp, errors.New("missing from the response")))
					delete(todo, tp)
				case errOf(r) != nil && protocol.IsRetriable(errOf(r)) && !last:
				default:
					if e := errOf(r); e != nil {
						r = withErr(r, wrap(tp, e))
					}
					out[tp] = r
					delete(todo, tp)
				}
			}
		})
		if ctx.Err() != nil {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		for tp := range todo {
			out[tp] = fail(wrap(tp, err))
		}
		return out, err
	}
	return out, nil
}

// leaderOf looks up a partition's leader in m.
func leaderOf(m *Metadata, tp TopicPartition) (int32, error) {
	t := m.Topics[tp.Topic]
	switch {
	case t == nil:
		return -1, protocol.ErrUnknownTopicOrPartition
	case t.Err != nil:
		return -1, t.Err
	}
	p, ok := t.Partition(tp.Partition)
	if !ok {
		return -1, protocol.ErrUnknownTopicOrPartition
	}
	if p.Leader < 0 {
		if p.Err != nil {
			return -1, p.Err
		}
		return -1, protocol.ErrLeaderNotAvailable
	}
	return p.Leader, nil
}

// onController sends a controller request about named items, in rounds:
// send answers each item (nil or its error) or fails as a whole. Items
// answered NOT_CONTROLLER, and all of them when the request failed with a
// retriable error, are sent again after a backoff and a metadata refresh
// (which names the new controller), for at most adminMaxAttempts rounds.
// The result has an entry for every name, errors wrapped with what and
// the name.
func (c *Client) onController(ctx context.Context, what string, names []string,
	send func(context.Context, *Conn, []string) (map[string]error, error)) map[string]error {
	out := make(map[string]error, len(names))
	set := func(n string, err error) {
		if err != nil {
			err = fmt.Errorf("client: %s %s: %w", what, n, err)
		}
		out[n] = err
	}
	todo := names
	for attempt := 0; len(todo) > 0; attempt++ {
		last := attempt+1 >= adminMaxAttempts
		if attempt > 0 {
			if err := c.backoff.Sleep(ctx, attempt-1); err != nil {
				for _, n := range todo {
					set(n, err)
				}
				break
			}
			c.RefreshMetadata(ctx, []string{}) // a failure shows again below
		}
		conn, err := c.controllerConn(ctx)
		var res map[string]error
		if err == nil {
			res, err = send(ctx, conn, todo)
		}
		if err != nil {
			if IsRetriable(err) && !last && ctx.Err() == nil {
				continue
			}
			for _, n := range todo {
				set(n, err)
			}
			break
		}
		var next []string
		for _, n := range todo {
			err, ok := res[n]
			switch {
			case !ok:
				set(n, errors.New("missing from the response"))
			case errors.Is(err, errNotController) && !last:
				next = append(next, n)
			default:
				set(n, err)
			}
		}
		todo = next
	}
	return out
}

// controllerConn returns a connection to the controller the cached
// metadata names, or to any broker when it names none or the controller
// cannot be reached: since KIP-590 (Kafka 2.8) every broker forwards
// controller requests, and with KRaft the "controller" in metadata is a
// broker chosen to receive them.
func (c *Client) controllerConn(ctx context.Context) (*Conn, error) {
	if m := c.Metadata(); m != nil && m.Controller >= 0 {
		if b, ok := m.Brokers[m.Controller]; ok {
			if conn, err := c.ConnTo(ctx, b.Addr()); err == nil {
				return conn, nil
			}
		}
	}
	return c.AnyConn(ctx)
}

// onAnyBroker calls fn with a connection to some broker, and again after a
// backoff, on whichever broker AnyConn picks, while fn fails with a
// retriable error, at most adminMaxAttempts times. fn must set its results
// only when it succeeds.
func (c *Client) onAnyBroker(ctx context.Context, fn func(*Conn) error) error {
	var err error
	for attempt := 0; attempt < adminMaxAttempts; attempt++ {
		if attempt > 0 {
			if serr := c.backoff.Sleep(ctx, attempt-1); serr != nil {
				return withLast(serr, err)
			}
		}
		var conn *Conn
		conn, err = c.AnyConn(ctx)
		if err == nil {
			err = fn(conn)
		}
		if err == nil || !IsRetriable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// fanOut calls fn for every entry of work at once, each in its own
// goroutine, and waits for them all. fn synchronises its own writes.
func fanOut[K comparable, V any](work map[K]V, fn func(K, V)) {
	var wg sync.WaitGroup
	for k, v := range work {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(k, v)
		}()
	}
	wg.Wait()
}

// adminDo sends req at version v and decodes the response into an owned
// Record, releasing the response buffer. extra extends the connection's
// response deadline for requests the broker may hold (its TimeoutMs).
func adminDo(ctx context.Context, conn *Conn, req *protocol.Record, v int16, extra time.Duration) (*protocol.Record, error) {
	resp, err := conn.Do(ctx, req, v, extra)
	if err != nil {
		return nil, err
	}
	defer resp.Release()
	a := req.Schema().API()
	rec, err := protocol.Decode(a.Response, v, resp.Body)
	if err != nil {
		return nil, &ConnError{Addr: conn.Addr(), Err: fmt.Errorf("%s v%d response: %w", a.Name, v, err)}
	}
	return rec, nil
}

// codeError is the error for a response's error code, with the broker's
// message when it sent one.
func codeError(code int16, msg string) error {
	err := protocol.ErrorForCode(code)
	if err == nil || msg == "" {
		return err
	}
	return fmt.Errorf("%w: %s", err, msg)
}

// adminTimeout is how long a broker may take over an admin request: what
// is left of ctx's deadline, else DefaultAdminTimeout.
func adminTimeout(ctx context.Context) time.Duration {
	d := DefaultAdminTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	return min(max(d, time.Millisecond), math.MaxInt32*time.Millisecond)
}

// durationMs is d in whole milliseconds as an int32 wire field.
func durationMs(d time.Duration) int32 { return int32(d / time.Millisecond) }

func recBool(r *protocol.Record, h protocol.Handle) bool { v, _ := r.Get(h).(bool); return v }
func recInt8(r *protocol.Record, h protocol.Handle) int8 { v, _ := r.Get(h).(int8); return v }

// recNullString returns a nullable string field, nil for null.
func recNullString(r *protocol.Record, h protocol.Handle) *string {
	if s, ok := r.Get(h).(string); ok {
		return &s
	}
	return nil
}

func recUUID(r *protocol.Record, h protocol.Handle) [16]byte { v, _ := r.Get(h).([16]byte); return v }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// dedupe returns names without repeats, in first-seen order.
func dedupe(names []string) []string {
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func topicsOf(parts map[TopicPartition]bool) []string {
	seen := map[string]bool{}
	var out []string
	for tp := range parts {
		if !seen[tp.Topic] {
			seen[tp.Topic] = true
			out = append(out, tp.Topic)
		}
	}
	return out
}
