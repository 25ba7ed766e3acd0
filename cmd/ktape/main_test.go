package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stderrHas  string
		stdoutHas  string
		jsonStderr bool
	}{
		{name: "root help", args: []string{"--help"}, code: 0, stdoutHas: "EXIT STATUS"},
		{name: "no args", args: nil, code: 0, stdoutHas: "Usage:"},
		{name: "protocol apis", args: []string{"protocol", "apis"}, code: 0, stdoutHas: "Produce"},
		{name: "unknown flag", args: []string{"protocol", "apis", "--bogus"}, code: 2,
			stderrHas: "unknown flag: --bogus"},
		{name: "unknown flag help hint", args: []string{"protocol", "apis", "--bogus"}, code: 2,
			stderrHas: "Run 'ktape protocol apis --help' for usage."},
		{name: "bad flag value", args: []string{"version", "--json=maybe"}, code: 2,
			stderrHas: "--json"},
		{name: "unknown root command", args: []string{"bakup"}, code: 2,
			stderrHas: `unknown command "bakup" for "ktape"`},
		{name: "unknown subcommand", args: []string{"protocol", "apiss"}, code: 2,
			stderrHas: `did you mean "apis"?`},
		{name: "extra argument", args: []string{"protocol", "apis", "extra"}, code: 2,
			stderrHas: "takes no arguments"},
		{name: "json exit_error", args: []string{"--json", "protocol", "apis", "--bogus"}, code: 2,
			jsonStderr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("run(%q) = %d, want %d\nstdout:\n%s\nstderr:\n%s", tc.args, code, tc.code, &stdout, &stderr)
			}
			if tc.code == 0 && stderr.Len() > 0 {
				t.Errorf("stderr not empty on success: %q", &stderr)
			}
			if !strings.Contains(stdout.String(), tc.stdoutHas) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdoutHas, &stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderrHas) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderrHas, &stderr)
			}
			if tc.jsonStderr {
				var e struct {
					MessageType string `json:"message_type"`
					Code        int    `json:"code"`
					Message     string `json:"message"`
				}
				if err := json.Unmarshal(stderr.Bytes(), &e); err != nil {
					t.Fatalf("stderr is not one JSON object: %v\n%s", err, &stderr)
				}
				if e.MessageType != "exit_error" || e.Code != tc.code || e.Message == "" {
					t.Errorf("exit_error = %+v", e)
				}
			}
		})
	}
}

func TestExitCodeNil(t *testing.T) {
	if got := exitCode(nil); got != 0 {
		t.Errorf("exitCode(nil) = %d, want 0", got)
	}
	if got := exitCode(fmt.Errorf("wrapped: %w", usageError{fmt.Errorf("bad")})); got != 2 {
		t.Errorf("exitCode(wrapped usage error) = %d, want 2", got)
	}
	if got := exitCode(fmt.Errorf("plain")); got != 1 {
		t.Errorf("exitCode(plain error) = %d, want 1", got)
	}
}

// TestREADMEExitCodes keeps the exit code table in README.md in step with
// exitCodes.
func TestREADMEExitCodes(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile(`(?m)^\|\s*(\d+)\s*\|`).FindAllSubmatch(readme, -1)
	var got []string
	for _, r := range rows {
		got = append(got, string(r[1]))
	}
	var want []string
	for _, e := range exitCodes {
		want = append(want, fmt.Sprint(e.code))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("README.md exit code rows = %v, want %v (from exitCodes)", got, want)
	}
}
