package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Manifest describes one backup (FORMAT.md, "Manifest"). A backup is
// complete exactly when its manifest exists; checkpoint manifests of a
// running backup have the same shape.
type Manifest struct {
	Format       string    `json:"format"`
	Version      int       `json:"version"`
	ID           string    `json:"id"`
	Parent       string    `json:"parent,omitempty"`
	Checkpoint   bool      `json:"checkpoint"`
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished"`
	KtapeVersion string    `json:"ktape_version"`
	Source       Source    `json:"source"`
	Mode         string    `json:"mode"`      // snapshot or continuous
	Isolation    string    `json:"isolation"` // read_uncommitted or read_committed
	Topics       []Topic   `json:"topics"`
	Groups       []Group   `json:"groups"`
	// WorkersGroup names the group of workers that shared the run
	// (backup --workers-group); empty for a run of one process.
	WorkersGroup string `json:"workers_group,omitempty"`
}

// Source is the cluster backed up.
type Source struct {
	ClusterID string   `json:"cluster_id"`
	Bootstrap []string `json:"bootstrap"`
}

// Topic is one backed-up topic.
type Topic struct {
	Name              string            `json:"name"`
	ID                string            `json:"id"` // 32 hex digits, zeros when the cluster has no topic ids
	PartitionsCount   int               `json:"partitions_count"`
	ReplicationFactor int               `json:"replication_factor"`
	Configs           map[string]string `json:"configs"` // set on the topic, not defaults
	Partitions        []Partition       `json:"partitions"`
}

// Partition is one partition's range in the backup, [From, To), and what
// holds it.
type Partition struct {
	Partition        int32        `json:"partition"`
	From             int64        `json:"from"`
	To               int64        `json:"to"`
	LogStart         int64        `json:"log_start"`
	HighWatermark    int64        `json:"high_watermark"`
	LastStableOffset int64        `json:"last_stable_offset"`
	Segments         []SegmentRef `json:"segments"`
	Aborted          []Aborted    `json:"aborted"`
	Gaps             []Gap        `json:"gaps"`
}

// SegmentRef names a segment (its .idx has the same key but the
// extension) and summarises it.
type SegmentRef struct {
	Key         string `json:"key"`
	BaseOffset  int64  `json:"base_offset"`
	LastOffset  int64  `json:"last_offset"`
	Batches     int    `json:"batches"`
	StoredBytes uint64 `json:"stored_bytes"`
	SealedBytes uint64 `json:"sealed_bytes,omitempty"` // the age file's length, in an encrypted repository
	DataBytes   uint64 `json:"data_bytes"`
	SHA256      string `json:"sha256"`
	Compression string `json:"compression"`
	FirstTime   int64  `json:"first_time"`
	MaxTime     int64  `json:"max_time"`
}

// Aborted is an aborted transaction the broker reported in the range.
type Aborted struct {
	ProducerID  int64 `json:"producer_id"`
	FirstOffset int64 `json:"first_offset"`
}

// Gap is a range of offsets the log no longer had when it was read.
type Gap struct {
	From   int64  `json:"from"`
	To     int64  `json:"to"`
	Reason string `json:"reason"` // retention or deleted
}

// Group is a consumer group's committed offsets for backed-up topics.
type Group struct {
	Group   string        `json:"group"`
	Offsets []GroupOffset `json:"offsets"`
}

// GroupOffset is one committed offset.
type GroupOffset struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Metadata    string `json:"metadata"`
}

const (
	manifestFormat  = "ktape-backup"
	manifestVersion = 1
)

// NewBackupID names a backup started at t: its UTC time to the second and
// 8 random hex digits, so ids sort by time and never collide.
func NewBackupID(t time.Time) string {
	var r [4]byte
	rand.Read(r[:])
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(r[:])
}

// NextBackupID names a new backup started at t that sorts after every
// backup and run in the repository, so that the newest backup is the
// last id (what `latest`, verify and an incremental backup's parent
// take). NewBackupID alone does not ensure it: ids hold the time to the
// second, and two backups started in the same second were ordered by
// their random digits, so the older one could read as the newest.
func (r *Repository) NextBackupID(ctx context.Context, t time.Time) (string, error) {
	ids, err := r.Backups(ctx)
	if err != nil {
		return "", err
	}
	runs, err := r.Unfinished(ctx)
	if err != nil {
		return "", err
	}
	for _, run := range runs {
		ids = append(ids, run.ID)
	}
	for {
		id := NewBackupID(t)
		last := ""
		for _, o := range ids {
			last = max(last, o)
		}
		if last < id {
			return id, nil
		}
		if last[:16] != id[:16] {
			// The repository holds a backup from a later second (a
			// clock set back): name this one after it.
			if lt, err := time.Parse("20060102T150405Z", last[:16]); err == nil && lt.After(t) {
				t = lt
			}
			t = t.Add(time.Second)
			continue
		}
		// Same second: a suffix above the newest one's, when there is one.
		n, err := strconv.ParseUint(last[17:], 16, 32)
		if err != nil || n >= 0xffff0000 {
			t = t.Add(time.Second)
			continue
		}
		var b [2]byte
		rand.Read(b[:])
		return fmt.Sprintf("%s-%08x", id[:16], n+1+uint64(binary.BigEndian.Uint16(b[:]))), nil
	}
}

// SegmentKey is the object key of a segment of topic (with its id) and
// partition; IndexKey that of its index.
func SegmentKey(topic, topicID string, partition int32, s *Segment) string {
	return fmt.Sprintf("segments/%s/%s/%d/%s.seg", topic, topicID, partition, s.Name())
}

// IndexKey is the key of the index beside the segment at segmentKey.
func IndexKey(segmentKey string) string { return strings.TrimSuffix(segmentKey, ".seg") + ".idx" }

// Ref summarises a segment stored under key, for a manifest.
func (s *Segment) Ref(key string) SegmentRef {
	r := SegmentRef{Key: key, Batches: len(s.Entries), StoredBytes: s.StoredLen, SealedBytes: s.SealedLen, DataBytes: s.DataLen,
		SHA256: hex.EncodeToString(s.SHA256[:]), Compression: s.Framing.String()}
	if n := len(s.Entries); n > 0 {
		r.BaseOffset, r.LastOffset = s.Entries[0].BaseOffset, s.Entries[n-1].LastOffset
		r.FirstTime, r.MaxTime = s.Entries[0].FirstTime, s.Entries[0].MaxTime
		for _, e := range s.Entries {
			r.MaxTime = max(r.MaxTime, e.MaxTime)
		}
	}
	return r
}

// Marshal encodes a manifest, after checking it.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.MarshalIndent(m, "", "  ")
}

// ParseManifest decodes and checks a manifest. A manifest of another
// format version, or with fields this version does not define, is refused:
// a reader must not guess.
func ParseManifest(b []byte) (*Manifest, error) {
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("repo: manifest: %w", err)
	}
	if head.Format != manifestFormat {
		return nil, fmt.Errorf("repo: manifest: format %q, want %q", head.Format, manifestFormat)
	}
	if head.Version > manifestVersion {
		return nil, fmt.Errorf("repo: manifest: format version %d, written by a newer ktape: this one reads version %d; upgrade ktape to read it", head.Version, manifestVersion)
	}
	if head.Version != manifestVersion {
		return nil, fmt.Errorf("repo: manifest: version %d: this ktape reads version %d", head.Version, manifestVersion)
	}
	if err := checkKeys(b, reflect.TypeFor[Manifest]()); err != nil {
		return nil, fmt.Errorf("repo: manifest: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var m Manifest
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("repo: manifest: %w", err)
	}
	if d.More() {
		return nil, fmt.Errorf("repo: manifest: data after the document")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

var (
	backupIDRe   = regexp.MustCompile(`^\d{8}T\d{6}Z-[0-9a-f]{8}$`)
	topicNameRe  = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	hex32Re      = regexp.MustCompile(`^[0-9a-f]{32}$`)
	hex64Re      = regexp.MustCompile(`^[0-9a-f]{64}$`)
	segmentKeyRe = regexp.MustCompile(`^segments/([a-zA-Z0-9._-]+)/([0-9a-f]{32})/(\d+)/(\d{20})-([0-9a-f]{16})\.seg$`)
)

// Validate checks everything a reader relies on: identities, that ranges
// are ordered, and that every segment is named as its content says.
func (m *Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("repo: manifest %s: "+format, append([]any{m.ID}, args...)...)
	}
	switch {
	case m.Format != manifestFormat || m.Version != manifestVersion:
		return bad("format %q version %d, want %q version %d", m.Format, m.Version, manifestFormat, manifestVersion)
	case !backupIDRe.MatchString(m.ID):
		return bad("id is not <yyyymmddThhmmssZ>-<8 hex>")
	case m.Parent != "" && !backupIDRe.MatchString(m.Parent):
		return bad("parent %q is not a backup id", m.Parent)
	case m.Mode != "snapshot" && m.Mode != "continuous":
		return bad("mode %q (snapshot or continuous)", m.Mode)
	case m.Isolation != "read_uncommitted" && m.Isolation != "read_committed":
		return bad("isolation %q (read_uncommitted or read_committed)", m.Isolation)
	case !m.Finished.IsZero() && m.Finished.Before(m.Started):
		return bad("finished before it started")
	}
	topics := map[string]bool{}
	for _, t := range m.Topics {
		if !topicNameRe.MatchString(t.Name) || !hex32Re.MatchString(t.ID) || topics[t.Name] {
			return bad("topic %q (id %q): invalid or repeated", t.Name, t.ID)
		}
		topics[t.Name] = true
		seen := map[int32]bool{}
		for _, p := range t.Partitions {
			where := fmt.Sprintf("%s/%d", t.Name, p.Partition)
			if p.Partition < 0 || int(p.Partition) >= t.PartitionsCount || seen[p.Partition] {
				return bad("%s: partition out of range [0, %d) or repeated", where, t.PartitionsCount)
			}
			seen[p.Partition] = true
			if p.From < 0 || p.To < p.From {
				return bad("%s: range [%d, %d)", where, p.From, p.To)
			}
			if err := p.validateSegments(t, where); err != nil {
				return bad("%v", err)
			}
			prev := p.From
			for _, g := range p.Gaps {
				if g.From < prev || g.To <= g.From || g.To > p.To || (g.Reason != "retention" && g.Reason != "deleted") {
					return bad("%s: gap [%d, %d) %q: outside the range, unordered or of unknown reason", where, g.From, g.To, g.Reason)
				}
				prev = g.To
			}
		}
	}
	for _, g := range m.Groups {
		for _, o := range g.Offsets {
			if !topics[o.Topic] {
				return bad("group %q: offset for topic %q, which is not in the backup", g.Group, o.Topic)
			}
		}
	}
	return nil
}

func (p *Partition) validateSegments(t Topic, where string) error {
	last := int64(-1)
	for i, s := range p.Segments {
		sm := segmentKeyRe.FindStringSubmatch(s.Key)
		switch {
		case sm == nil || sm[1] != t.Name || sm[2] != t.ID || sm[3] != fmt.Sprint(p.Partition):
			return fmt.Errorf("%s: segment key %q is not this partition's", where, s.Key)
		case sm[4] != fmt.Sprintf("%020d", s.BaseOffset) || !hex64Re.MatchString(s.SHA256) || sm[5] != s.SHA256[:16]:
			return fmt.Errorf("%s: segment key %q does not match its base offset %d and SHA-256", where, s.Key, s.BaseOffset)
		case s.LastOffset < s.BaseOffset || s.BaseOffset <= last || s.Batches <= 0:
			return fmt.Errorf("%s: segment %d: offsets %d-%d after %d, %d batches", where, i, s.BaseOffset, s.LastOffset, last, s.Batches)
		case s.Compression != "none" && s.Compression != "zstd" && s.Compression != "lz4":
			return fmt.Errorf("%s: segment %d: compression %q", where, i, s.Compression)
		}
		last = s.LastOffset
	}
	if !sort.SliceIsSorted(p.Aborted, func(i, j int) bool { return p.Aborted[i].FirstOffset < p.Aborted[j].FirstOffset }) {
		return fmt.Errorf("%s: aborted transactions not in offset order", where)
	}
	return nil
}

// Topic returns the backup's topic of that name; nil when there is none
// (or m is nil).
func (m *Manifest) Topic(name string) *Topic {
	if m == nil {
		return nil
	}
	for i := range m.Topics {
		if m.Topics[i].Name == name {
			return &m.Topics[i]
		}
	}
	return nil
}

// Partition returns the topic's partition p; nil when the backup does not
// hold it (or t is nil).
func (t *Topic) Partition(p int32) *Partition {
	if t == nil {
		return nil
	}
	for i := range t.Partitions {
		if t.Partitions[i].Partition == p {
			return &t.Partitions[i]
		}
	}
	return nil
}
