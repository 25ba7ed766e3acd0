package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Conf is one configuration of a benchmark matrix.
type Conf struct {
	Target     string
	Size       int64
	Partitions int
	Codec      string
	BatchBytes int64
}

func (k Conf) String() string {
	return fmt.Sprintf("%s, %s, %d partition(s), %s, %s batches", k.Target, SizeString(k.Size), k.Partitions, k.Codec, SizeString(k.BatchBytes))
}

// A Result is one JSON result line of a matrix harness: which
// configuration and client it measured, and its failure, if any.
type Result interface {
	Conf() Conf
	Client() string
	Failure() string
}

// ReadResults reads result lines (several rounds, any order) and groups
// them by configuration, in the order first seen, and by client. A line
// that does not parse, or reports a failed run, is an error.
func ReadResults[T Result](r io.Reader) (confs []Conf, runs map[Conf]map[string][]T, err error) {
	runs = map[Conf]map[string][]T{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var res T
		if err := json.Unmarshal([]byte(text), &res); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", line, err)
		}
		if f := res.Failure(); f != "" {
			return nil, nil, fmt.Errorf("line %d: %s failed: %s", line, res.Client(), f)
		}
		k := res.Conf()
		if runs[k] == nil {
			runs[k] = map[string][]T{}
			confs = append(confs, k)
		}
		runs[k][res.Client()] = append(runs[k][res.Client()], res)
	}
	return confs, runs, sc.Err()
}
