package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ktape/ktape/storage"
)

// A restore keeps its log in the repository it reads, under
// restores/<restore-id>/, so that a restore killed at any moment and run
// again with the same arguments continues exactly where it stopped, and so
// that the source-to-target offsets of a finished restore stay on record:
//
//	restores/<id>/start.json              RestoreStart, written before any record is produced
//	restores/<id>/maps/<topic>/<p>.map    offset map of target partition p, one entry per batch
//	restores/<id>/parts/<topic>/<p>.json  RestorePart: target partition p holds all of its records
//	restores/<id>/done.json               RestoreDone, written last: the restore is complete
//
// Like backups, every object is created once and never overwritten.

// RestoreStart is what a restore records before producing anything.
type RestoreStart struct {
	ID     string `json:"id"`
	Backup string `json:"backup"`
	// TargetCluster is the cluster id of the cluster restored into.
	TargetCluster string             `json:"target_cluster"`
	Started       time.Time          `json:"started"`
	Partitions    []RestorePartition `json:"partitions"`
}

// RestorePartition is one target partition of a restore.
type RestorePartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Start is the target partition's end offset when the restore first
	// started: its first restored record gets this offset, and a resumed
	// restore knows how much it already wrote from the end offset now.
	Start int64 `json:"start"`
	// Sources are the backed-up partitions restored into this one, in
	// the order they are written.
	Sources []SourcePartition `json:"sources"`
}

// SourcePartition names a backed-up partition.
type SourcePartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// RestoreDone is written when a restore has produced everything and the
// target holds exactly it.
type RestoreDone struct {
	ID         string              `json:"id"`
	Finished   time.Time           `json:"finished"`
	Partitions []RestoredPartition `json:"partitions"`
	// Groups are the consumer group offsets translated to the target
	// (target topic names); committed to the target when the restore was
	// asked to.
	Groups []Group `json:"groups,omitempty"`
}

// RestoredPartition is a target partition's final state.
type RestoredPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Start     int64  `json:"start"`
	End       int64  `json:"end"`
	Batches   int64  `json:"batches"`
	// Map is the key of the partition's offset map, SHA256 its digest.
	Map    string `json:"map"`
	SHA256 string `json:"sha256"`
}

// RestorePart records that one target partition of a restore holds all
// of its records: written once the partition's last batch is
// acknowledged, its offset map stored and its end offset checked. A
// restore run in pieces by several processes (each restoring some target
// partitions) is finished from these records alone: the process that
// finishes it reads neither the backup's data nor the offset maps. Its
// contents follow from the restore and the target (no time, no host), so
// two processes recording the same partition write the same bytes.
type RestorePart struct {
	ID        string `json:"id"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Start     int64  `json:"start"`
	End       int64  `json:"end"`
	Batches   int64  `json:"batches"`
	// Map is the key of the partition's offset map, SHA256 its digest.
	Map    string `json:"map"`
	SHA256 string `json:"sha256"`
	// Offsets are the committed offsets of the backup's consumer groups
	// on the partition's source, each with its target offset, ascending;
	// only for a partition restored from one source with its batches as
	// they were (the others have no exact translation).
	Offsets []TranslatedOffset `json:"offsets,omitempty"`
}

// TranslatedOffset is a committed source offset and its target offset.
type TranslatedOffset struct {
	Source int64 `json:"source"`
	Target int64 `json:"target"`
}

// RestorePartKey is where the completion record of target partition
// topic/p of restore id is stored.
func RestorePartKey(id, topic string, p int32) string {
	return restoreKey(id, "parts/"+topic+"/"+strconv.Itoa(int(p))+".json")
}

// PutRestorePart records that a target partition of a restore is
// complete. The same record written again (a partition recorded by two
// processes) is not an error; another one is.
func (r *Repository) PutRestorePart(ctx context.Context, p *RestorePart) error {
	if !restoreIDRe.MatchString(p.ID) {
		return fmt.Errorf("repo: restore id %q is not 32 hex digits", p.ID)
	}
	if err := p.check(); err != nil {
		return fmt.Errorf("repo: %s: %w", RestorePartKey(p.ID, p.Topic, p.Partition), err)
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	key := RestorePartKey(p.ID, p.Topic, p.Partition)
	err = r.putMeta(ctx, key, b)
	if errors.Is(err, storage.ErrConflict) {
		err = fmt.Errorf("repo: %s exists with other contents: %w", key, err)
	}
	return err
}

// RestorePart reads the completion record of target partition topic/p of
// restore id; nil when there is none (the partition is not complete).
func (r *Repository) RestorePart(ctx context.Context, id, topic string, p int32) (*RestorePart, error) {
	var rp RestorePart
	name := "parts/" + topic + "/" + strconv.Itoa(int(p)) + ".json"
	ok, err := r.getRestoreJSON(ctx, id, name, &rp)
	if !ok || err != nil {
		return nil, err
	}
	key := restoreKey(id, name)
	if rp.ID != id || rp.Topic != topic || rp.Partition != p {
		return nil, fmt.Errorf("repo: %s names partition %s/%d of restore %q", key, rp.Topic, rp.Partition, rp.ID)
	}
	if err := rp.check(); err != nil {
		return nil, fmt.Errorf("repo: %s: %w", key, err)
	}
	return &rp, nil
}

// check refuses a record that contradicts itself.
func (p *RestorePart) check() error {
	switch {
	case p.Start < 0 || p.End < p.Start:
		return fmt.Errorf("offsets %d to %d out of order", p.Start, p.End)
	case p.Batches < 0 || p.Batches > p.End-p.Start:
		return fmt.Errorf("%d batches for %d records", p.Batches, p.End-p.Start)
	case p.Map != OffsetMapKey(p.ID, p.Topic, p.Partition):
		return fmt.Errorf("offset map %q is not the partition's (%s)", p.Map, OffsetMapKey(p.ID, p.Topic, p.Partition))
	case len(p.SHA256) != 64 || strings.Trim(p.SHA256, "0123456789abcdef") != "":
		return fmt.Errorf("sha256 %q is not 64 hex digits", p.SHA256)
	}
	for i, o := range p.Offsets {
		if o.Target < p.Start || o.Target > p.End || i > 0 && o.Source <= p.Offsets[i-1].Source {
			return fmt.Errorf("translated offset %d (%d -> %d) out of order or outside the partition's records [%d, %d]", i, o.Source, o.Target, p.Start, p.End)
		}
	}
	return nil
}

// check refuses a record that contradicts itself, which would vouch for
// a target it does not describe: each partition as a part record would
// be checked, and none twice.
func (d *RestoreDone) check() error {
	type partition struct {
		topic string
		p     int32
	}
	seen := map[partition]bool{}
	for _, p := range d.Partitions {
		tp := partition{p.Topic, p.Partition}
		if seen[tp] {
			return fmt.Errorf("partition %s/%d appears twice", p.Topic, p.Partition)
		}
		seen[tp] = true
		rp := RestorePart{ID: d.ID, Topic: p.Topic, Partition: p.Partition, Start: p.Start, End: p.End, Batches: p.Batches, Map: p.Map, SHA256: p.SHA256}
		if err := rp.check(); err != nil {
			return fmt.Errorf("partition %s/%d: %w", p.Topic, p.Partition, err)
		}
	}
	return nil
}

var restoreIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

func restoreKey(id, name string) string { return "restores/" + id + "/" + name }

// OffsetMapKey is where the offset map of target partition topic/p of
// restore id is stored.
func OffsetMapKey(id, topic string, p int32) string {
	return restoreKey(id, "maps/"+topic+"/"+strconv.Itoa(int(p))+".map")
}

// PutRestoreStart records the start of restore s.
func (r *Repository) PutRestoreStart(ctx context.Context, s *RestoreStart) error {
	if !restoreIDRe.MatchString(s.ID) {
		return fmt.Errorf("repo: restore id %q is not 32 hex digits", s.ID)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return r.putMeta(ctx, restoreKey(s.ID, "start.json"), b)
}

// RestoreStart reads the start record of restore id; nil when that
// restore never started.
func (r *Repository) RestoreStart(ctx context.Context, id string) (*RestoreStart, error) {
	var s RestoreStart
	ok, err := r.getRestoreJSON(ctx, id, "start.json", &s)
	if !ok || err != nil {
		return nil, err
	}
	if s.ID != id {
		return nil, fmt.Errorf("repo: %s names restore %q", restoreKey(id, "start.json"), s.ID)
	}
	return &s, nil
}

// PutRestoreDone records that restore d finished.
func (r *Repository) PutRestoreDone(ctx context.Context, d *RestoreDone) error {
	if !restoreIDRe.MatchString(d.ID) {
		return fmt.Errorf("repo: restore id %q is not 32 hex digits", d.ID)
	}
	if err := d.check(); err != nil {
		return fmt.Errorf("repo: %s: %w", restoreKey(d.ID, "done.json"), err)
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	return r.putMeta(ctx, restoreKey(d.ID, "done.json"), b)
}

// RestoreDone reads the record of restore id's end; nil when it has not
// finished.
func (r *Repository) RestoreDone(ctx context.Context, id string) (*RestoreDone, error) {
	var d RestoreDone
	ok, err := r.getRestoreJSON(ctx, id, "done.json", &d)
	if !ok || err != nil {
		return nil, err
	}
	key := restoreKey(id, "done.json")
	if d.ID != id {
		return nil, fmt.Errorf("repo: %s names restore %q", key, d.ID)
	}
	if err := d.check(); err != nil {
		return nil, fmt.Errorf("repo: %s: %w", key, err)
	}
	return &d, nil
}

func (r *Repository) getRestoreJSON(ctx context.Context, id, name string, v any) (bool, error) {
	if !restoreIDRe.MatchString(id) {
		return false, fmt.Errorf("repo: restore id %q is not 32 hex digits", id)
	}
	key := restoreKey(id, name)
	b, err := r.getMeta(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := checkKeys(b, reflect.TypeOf(v)); err != nil {
		return false, fmt.Errorf("repo: %s: %w", key, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("repo: %s: %w", key, err)
	}
	return true, nil
}

// PutOffsetMap stores the offset map of target partition topic/p of
// restore id, and returns its key and SHA-256. A map stored again by a
// resumed restore is the same bytes, which is not an error.
func (r *Repository) PutOffsetMap(ctx context.Context, id, topic string, p int32, m *OffsetMap) (key, sum string, err error) {
	key = OffsetMapKey(id, topic, p)
	data := m.Bytes()
	h := sha256.Sum256(data)
	err = r.putMeta(ctx, key, data)
	if errors.Is(err, storage.ErrConflict) {
		err = fmt.Errorf("repo: %s exists with other contents", key)
	}
	if err != nil {
		return "", "", err
	}
	return key, hex.EncodeToString(h[:]), nil
}

// OffsetMap reads and parses the offset map stored under key.
func (r *Repository) OffsetMap(ctx context.Context, key string) (*OffsetMap, error) {
	b, err := r.getMeta(ctx, key)
	if err != nil {
		return nil, err
	}
	m, err := ParseOffsetMap(b)
	if err != nil {
		return nil, fmt.Errorf("repo: %s: %w", key, err)
	}
	return m, nil
}

// An OffsetMap records where a restore put each batch: per batch written
// to the target, the source offsets of its first and last record, the
// target offset of its first record, and its record count. It is held
// encoded (FORMAT.md, "Restore log"): a few bytes per batch.
//
// A target partition restored from one source partition has a version 1
// map. One restored from several (partitions merged, or records spread
// by key) has a version 2 map, whose entries also name their source: its
// index in the partition's RestorePartition.Sources. The zero OffsetMap is
// an empty version 1 map.
type OffsetMap struct {
	buf []byte
	n   int
	v2  bool
	// where the previous entry ended, for the deltas: in a version 2 map
	// the source offsets are per source (srcEnds)
	srcEnd, tgtEnd int64
	srcEnds        map[int]int64
}

// OffsetMapEntry is one batch of an OffsetMap.
type OffsetMapEntry struct {
	// Source is the index of the batch's source partition in the target
	// partition's RestorePartition.Sources; always 0 in a version 1 map.
	// A batch's records come from one source.
	Source                  int
	SourceFirst, SourceLast int64 // source offsets of the first and last record
	TargetBase              int64 // target offset of the first record
	// Records is the batch's record count: at most the span of its
	// source offsets, less when records of that span went elsewhere
	// (compacted away, outside a window, or spread to another
	// partition by key).
	Records int64
}

var (
	offsetMapMagic   = []byte("KTOM\x01")
	offsetMapMagicV2 = []byte("KTOM\x02")
)

// maxMapSources bounds a version 2 entry's source index (a partition
// count is an int32).
const maxMapSources = 1<<31 - 1

// NewOffsetMap returns an empty map of a target partition restored from
// sources source partitions: version 1 for one, version 2 for more.
func NewOffsetMap(sources int) *OffsetMap {
	return &OffsetMap{v2: sources > 1}
}

// Add appends a batch. Entries must come in offset order on the target
// side, and on the source side per source.
func (m *OffsetMap) Add(e OffsetMapEntry) error {
	if m.buf == nil {
		m.buf = append(m.buf, m.magic()...)
	}
	srcEnd := m.srcEnd
	if m.v2 {
		srcEnd = m.srcEnds[e.Source]
	}
	switch {
	case e.Source < 0 || e.Source > maxMapSources || !m.v2 && e.Source != 0:
		return fmt.Errorf("repo: offset map entry %+v: source index out of range", e)
	case e.SourceFirst < srcEnd || e.SourceLast < e.SourceFirst || e.TargetBase < m.tgtEnd || e.Records <= 0:
		return fmt.Errorf("repo: offset map entry %+v out of order (after source %d, target %d)", e, srcEnd, m.tgtEnd)
	case m.v2 && e.Records-1 > e.SourceLast-e.SourceFirst:
		return fmt.Errorf("repo: offset map entry %+v: more records than source offsets", e)
	}
	if m.v2 {
		m.buf = binary.AppendUvarint(m.buf, uint64(e.Source))
	}
	m.buf = binary.AppendUvarint(m.buf, uint64(e.SourceFirst-srcEnd))
	m.buf = binary.AppendUvarint(m.buf, uint64(e.SourceLast-e.SourceFirst))
	m.buf = binary.AppendUvarint(m.buf, uint64(e.TargetBase-m.tgtEnd))
	m.buf = binary.AppendUvarint(m.buf, uint64(e.Records))
	if m.v2 {
		if m.srcEnds == nil {
			m.srcEnds = map[int]int64{}
		}
		m.srcEnds[e.Source] = e.SourceLast + 1
	} else {
		m.srcEnd = e.SourceLast + 1
	}
	m.tgtEnd = e.TargetBase + e.Records
	m.n++
	return nil
}

func (m *OffsetMap) magic() []byte {
	if m.v2 {
		return offsetMapMagicV2
	}
	return offsetMapMagic
}

// Len is the number of entries.
func (m *OffsetMap) Len() int { return m.n }

// Version is the map's format version: 1 or 2.
func (m *OffsetMap) Version() int {
	if m.v2 {
		return 2
	}
	return 1
}

// Bytes is the encoded map, as stored.
func (m *OffsetMap) Bytes() []byte {
	if m.buf == nil {
		return m.magic()
	}
	return m.buf
}

// ParseOffsetMap checks and parses an encoded map, of either version.
func ParseOffsetMap(b []byte) (*OffsetMap, error) {
	m := &OffsetMap{}
	switch {
	case bytes.HasPrefix(b, offsetMapMagic):
	case bytes.HasPrefix(b, offsetMapMagicV2):
		m.v2 = true
	case bytes.HasPrefix(b, offsetMapMagic[:4]) && len(b) > 4:
		return nil, fmt.Errorf("ktape offset map of version %d, which this version of ktape does not know", b[4])
	default:
		return nil, errors.New("not a ktape offset map (bad magic)")
	}
	err := each(b, m.v2, func(e OffsetMapEntry) error { return m.Add(e) })
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Each calls fn with every entry, in order.
func (m *OffsetMap) Each(fn func(OffsetMapEntry) error) error { return each(m.Bytes(), m.v2, fn) }

func each(b []byte, v2 bool, fn func(OffsetMapEntry) error) error {
	pos := len(offsetMapMagic)
	var srcEnd, tgtEnd int64
	var srcEnds map[int]int64
	fields := 4
	if v2 {
		fields, srcEnds = 5, map[int]int64{}
	}
	for i := 0; pos < len(b); i++ {
		var v [5]uint64
		for j := range fields {
			x, n := binary.Uvarint(b[pos:])
			if n <= 0 || x > 1<<62 {
				return fmt.Errorf("offset map entry %d: bad varint at byte %d", i, pos)
			}
			v[j], pos = x, pos+n
		}
		var e OffsetMapEntry
		if v2 {
			if v[0] > maxMapSources {
				return fmt.Errorf("offset map entry %d: source index %d out of range", i, v[0])
			}
			e.Source = int(v[0])
			srcEnd = srcEnds[e.Source]
			copy(v[:], v[1:])
		}
		e.SourceFirst = srcEnd + int64(v[0])
		e.SourceLast = e.SourceFirst + int64(v[1])
		e.TargetBase, e.Records = tgtEnd+int64(v[2]), int64(v[3])
		if e.Records == 0 {
			return fmt.Errorf("offset map entry %d: no records", i)
		}
		if e.SourceLast < 0 || e.TargetBase+e.Records < 0 {
			return fmt.Errorf("offset map entry %d: offsets out of range", i)
		}
		if v2 {
			srcEnds[e.Source] = e.SourceLast + 1
		} else {
			srcEnd = e.SourceLast + 1
		}
		tgtEnd = e.TargetBase + e.Records
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
