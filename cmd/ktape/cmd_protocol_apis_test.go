package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ktape/ktape/protocol"
	"github.com/ktape/ktape/protocol/api"
)

func TestRunProtocolAPIsText(t *testing.T) {
	var out bytes.Buffer
	if err := runProtocolAPIs(context.Background(), ProtocolAPIsOptions{}, GlobalOptions{}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if got, want := strings.Fields(lines[0]), []string{"KEY", "NAME", "MIN", "MAX", "FLEXIBLE", "ROUTE"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("header = %q, want %q", got, want)
	}
	rows := lines[1:]
	if len(rows) != len(api.All) {
		t.Fatalf("%d rows, want %d (len(api.All)):\n%s", len(rows), len(api.All), &out)
	}

	// Columns are aligned: every field of every row starts where its header does.
	starts := fieldStarts(lines[0])
	for _, l := range rows {
		if got := fieldStarts(l); fmt.Sprint(got) != fmt.Sprint(starts) {
			t.Errorf("row %q: columns start at %v, header's at %v", l, got, starts)
		}
	}

	byKey := make(map[string]string, len(rows))
	prev := -1
	for _, l := range rows {
		f := strings.Fields(l)
		var key int
		if _, err := fmt.Sscan(f[0], &key); err != nil {
			t.Fatalf("row %q: key: %v", l, err)
		}
		if key <= prev {
			t.Errorf("row %q: key %d after %d, want ascending keys", l, key, prev)
		}
		prev = key
		byKey[f[0]] = strings.Join(f, " ")
	}
	for _, a := range api.All {
		flex := "-"
		if a.FlexibleVersion != protocol.NotFlexible {
			flex = fmt.Sprint(a.FlexibleVersion)
		}
		want := fmt.Sprintf("%d %s %d %d %s %s", a.Key, a.Name, a.MinVersion, a.MaxVersion, flex, a.Route)
		if got := byKey[fmt.Sprint(a.Key)]; got != want {
			t.Errorf("key %d: row %q, want %q", a.Key, got, want)
		}
	}
}

// fieldStarts returns the byte offsets at which the space-separated fields of
// line start.
func fieldStarts(line string) []int {
	var starts []int
	for i := range len(line) {
		if line[i] != ' ' && (i == 0 || line[i-1] == ' ') {
			starts = append(starts, i)
		}
	}
	return starts
}

func TestRunProtocolAPIsJSON(t *testing.T) {
	var out bytes.Buffer
	if err := runProtocolAPIs(context.Background(), ProtocolAPIsOptions{}, GlobalOptions{JSON: true}, &out); err != nil {
		t.Fatal(err)
	}
	// Decode into raw messages first so null and missing fields can be told apart.
	var doc struct {
		MessageType string                       `json:"message_type"`
		APIs        []map[string]json.RawMessage `json:"apis"`
	}
	dec := json.NewDecoder(&out)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("output is not a JSON document: %v", err)
	}
	if dec.More() {
		t.Error("output holds more than one JSON document")
	}
	if doc.MessageType != "protocol_apis" {
		t.Errorf("message_type = %q, want protocol_apis", doc.MessageType)
	}
	if len(doc.APIs) != len(api.All) {
		t.Fatalf("%d apis, want %d (len(api.All))", len(doc.APIs), len(api.All))
	}

	type entry struct {
		Key          int16  `json:"key"`
		Name         string `json:"name"`
		MinVersion   int16  `json:"min_version"`
		MaxVersion   int16  `json:"max_version"`
		FlexibleFrom *int16 `json:"flexible_from"`
		Route        string `json:"route"`
	}
	got := make(map[int16]entry, len(doc.APIs))
	prev := -1
	for i, raw := range doc.APIs {
		for _, f := range []string{"key", "name", "min_version", "max_version", "flexible_from", "route"} {
			if _, ok := raw[f]; !ok {
				t.Errorf("apis[%d] lacks field %q", i, f)
			}
		}
		b, _ := json.Marshal(raw)
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("apis[%d]: %v", i, err)
		}
		if int(e.Key) <= prev {
			t.Errorf("apis[%d]: key %d after %d, want ascending keys", i, e.Key, prev)
		}
		prev = int(e.Key)
		got[e.Key] = e
	}
	for _, a := range api.All {
		e, ok := got[a.Key]
		if !ok {
			t.Errorf("key %d (%s) missing", a.Key, a.Name)
			continue
		}
		if e.Name != a.Name || e.MinVersion != a.MinVersion || e.MaxVersion != a.MaxVersion || e.Route != a.Route.String() {
			t.Errorf("key %d: got %+v, want name %s versions %d-%d route %s",
				a.Key, e, a.Name, a.MinVersion, a.MaxVersion, a.Route)
		}
		switch {
		case a.FlexibleVersion == protocol.NotFlexible && e.FlexibleFrom != nil:
			t.Errorf("key %d: flexible_from = %d, want null", a.Key, *e.FlexibleFrom)
		case a.FlexibleVersion != protocol.NotFlexible && (e.FlexibleFrom == nil || *e.FlexibleFrom != a.FlexibleVersion):
			t.Errorf("key %d: flexible_from = %v, want %d", a.Key, e.FlexibleFrom, a.FlexibleVersion)
		}
	}
}

func TestRunProtocolAPIsProduceExample(t *testing.T) {
	// The example in the Long help: keep it true, or change the help.
	var out bytes.Buffer
	if err := runProtocolAPIs(context.Background(), ProtocolAPIsOptions{}, GlobalOptions{JSON: true}, &out); err != nil {
		t.Fatal(err)
	}
	want := `{"key":0,"name":"Produce","min_version":0,"max_version":13,"flexible_from":9,"route":"leader"}`
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %s; if Produce's declaration changed, update the example in newProtocolAPIsCommand's help:\n%s", want, &out)
	}
}
