package harness

import (
	"strings"
	"testing"
)

type line struct {
	Impl, Target, Error string
	Partitions          int
}

func (l line) Conf() Conf      { return Conf{Target: l.Target, Partitions: l.Partitions} }
func (l line) Client() string  { return l.Impl }
func (l line) Failure() string { return l.Error }

func TestReadResults(t *testing.T) {
	in := `{"Impl":"a","Target":"x","Partitions":1}

{"Impl":"b","Target":"x","Partitions":1}
{"Impl":"a","Target":"x","Partitions":8}
{"Impl":"a","Target":"x","Partitions":1}
`
	confs, runs, err := ReadResults[line](strings.NewReader(in))
	if err != nil || len(confs) != 2 || confs[0].Partitions != 1 || len(runs[confs[0]]["a"]) != 2 || len(runs[confs[0]]["b"]) != 1 || len(runs[confs[1]]["a"]) != 1 {
		t.Fatalf("%v %v %v", confs, runs, err)
	}
	if _, _, err := ReadResults[line](strings.NewReader(`{"Impl":"a"}` + "\n" + `{"Impl":"b","Error":"boom"}`)); err == nil || !strings.Contains(err.Error(), "line 2: b failed: boom") {
		t.Fatalf("failed run: %v", err)
	}
	if _, _, err := ReadResults[line](strings.NewReader("{")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad line: %v", err)
	}
}
