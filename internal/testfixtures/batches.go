// Package testfixtures loads the committed record-batch fixtures in
// testdata/batches: raw record batches (and legacy message sets) written by
// other Kafka clients, each with the records its writer sent.
//
// A fixture is a pair of files per partition and one description:
//
//	testdata/batches/<name>.p<partition>.bin   raw bytes, exactly as a broker returned them in a Fetch response
//	testdata/batches/<name>.json               expectations: per partition, per batch, per record
//
// testdata/batches/gen.sh regenerates them and testdata/batches/README.md
// describes every fixture and the JSON format. Tests of ktape's record
// package use Load to check that ktape reads every fixture exactly as its
// writer meant it; this package's own test checks the fixtures against
// franz-go's decoders and an independent decoder written in the test.
package testfixtures

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Fixture is one fixture: one topic (or, for legacy message sets, one
// writer-less log) with one or more partitions.
type Fixture struct {
	// Name is the fixture's name, the stem of its files.
	Name string `json:"name"`
	// Topic is the topic the batches were produced to (empty for legacy
	// message sets, which were built without a broker).
	Topic string `json:"topic,omitempty"`
	// Writer names the client (and version) that wrote the batches and
	// how it was configured.
	Writer string `json:"writer"`
	// Magic is the message format of every batch: 2 for record batches,
	// 0 or 1 for legacy message sets.
	Magic int8 `json:"magic"`
	// Notes says anything a reader of the fixture should know.
	Notes string `json:"notes,omitempty"`
	// Partitions are the fixture's partitions in ascending order.
	Partitions []Partition `json:"partitions"`
}

// Partition is one partition of a fixture: its raw bytes and what they hold.
type Partition struct {
	Partition int32 `json:"partition"`
	// File is the name of the raw file, relative to the fixture directory.
	File string `json:"file"`
	// Size and SHA256 describe File; Load checks them.
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
	// HighWatermark, LastStableOffset and LogStartOffset are as the
	// broker reported them in the Fetch response (for legacy message
	// sets: last offset + 1, last offset + 1 and 0).
	HighWatermark    int64 `json:"high_watermark"`
	LastStableOffset int64 `json:"last_stable_offset"`
	LogStartOffset   int64 `json:"log_start_offset"`
	// AbortedTransactions are as the broker reported them to a
	// READ_COMMITTED Fetch from offset 0 (empty for legacy).
	AbortedTransactions []AbortedTransaction `json:"aborted_transactions"`
	// Batches are every batch in Raw, in order. For legacy message sets a
	// "batch" is one top-level log entry: either one uncompressed message
	// or one compressed wrapper message with its inner messages.
	Batches []Batch `json:"batches"`

	// Raw is the content of File (not part of the JSON).
	Raw []byte `json:"-"`
}

// AbortedTransaction is one entry of a Fetch response's AbortedTransactions.
type AbortedTransaction struct {
	ProducerID  int64 `json:"producer_id"`
	FirstOffset int64 `json:"first_offset"`
}

// Codec names used in Batch.Codec, indexed by the compression bits of the
// attributes.
var Codecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// Batch is one record batch (magic 2) or one top-level legacy log entry.
type Batch struct {
	// Position is the batch's byte offset in Partition.Raw; Size is its
	// length including the 12-byte offset and length prefix.
	Position int `json:"position"`
	Size     int `json:"size"`
	// BaseOffset and LastOffset are the offsets of the batch's first and
	// last record. For magic 2 the batch stores BaseOffset and
	// LastOffset-BaseOffset (lastOffsetDelta); a legacy entry stores
	// LastOffset in its offset field (of a compressed wrapper: the last
	// inner message's offset).
	BaseOffset int64 `json:"base_offset"`
	LastOffset int64 `json:"last_offset"`
	// PartitionLeaderEpoch is -1 for legacy message sets.
	PartitionLeaderEpoch int32 `json:"partition_leader_epoch"`
	Magic                int8  `json:"magic"`
	// CRC is the batch's stored CRC: CRC-32C of bytes [21, end) for
	// magic 2, IEEE CRC-32 of the (outer) message from its magic byte on
	// for legacy messages.
	CRC uint32 `json:"crc"`
	// Codec is one of Codecs.
	Codec string `json:"codec"`
	// TimestampType is "create" or "log_append".
	TimestampType string `json:"timestamp_type"`
	Transactional bool   `json:"transactional"`
	Control       bool   `json:"control"`
	// ProducerID, ProducerEpoch and BaseSequence are -1 for legacy
	// message sets (as Kafka reports them).
	ProducerID    int64 `json:"producer_id"`
	ProducerEpoch int16 `json:"producer_epoch"`
	BaseSequence  int32 `json:"base_sequence"`
	// RecordCount is the batch's stored record count (magic 2) or the
	// number of messages in the entry (legacy).
	RecordCount int32 `json:"record_count"`
	// FirstTimestamp and MaxTimestamp are the batch header's timestamps
	// (magic 2); for magic 1 the first message's and the (wrapper)
	// message's timestamp; -1 for magic 0.
	FirstTimestamp int64 `json:"first_timestamp"`
	MaxTimestamp   int64 `json:"max_timestamp"`
	// ControlType is the marker of a control batch: "abort", "commit",
	// or "type-N" for other control record types.
	ControlType string `json:"control_type,omitempty"`
	// TxnResult says how the transaction a transactional data batch
	// belongs to ended in this partition: "committed", "aborted" or
	// "open".
	TxnResult string `json:"txn_result,omitempty"`
	// Records are the batch's records, control records included.
	Records []Record `json:"records"`
}

// Record is one record as its writer sent it. Key, Value and header values
// are nil for null and non-nil (possibly empty) otherwise; in the JSON they
// are base64 strings or null.
type Record struct {
	Offset int64 `json:"offset"`
	// Timestamp is in milliseconds since the epoch (-1 for magic 0).
	Timestamp int64    `json:"timestamp"`
	Key       []byte   `json:"key"`
	Value     []byte   `json:"value"`
	Headers   []Header `json:"headers"`
}

// Header is one record header.
type Header struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// Dir returns the directory holding the fixtures (testdata/batches of the
// module), found relative to this source file.
func Dir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("testfixtures: cannot locate source file")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "batches")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("testfixtures: fixture directory: %w", err)
	}
	return dir, nil
}

// Names returns the names of all fixtures, sorted.
func Names() ([]string, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	ms, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ms))
	for _, m := range ms {
		names = append(names, strings.TrimSuffix(filepath.Base(m), ".json"))
	}
	sort.Strings(names)
	return names, nil
}

// Load reads the fixture called name: its JSON description and the raw
// bytes of each partition, checking each file's size and SHA-256 against
// the description.
func Load(name string) (Fixture, error) {
	dir, err := Dir()
	if err != nil {
		return Fixture{}, err
	}
	return LoadFrom(dir, name)
}

// LoadFrom is Load from another directory.
func LoadFrom(dir, name string) (Fixture, error) {
	var f Fixture
	js, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return f, fmt.Errorf("testfixtures: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return f, fmt.Errorf("testfixtures: %s.json: %w", name, err)
	}
	if f.Name != name {
		return f, fmt.Errorf("testfixtures: %s.json names itself %q", name, f.Name)
	}
	for i := range f.Partitions {
		p := &f.Partitions[i]
		if p.File != filepath.Base(p.File) {
			return f, fmt.Errorf("testfixtures: %s.json: partition %d: file %q is not a plain name", name, p.Partition, p.File)
		}
		raw, err := os.ReadFile(filepath.Join(dir, p.File))
		if err != nil {
			return f, fmt.Errorf("testfixtures: %s: partition %d: %w", name, p.Partition, err)
		}
		if len(raw) != p.Size {
			return f, fmt.Errorf("testfixtures: %s: %s has %d bytes, the JSON says %d", name, p.File, len(raw), p.Size)
		}
		sum := sha256.Sum256(raw)
		if got := hex.EncodeToString(sum[:]); got != p.SHA256 {
			return f, fmt.Errorf("testfixtures: %s: %s has SHA-256 %s, the JSON says %s", name, p.File, got, p.SHA256)
		}
		p.Raw = raw
	}
	return f, nil
}

// Records returns all records of the partition in order, control records
// included.
func (p *Partition) Records() []Record {
	var rs []Record
	for _, b := range p.Batches {
		rs = append(rs, b.Records...)
	}
	return rs
}

// Marshal encodes f as the fixture JSON: indented, one record per line.
func Marshal(f *Fixture) ([]byte, error) {
	// Records are swapped for placeholders, the document is indented, and
	// the placeholders are replaced by each record's compact encoding.
	type placeholderBatch struct {
		Batch
		Records []string `json:"records"`
	}
	type placeholderPartition struct {
		Partition
		Batches []placeholderBatch `json:"batches"`
	}
	type placeholderFixture struct {
		Fixture
		Partitions []placeholderPartition `json:"partitions"`
	}
	var compact []string
	pf := placeholderFixture{Fixture: *f}
	for _, p := range f.Partitions {
		pp := placeholderPartition{Partition: p, Batches: []placeholderBatch{}}
		if pp.AbortedTransactions == nil {
			pp.AbortedTransactions = []AbortedTransaction{}
		}
		for _, b := range p.Batches {
			pb := placeholderBatch{Batch: b, Records: []string{}}
			for _, r := range b.Records {
				if r.Headers == nil {
					r.Headers = []Header{}
				}
				js, err := json.Marshal(r)
				if err != nil {
					return nil, err
				}
				pb.Records = append(pb.Records, fmt.Sprintf("\x00record-%d\x00", len(compact)))
				compact = append(compact, string(js))
			}
			pp.Batches = append(pp.Batches, pb)
		}
		pf.Partitions = append(pf.Partitions, pp)
	}
	out, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return nil, err
	}
	for i, js := range compact {
		out = bytes.Replace(out, fmt.Appendf(nil, `"\u0000record-%d\u0000"`, i), []byte(js), 1)
	}
	return append(out, '\n'), nil
}
