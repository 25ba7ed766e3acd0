package restore

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/ktape/ktape/repo"
)

// ParseTime reads a point-in-time bound: RFC 3339 (2026-11-22T10:00:00Z,
// fractions allowed) or Unix milliseconds.
func ParseTime(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q is neither RFC 3339 (2006-01-02T15:04:05Z07:00) nor Unix milliseconds", s)
	}
	return t, nil
}

// window is what is restored of one source partition: records whose
// offset is in [first, last] (the backed-up range, cut by --to-offset)
// and whose timestamp is in [from, to] (Unix ms).
type window struct {
	first, last int64
	from, to    int64
}

func newWindow(p *repo.Partition, from, to time.Time, toOffset int64, hasToOffset bool) window {
	w := window{first: p.From, last: p.To - 1, from: math.MinInt64, to: math.MaxInt64}
	if hasToOffset && toOffset < w.last {
		w.last = toOffset
	}
	if !from.IsZero() {
		w.from = from.UnixMilli()
	}
	if !to.IsZero() {
		w.to = to.UnixMilli()
	}
	return w
}

func (w window) timed() bool { return w.from != math.MinInt64 || w.to != math.MaxInt64 }

// keep reports whether a record is inside the window.
func (w window) keep(offset, ts int64) bool {
	return offset >= w.first && offset <= w.last && ts >= w.from && ts <= w.to
}

// verdict is what the restore does with a batch, decided from its index
// entry (or header, which must agree) before reading it.
type verdict int

const (
	sendWhole  verdict = iota
	inspect            // straddles the window: read its records
	skipMarker         // a transaction marker
	skipAborted
	skipUndecided // a transaction with no marker in the backup
	skipOutside   // outside the backed-up range or the window
	stop          // past --to-offset: nothing after it is restored
)

// judge decides from a batch's index entry. Only what the fields prove
// is decided here: a batch whose timestamps might straddle a bound is
// inspected record by record. A CreateTime batch's first timestamp is not
// a lower bound of its records' (a producer may set earlier ones), so
// with --from every batch reaching past it is inspected; a LogAppendTime
// batch's records all carry its max timestamp.
func judge(w window, txns map[int64][]marker, ie *repo.IndexEntry) verdict {
	switch {
	case ie.BaseOffset > w.last:
		return stop
	case ie.LastOffset < w.first:
		return skipOutside
	case ie.Attributes&attrControl != 0:
		return skipMarker
	}
	if ie.Attributes&attrTransactional != 0 {
		ms := txns[ie.ProducerID]
		i := searchMarker(ms, ie.LastOffset)
		switch {
		case i == len(ms):
			return skipUndecided
		case ms[i].abort:
			return skipAborted
		}
	}
	straddles := ie.BaseOffset < w.first || ie.LastOffset > w.last
	switch {
	case !w.timed() || ie.Attributes&attrLogAppendTime != 0 && ie.MaxTime >= w.from && ie.MaxTime <= w.to:
		// No time bounds, or every record has the batch's max timestamp,
		// which is inside them.
	case ie.MaxTime < w.from || ie.Attributes&attrLogAppendTime != 0:
		return skipOutside
	case w.from != math.MinInt64 || ie.MaxTime > w.to:
		return inspect
	}
	if straddles {
		return inspect
	}
	return sendWhole
}

const attrLogAppendTime = 0x08
