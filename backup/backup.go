// Package backup is ktape's backup engine: it reads topics from a cluster
// with the zero-copy fetcher and writes their batches, untouched, into a
// repository (package repo), manifest last.
//
// This version does snapshot backups: each partition is backed up from
// its log start to the high watermark (the last stable offset with
// read_committed) it had when the backup started. Continuous mode,
// checkpoints and resume are not written yet.
package backup

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ktape/ktape/client"
	"github.com/ktape/ktape/record"
	"github.com/ktape/ktape/repo"
)

// Options configure a backup.
type Options struct {
	// Topics selects topics by regular expression (full match); none
	// selects every topic. Internal topics (leading "__") are selected
	// only by an expression that names them exactly.
	Topics []*regexp.Regexp
	// Exclude drops topics matching any of these.
	Exclude []*regexp.Regexp
	// Compression is auto (the default: zstd frames unless the batches
	// are compressed), zstd, lz4 or none.
	Compression string
	// Isolation read_committed backs up to the last stable offset and
	// records aborted transactions; the default reads to the high
	// watermark (aborted data and markers are stored either way).
	Isolation client.Isolation
	// Memory bounds the bytes held by the engine: fetched data waiting to
	// be written and segments being built. Default 256 MiB.
	Memory int64
	// SegmentBytes is the size at which a segment is closed and stored;
	// default 64 MiB (a smaller one when Memory is small).
	SegmentBytes int
	// Version is written into the manifest.
	Version string
	// Bootstrap is recorded in the manifest.
	Bootstrap []string
}

// Stats are a backup's totals.
type Stats struct {
	Partitions int
	Batches    int64
	Bytes      int64 // batch bytes
	Segments   int
}

// partition is one partition being backed up.
type partition struct {
	tp      client.TopicPartition
	meta    *repo.Partition
	end     int64 // backed up to here, exclusive
	topic   *repo.Topic
	buf     bytes.Buffer
	w       *repo.SegmentWriter
	framing repo.Framing
	done    bool
}

// Snapshot backs up the selected topics to r and writes the manifest.
// It returns the manifest, complete: the backup exists.
func Snapshot(ctx context.Context, c *client.Client, r *repo.Repository, opts Options) (*repo.Manifest, Stats, error) {
	var st Stats
	if opts.Memory <= 0 {
		opts.Memory = 256 << 20
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = int(min(64<<20, opts.Memory/4))
	}
	switch opts.Compression {
	case "", "auto", "zstd", "lz4", "none":
	default:
		return nil, st, fmt.Errorf("backup: compression %q: auto, zstd, lz4 or none", opts.Compression)
	}
	started := time.Now().UTC()
	m := &repo.Manifest{Format: "ktape-backup", Version: 1, ID: repo.NewBackupID(started), Started: started.Truncate(time.Second),
		KtapeVersion: opts.Version, Mode: "snapshot", Isolation: "read_uncommitted",
		Source: repo.Source{Bootstrap: opts.Bootstrap}, Groups: []repo.Group{}}
	if opts.Isolation == client.ReadCommitted {
		m.Isolation = "read_committed"
	}
	md, err := c.RefreshMetadata(ctx, nil)
	if err != nil {
		return nil, st, fmt.Errorf("backup: metadata: %w", err)
	}
	m.Source.ClusterID = md.ClusterID
	names := selectTopics(md, opts)
	if len(names) == 0 {
		return nil, st, errors.New("backup: no topic matches")
	}
	configs, err := c.DescribeTopicConfigs(ctx, names)
	if err != nil {
		return nil, st, fmt.Errorf("backup: topic configs: %w", err)
	}

	// The range of every partition, fixed now.
	ends := map[client.TopicPartition]int64{}
	starts := map[client.TopicPartition]int64{}
	for _, name := range names {
		for _, p := range md.Topics[name].Partitions {
			tp := client.TopicPartition{Topic: name, Partition: p.Partition}
			ends[tp], starts[tp] = client.Latest, client.Earliest
		}
	}
	latest, err := c.ListOffsets(ctx, opts.Isolation, ends)
	if err != nil {
		return nil, st, fmt.Errorf("backup: list offsets: %w", err)
	}
	earliest, err := c.ListOffsets(ctx, client.ReadUncommitted, starts)
	if err != nil {
		return nil, st, fmt.Errorf("backup: list offsets: %w", err)
	}

	f := client.NewFetcher(c, client.FetchConfig{Isolation: opts.Isolation, Budget: opts.Memory / 2, OutOfRange: client.OutOfRangeSkipToStart})
	defer f.Close()
	parts := map[client.TopicPartition]*partition{}
	m.Topics = make([]repo.Topic, len(names))
	for i, name := range names {
		tm := md.Topics[name]
		t := &m.Topics[i]
		*t = repo.Topic{Name: name, ID: hex.EncodeToString(tm.ID[:]), PartitionsCount: len(tm.Partitions), Configs: map[string]string{}}
		if len(tm.Partitions) > 0 {
			t.ReplicationFactor = len(tm.Partitions[0].Replicas)
		}
		for _, ce := range configs[name] {
			if !ce.IsDefault() && ce.Value != nil && !ce.Sensitive {
				t.Configs[ce.Name] = *ce.Value
			}
		}
		t.Partitions = make([]repo.Partition, len(tm.Partitions))
		for j, pm := range tm.Partitions {
			tp := client.TopicPartition{Topic: name, Partition: pm.Partition}
			lo, hi := earliest[tp], latest[tp]
			if lo.Err != nil || hi.Err != nil {
				return nil, st, fmt.Errorf("backup: %s: offsets: %w", tp, errors.Join(lo.Err, hi.Err))
			}
			t.Partitions[j] = repo.Partition{Partition: pm.Partition, From: lo.Offset, To: hi.Offset,
				LogStart: lo.Offset, HighWatermark: hi.Offset, LastStableOffset: hi.Offset,
				Segments: []repo.SegmentRef{}, Aborted: []repo.Aborted{}, Gaps: []repo.Gap{}}
			st.Partitions++
			if hi.Offset > lo.Offset {
				parts[tp] = &partition{tp: tp, meta: &t.Partitions[j], end: hi.Offset, topic: t}
				f.Assign(tp, lo.Offset)
			}
		}
	}

	buffered := int64(0)
	for remaining := len(parts); remaining > 0; {
		fetch, err := f.Poll(ctx)
		if err != nil {
			return nil, st, fmt.Errorf("backup: %w", err)
		}
		for i := range fetch.Partitions {
			fp := &fetch.Partitions[i]
			p := parts[fp.TopicPartition]
			if p == nil || p.done {
				continue
			}
			if fp.Err != nil {
				fetch.Release()
				return nil, st, fmt.Errorf("backup: %s: %w", fp.TopicPartition, fp.Err)
			}
			if fp.Gap != nil {
				p.meta.Gaps = append(p.meta.Gaps, repo.Gap{From: fp.Gap.From, To: min(fp.Gap.To, p.end), Reason: "retention"})
			}
			for _, a := range fp.Aborted {
				p.meta.Aborted = append(p.meta.Aborted, repo.Aborted{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset})
			}
			it := record.NewIter(fp.Records)
			for it.Next() {
				b := it.Batch()
				if b.BaseOffset() >= p.end {
					break
				}
				if b.LastOffset() < p.meta.From {
					continue
				}
				before := int64(p.buf.Len())
				if err := p.add(b, opts); err != nil {
					fetch.Release()
					return nil, st, err
				}
				buffered += int64(p.buf.Len()) - before
				st.Batches++
				st.Bytes += int64(len(b))
				if p.buf.Len() >= opts.SegmentBytes {
					buffered -= int64(p.buf.Len())
					if err := p.store(ctx, r, &st); err != nil {
						fetch.Release()
						return nil, st, err
					}
				}
			}
			if it.Err() != nil {
				fetch.Release()
				return nil, st, fmt.Errorf("backup: %s: %w", fp.TopicPartition, it.Err())
			}
			if fp.NextOffset >= p.end {
				p.done = true
				remaining--
				f.Unassign(fp.TopicPartition)
			}
		}
		fetch.Release()
		// Segments being built count against the memory budget: store
		// the largest ones early when they add up to too much.
		for buffered > opts.Memory/2 {
			var big *partition
			for _, p := range parts {
				if big == nil || p.buf.Len() > big.buf.Len() {
					big = p
				}
			}
			buffered -= int64(big.buf.Len())
			if err := big.store(ctx, r, &st); err != nil {
				return nil, st, err
			}
		}
	}
	for _, p := range parts {
		if err := p.store(ctx, r, &st); err != nil {
			return nil, st, err
		}
	}
	for i := range m.Topics {
		for j := range m.Topics[i].Partitions {
			p := &m.Topics[i].Partitions[j]
			sort.Slice(p.Aborted, func(a, b int) bool { return p.Aborted[a].FirstOffset < p.Aborted[b].FirstOffset })
		}
	}
	m.Finished = time.Now().UTC().Truncate(time.Second)
	if err := r.PutManifest(ctx, m); err != nil {
		return nil, st, fmt.Errorf("backup: manifest: %w", err)
	}
	return m, st, nil
}

// add appends a batch to the partition's open segment.
func (p *partition) add(b record.Batch, opts Options) error {
	if p.w == nil {
		switch opts.Compression {
		case "zstd":
			p.framing = repo.FramingZstd
		case "lz4":
			p.framing = repo.FramingLZ4
		case "none":
			p.framing = repo.FramingNone
		default:
			p.framing = repo.AutoFraming(b)
		}
		var err error
		if p.w, err = repo.NewSegmentWriter(&p.buf, p.framing, 0); err != nil {
			return err
		}
	}
	if err := p.w.Append(b); err != nil {
		return fmt.Errorf("backup: %s: %w", p.tp, err)
	}
	return nil
}

// store closes and stores the partition's open segment, if any.
func (p *partition) store(ctx context.Context, r *repo.Repository, st *Stats) error {
	if p.w == nil {
		return nil
	}
	seg, err := p.w.Close()
	if err != nil {
		return fmt.Errorf("backup: %s: %w", p.tp, err)
	}
	ref, err := r.PutSegment(ctx, p.topic.Name, p.topic.ID, p.tp.Partition, p.buf.Bytes(), seg)
	if err != nil {
		return fmt.Errorf("backup: %s: %w", p.tp, err)
	}
	p.meta.Segments = append(p.meta.Segments, ref)
	st.Segments++
	p.w = nil
	p.buf.Reset()
	return nil
}

// selectTopics returns the names of the topics opts selects, sorted.
func selectTopics(md *client.Metadata, opts Options) []string {
	topics, exclude := anchored(opts.Topics), anchored(opts.Exclude)
	var out []string
	for name, t := range md.Topics {
		if t.Err != nil {
			continue
		}
		selected := len(opts.Topics) == 0 && !strings.HasPrefix(name, "__")
		for i, re := range topics {
			if re.MatchString(name) && (!strings.HasPrefix(name, "__") || opts.Topics[i].String() == regexp.QuoteMeta(name) || opts.Topics[i].String() == name) {
				selected = true
			}
		}
		for _, re := range exclude {
			if re.MatchString(name) {
				selected = false
			}
		}
		if selected {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// anchored returns the expressions made to match whole names only.
func anchored(res []*regexp.Regexp) []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(res))
	for i, re := range res {
		out[i] = regexp.MustCompile(`^(?:` + re.String() + `)$`) // re compiled, so this does
	}
	return out
}
