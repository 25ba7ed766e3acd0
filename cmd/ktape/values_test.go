package main

import (
	"math"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string // substring of the error; "" for none
	}{
		{in: "268435456", want: 268435456},
		{in: "0", want: 0},
		{in: "256MiB", want: 256 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "1 GiB", want: 1 << 30},
		{in: " 2KiB ", want: 2048},
		{in: "1.5GiB", want: 3 << 29},
		{in: "3TiB", want: 3 << 40},
		{in: "500MB", want: 500e6},
		{in: "2kB", want: 2000},
		{in: "2KB", want: 2000},
		{in: "7B", want: 7},
		{in: "9223372036854775807", want: math.MaxInt64},
		{in: "9223372036854775808", err: "too large"},
		{in: "8388608TiB", err: "too large"},
		{in: "0.1KiB", err: "not a whole number of bytes"},
		{in: "1.5", err: "not a whole number of bytes"},
		{in: "", err: "invalid size"},
		{in: "MiB", err: "invalid size"},
		{in: "-1", err: "invalid size"},
		{in: "1e9", err: "invalid size"},
		{in: "0x10", err: "invalid size"},
		{in: "1/2GiB", err: "invalid size"},
		{in: "1.", err: "invalid size"},
		{in: ".5GiB", err: "invalid size"},
		{in: "256mb", err: "invalid size"},
		{in: "256 MiBs", err: "invalid size"},
		{in: "lots", err: "invalid size"},
	} {
		got, err := parseSize(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("parseSize(%q): %v", tc.in, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("parseSize(%q) = %d, want %d", tc.in, got, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseSize(%q) = %d, %v; want an error with %q", tc.in, got, err, tc.err)
		}
	}
}

// A size shown in help parses back to itself.
func TestFormatSizeRoundTrip(t *testing.T) {
	for _, n := range []int64{0, 1, 1000, 1024, 1536, 256 << 20, 1 << 30, 5 << 40, math.MaxInt64} {
		s := formatSize(n)
		got, err := parseSize(s)
		if err != nil || got != n {
			t.Errorf("formatSize(%d) = %q, parses to %d, %v", n, s, got, err)
		}
	}
	if got := formatSize(256 << 20); got != "256MiB" {
		t.Errorf("formatSize(256 MiB) = %q", got)
	}
}

func TestEnumValue(t *testing.T) {
	var s string
	v := newEnumValue(&s, "a", false, "a", "b-c")
	if s != "a" || v.String() != "a" {
		t.Fatalf("default: %q", s)
	}
	if err := v.Set("b-c"); err != nil || s != "b-c" {
		t.Fatalf("Set(b-c): %v, %q", err, s)
	}
	if err := v.Set("B-C"); err == nil || err.Error() != "want a or b-c" {
		t.Errorf("Set(B-C) without folding: %v", err)
	}
	folded := newEnumValue(&s, "", true, "PLAIN", "SCRAM-SHA-256")
	if err := folded.Set("scram-sha-256"); err != nil || s != "SCRAM-SHA-256" {
		t.Errorf("folded Set: %v, %q; want the listed spelling", err, s)
	}
	if err := folded.Set(""); err == nil {
		t.Error("empty value accepted")
	}
}
