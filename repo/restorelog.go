package repo

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
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
	return r.st.Create(ctx, restoreKey(s.ID, "start.json"), b)
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
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	return r.st.Create(ctx, restoreKey(d.ID, "done.json"), b)
}

// RestoreDone reads the record of restore id's end; nil when it has not
// finished.
func (r *Repository) RestoreDone(ctx context.Context, id string) (*RestoreDone, error) {
	var d RestoreDone
	ok, err := r.getRestoreJSON(ctx, id, "done.json", &d)
	if !ok || err != nil {
		return nil, err
	}
	return &d, nil
}

func (r *Repository) getRestoreJSON(ctx context.Context, id, name string, v any) (bool, error) {
	if !restoreIDRe.MatchString(id) {
		return false, fmt.Errorf("repo: restore id %q is not 32 hex digits", id)
	}
	key := restoreKey(id, name)
	b, err := r.st.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
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
	err = r.st.Create(ctx, key, data)
	if errors.Is(err, storage.ErrConflict) {
		var old []byte
		if old, err = r.st.Get(ctx, key); err == nil && sha256.Sum256(old) != h {
			err = fmt.Errorf("repo: %s exists with other contents", key)
		}
	}
	if err != nil {
		return "", "", err
	}
	return key, hex.EncodeToString(h[:]), nil
}

// OffsetMap reads and parses the offset map stored under key.
func (r *Repository) OffsetMap(ctx context.Context, key string) (*OffsetMap, error) {
	b, err := r.st.Get(ctx, key)
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
type OffsetMap struct {
	buf []byte
	n   int
	// where the previous entry ended, for the deltas
	srcEnd, tgtEnd int64
}

// OffsetMapEntry is one batch of an OffsetMap.
type OffsetMapEntry struct {
	SourceFirst, SourceLast int64 // source offsets of the first and last record
	TargetBase              int64 // target offset of the first record
	Records                 int64
}

var offsetMapMagic = []byte("KTOM\x01")

// Add appends a batch. Entries must come in offset order on both sides.
func (m *OffsetMap) Add(e OffsetMapEntry) error {
	if m.buf == nil {
		m.buf = append(m.buf, offsetMapMagic...)
	}
	if e.SourceFirst < m.srcEnd || e.SourceLast < e.SourceFirst || e.TargetBase < m.tgtEnd || e.Records <= 0 {
		return fmt.Errorf("repo: offset map entry %+v out of order (after source %d, target %d)", e, m.srcEnd, m.tgtEnd)
	}
	m.buf = binary.AppendUvarint(m.buf, uint64(e.SourceFirst-m.srcEnd))
	m.buf = binary.AppendUvarint(m.buf, uint64(e.SourceLast-e.SourceFirst))
	m.buf = binary.AppendUvarint(m.buf, uint64(e.TargetBase-m.tgtEnd))
	m.buf = binary.AppendUvarint(m.buf, uint64(e.Records))
	m.srcEnd, m.tgtEnd = e.SourceLast+1, e.TargetBase+e.Records
	m.n++
	return nil
}

// Len is the number of entries.
func (m *OffsetMap) Len() int { return m.n }

// Bytes is the encoded map, as stored.
func (m *OffsetMap) Bytes() []byte {
	if m.buf == nil {
		return offsetMapMagic
	}
	return m.buf
}

// ParseOffsetMap checks and parses an encoded map.
func ParseOffsetMap(b []byte) (*OffsetMap, error) {
	if len(b) < len(offsetMapMagic) || string(b[:len(offsetMapMagic)]) != string(offsetMapMagic) {
		return nil, errors.New("not a ktape offset map (bad magic)")
	}
	m := &OffsetMap{}
	err := each(b, func(e OffsetMapEntry) error { return m.Add(e) })
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Each calls fn with every entry, in order.
func (m *OffsetMap) Each(fn func(OffsetMapEntry) error) error { return each(m.Bytes(), fn) }

func each(b []byte, fn func(OffsetMapEntry) error) error {
	pos := len(offsetMapMagic)
	var srcEnd, tgtEnd int64
	for i := 0; pos < len(b); i++ {
		var v [4]uint64
		for j := range v {
			x, n := binary.Uvarint(b[pos:])
			if n <= 0 || x > 1<<62 {
				return fmt.Errorf("offset map entry %d: bad varint at byte %d", i, pos)
			}
			v[j], pos = x, pos+n
		}
		e := OffsetMapEntry{SourceFirst: srcEnd + int64(v[0])}
		e.SourceLast = e.SourceFirst + int64(v[1])
		e.TargetBase, e.Records = tgtEnd+int64(v[2]), int64(v[3])
		if e.Records == 0 {
			return fmt.Errorf("offset map entry %d: no records", i)
		}
		srcEnd, tgtEnd = e.SourceLast+1, e.TargetBase+e.Records
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
