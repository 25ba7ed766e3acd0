package main

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// writeFile writes content to name in a new temporary directory and
// returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// configure parses args as ktape would and applies the environment and
// config file, without running the command.
func configure(t *testing.T, args ...string) (*cobra.Command, GlobalOptions, error) {
	t.Helper()
	var gopts GlobalOptions
	root := newRootCommand(&gopts)
	cmd, rest, err := root.Find(args)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatal(err)
	}
	err = applyConfig(cmd, &gopts)
	return cmd, gopts, err
}

func flagValue(t *testing.T, cmd *cobra.Command, name string) string {
	t.Helper()
	f := cmd.Flags().Lookup(name)
	if f == nil {
		t.Fatalf("no flag --%s", name)
	}
	return f.Value.String()
}

// The command line beats the environment, which beats the file, which
// beats the default; each flag on its own.
func TestConfigPrecedence(t *testing.T) {
	cfg := writeFile(t, "ktape.yaml", `
brokers: [file-a:9092, file-b:9092]
client_id: from-file
repo: /file/repo
backup:
  compression: lz4
  isolation: read_committed
  memory: 1GiB
  topics: [orders.*, audit]
`)
	t.Setenv("KTAPE_COMPRESSION", "zstd")
	t.Setenv("KTAPE_CLIENT_ID", "from-env")
	t.Setenv("KTAPE_TOPICS", "env-topic")
	t.Setenv("KTAPE_EXCLUDE", "") // empty: as if unset
	cmd, gopts, err := configure(t, "backup", "--config", cfg, "--compression", "none", "--topics", "flag-1", "--topics", "flag-2")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ flag, want, source string }{
		{"compression", "none", "--compression"},                      // flag > env > file
		{"topics", "[flag-1,flag-2]", "--topics"},                     // a list from the command line replaces the others whole
		{"client-id", "from-env", "$KTAPE_CLIENT_ID"},                 // env > file
		{"isolation", "read_committed", cfg + ":7: backup.isolation"}, // file > default
		{"memory", "1GiB", cfg + ":8: backup.memory"},
		{"brokers", "[file-a:9092,file-b:9092]", cfg + ":2: brokers"},
		{"repo", "/file/repo", cfg + ":4: repo"},
		{"mode", "snapshot", "--mode"}, // default
		{"exclude", "[]", "--exclude"},
	} {
		if got := flagValue(t, cmd, tc.flag); got != tc.want {
			t.Errorf("--%s = %s, want %s", tc.flag, got, tc.want)
		}
		if got := gopts.Sources.of(tc.flag); got != tc.source {
			t.Errorf("source of --%s = %q, want %q", tc.flag, got, tc.source)
		}
	}
	if gopts.Sources.set("mode") {
		t.Error("--mode, left at its default, is recorded as set")
	}

	// The environment names the file when --config does not; KTAPE_TOPICS
	// is then the only source of topics.
	t.Setenv("KTAPE_CONFIG", cfg)
	cmd, gopts, err = configure(t, "backup")
	if err != nil {
		t.Fatal(err)
	}
	if gopts.Config != cfg || flagValue(t, cmd, "topics") != "[env-topic]" || flagValue(t, cmd, "compression") != "zstd" || flagValue(t, cmd, "memory") != "1GiB" {
		t.Errorf("with $KTAPE_CONFIG: config %q, topics %s, compression %s, memory %s",
			gopts.Config, flagValue(t, cmd, "topics"), flagValue(t, cmd, "compression"), flagValue(t, cmd, "memory"))
	}
	// --config beats $KTAPE_CONFIG.
	other := writeFile(t, "other.yaml", "backup: {memory: 2GiB}\n")
	cmd, _, err = configure(t, "backup", "--config", other)
	if err != nil || flagValue(t, cmd, "memory") != "2GiB" {
		t.Errorf("--config over $KTAPE_CONFIG: %v, memory %s", err, flagValue(t, cmd, "memory"))
	}
}

// Flags map to keys by name alone: a command's flag is a key of its
// section, whatever its type, with no code for it. The fake command stands
// for flags added later.
func TestConfigGenericFlags(t *testing.T) {
	var interval time.Duration
	var addr string
	var full bool
	execute := func(args ...string) error {
		var gopts GlobalOptions
		root := newRootCommand(&gopts)
		fake := &cobra.Command{Use: "fake", RunE: func(*cobra.Command, []string) error { return nil }}
		fake.Flags().DurationVar(&interval, "checkpoint-interval", time.Minute, "")
		fake.Flags().StringVar(&addr, "metrics-addr", "", "")
		fake.Flags().BoolVar(&full, "full", false, "")
		root.AddCommand(fake)
		root.SetArgs(args)
		return root.Execute()
	}
	cfg := writeFile(t, "ktape.yaml", "fake:\n  checkpoint_interval: 30s\n  metrics_addr: :9100\n  full: true\n")
	if err := execute("fake", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	if interval != 30*time.Second || addr != ":9100" || !full {
		t.Errorf("checkpoint_interval %v, metrics_addr %q, full %v", interval, addr, full)
	}

	t.Setenv("KTAPE_CHECKPOINT_INTERVAL", "2m")
	if err := execute("fake", "--config", cfg); err != nil || interval != 2*time.Minute {
		t.Errorf("env over file: %v, %v", err, interval)
	}
	if err := execute("fake", "--config", cfg, "--checkpoint-interval", "1h"); err != nil || interval != time.Hour {
		t.Errorf("flag over env: %v, %v", err, interval)
	}

	bad := writeFile(t, "bad.yaml", "fake:\n  checkpoint_interval: 30 seconds\n")
	t.Setenv("KTAPE_CHECKPOINT_INTERVAL", "")
	err := execute("fake", "--config", bad)
	if want := bad + `:2: fake.checkpoint_interval "30 seconds": time: `; err == nil || !strings.HasPrefix(err.Error(), want) || exitCode(err) != 2 {
		t.Errorf("bad duration: %v (exit %d); want exit 2 and %q...", err, exitCode(err), want)
	}
}

// The keys of flags that exist today, as the README documents them.
func TestConfigKeys(t *testing.T) {
	var gopts GlobalOptions
	root := newRootCommand(&gopts)
	s, err := buildSchema(root)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]bool{} // flag → its keys: shared flags agree across commands, a command's own flag may share a name
	for f, path := range s.paths {
		if got[f.Name] == nil {
			got[f.Name] = map[string]bool{}
		}
		got[f.Name][strings.Join(path, ".")] = true
	}
	for flag, keys := range map[string][]string{
		"json": {"json"}, "repo": {"repo", "demo.repo"}, "brokers": {"brokers"}, "client-id": {"client_id"},
		"tls": {"tls.enabled"}, "tls-ca": {"tls.ca"}, "tls-insecure-skip-verify": {"tls.insecure_skip_verify"},
		"sasl-mechanism": {"sasl.mechanism"}, "sasl-password-file": {"sasl.password_file"},
		"checkpoint-interval": {"backup.checkpoint_interval"}, "remap": {"restore.remap"}, "partition-map": {"restore.partition_map"}, "deep": {"verify.deep"},
		"memory": {"backup.memory", "restore.memory"}, "topics": {"backup.topics", "restore.topics"}, "records": {"demo.records"},
	} {
		want := map[string]bool{}
		for _, k := range keys {
			want[k] = true
		}
		if !maps.Equal(got[flag], want) {
			t.Errorf("--%s: keys %v, want %v", flag, slices.Sorted(maps.Keys(got[flag])), keys)
		}
	}
	if _, ok := got["config"]; ok {
		t.Error("--config has a key in the config file")
	}
}

// Config, environment and value errors: exit code 2, and a message that
// says where.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	junk := writeFile(t, "junk.pem", "not a certificate\n")
	for _, tc := range []struct {
		name string
		file string   // config file content; "" for none
		env  []string // name, value pairs
		args []string // after "backup"
		want string   // in stderr; CONFIG stands for the file's name
	}{
		{name: "unknown key", file: "backup:\n  memory: 1GiB\n  topcs: [x]\n",
			want: `CONFIG:3: unknown key "topcs" in section backup; known keys: `}, // then every key of the section
		{name: "unknown top-level key", file: "brokers: a:1\nverbose: true\n",
			want: `CONFIG:2: unknown key "verbose" in the top level; known keys: `},
		{name: "dashes", file: "client-id: x\n",
			want: `CONFIG:1: unknown key "client-id" in the top level (did you mean "client_id"? keys use underscores)`},
		{name: "misplaced key", file: "memory: 1GiB\n",
			want: `CONFIG:1: unknown key "memory" in the top level (did you mean backup.memory or restore.memory?)`},
		{name: "connection key in a command section", file: "backup:\n  brokers: [a:1]\n",
			want: `CONFIG:2: unknown key "brokers" in section backup (did you mean brokers?)`},
		{name: "unknown section", file: "nosuch:\n  to: x\n",
			want: `CONFIG:1: unknown key "nosuch" in the top level`},
		{name: "duplicate key", file: "repo: a\nrepo: b\n",
			want: `CONFIG:2: repo is set twice (first at line 1)`},
		{name: "list for one value", file: "backup:\n  mode: [snapshot]\n",
			want: `CONFIG:2: backup.mode takes one value, not a list`},
		{name: "section for a value", file: "brokers:\n  a: 1\n",
			want: `CONFIG:2: brokers takes a value, not a mapping`},
		{name: "value for a section", file: "tls: true\n",
			want: `CONFIG:1: section tls: want keys (a YAML mapping), not the value "true"`},
		{name: "no value", file: "backup:\n  memory:\n",
			want: `CONFIG:2: backup.memory has no value`},
		{name: "not YAML", file: "backup: [\n",
			want: `config file CONFIG: yaml: line 1`},
		{name: "two documents", file: "repo: a\n---\nrepo: b\n",
			want: `config file CONFIG: more than one YAML document`},
		{name: "missing config file", args: []string{"--config", filepath.Join(dir, "nope.yaml")},
			want: `config file: open ` + filepath.Join(dir, "nope.yaml") + `: no such file or directory`},
		{name: "bad size in file", file: "backup:\n  memory: lots\n",
			want: `CONFIG:2: backup.memory "lots": invalid size: want bytes, or a number and a unit such as 256MiB or 1GiB`},
		{name: "bad size in env", env: []string{"KTAPE_MEMORY", "12XB"},
			want: `$KTAPE_MEMORY "12XB": invalid size`},
		{name: "bad size flag", args: []string{"--memory", "0.5"},
			want: `invalid argument "0.5" for "--memory" flag: invalid size: not a whole number of bytes`},
		{name: "bad bool in env", env: []string{"KTAPE_TLS", "maybe"},
			want: `$KTAPE_TLS "maybe": strconv.ParseBool`},
		{name: "bad duration in file", file: "backup:\n  checkpoint_interval: 30 seconds\n",
			want: `CONFIG:2: backup.checkpoint_interval "30 seconds": time: unknown unit`},
		{name: "memory below the minimum in file", file: "backup:\n  memory: 1MiB\n",
			want: `CONFIG:2: backup.memory 1MiB: at least 8MiB`},
		{name: "bad mechanism in file", file: "sasl:\n  mechanism: KERBEROS\n",
			want: `CONFIG:2: sasl.mechanism "KERBEROS": want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER`},
		{name: "bad mechanism flag", args: []string{"--sasl-mechanism", "GSSAPI"},
			want: `invalid argument "GSSAPI" for "--sasl-mechanism" flag: want PLAIN`},
		{name: "bad compression", file: "backup:\n  compression: gzip\n",
			want: `CONFIG:2: backup.compression "gzip": want auto, zstd, lz4 or none`},
		{name: "bad regex in file", file: "backup:\n  topics: ['(']\n",
			want: `CONFIG:2: backup.topics "(": error parsing regexp`},
		{name: "missing CA flag", args: []string{"--tls-ca", filepath.Join(dir, "ca.pem")},
			want: `--tls-ca: read CA certificates: open ` + filepath.Join(dir, "ca.pem") + `: no such file or directory`},
		{name: "missing CA in file, relative to it", file: "tls:\n  ca: certs/ca.pem\n",
			want: `CONFIG:2: tls.ca: read CA certificates: open CONFIGDIR/certs/ca.pem: no such file or directory`},
		{name: "malformed CA in env", env: []string{"KTAPE_TLS_CA", junk},
			want: `$KTAPE_TLS_CA: ` + junk + ` holds no PEM certificate`},
		{name: "malformed client certificate", args: []string{"--tls-cert", junk, "--tls-key", junk},
			want: `--tls-cert ` + junk + ` and --tls-key ` + junk + `: not a PEM certificate and its key`},
		{name: "credentials without a mechanism", file: "sasl:\n  username: alice\n",
			want: `CONFIG:2: sasl.username is set but not --sasl-mechanism`},
		{name: "tls off but a CA given", file: "tls:\n  enabled: false\n  ca: /x.pem\n",
			want: `CONFIG:2: tls.enabled turns TLS off, but CONFIG:3: tls.ca asks for it`},
		{name: "bad broker", env: []string{"KTAPE_BROKERS", "a:1,localhost"},
			want: `$KTAPE_BROKERS: broker "localhost" is not HOST:PORT`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"backup", "--repo", repoDir}
			if !slices.Contains(tc.env, "KTAPE_BROKERS") {
				args = append(args, "--brokers", "127.0.0.1:1")
			}
			cfg := ""
			if tc.file != "" {
				cfg = writeFile(t, "ktape.yaml", tc.file)
				args = append(args, "--config", cfg)
			}
			for i := 0; i+1 < len(tc.env); i += 2 {
				t.Setenv(tc.env[i], tc.env[i+1])
			}
			args = append(args, tc.args...)
			code, _, errOut := runKtape(t, args...)
			want := strings.ReplaceAll(tc.want, "CONFIGDIR", filepath.Dir(cfg))
			want = strings.ReplaceAll(want, "CONFIG", cfg)
			if code != 2 || !strings.Contains(errOut, want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, errOut, want)
			}
			if _, err := os.Stat(repoDir); err == nil {
				t.Errorf("the repository was created before the usage error")
			}
		})
	}
}

// A config file may set keys of commands other than the one running, and
// comments, anchors and an empty file are fine.
func TestConfigOtherSections(t *testing.T) {
	for _, content := range []string{"", "# nothing yet\n", "verify:\n  deep: true\nbackup:\n"} {
		cfg := writeFile(t, "ktape.yaml", content)
		if _, _, err := configure(t, "backup", "--config", cfg); err != nil {
			t.Errorf("%q: %v", content, err)
		}
	}
	cfg := writeFile(t, "ktape.yaml", "backup:\n  topics: &t [a, b]\n  exclude: *t\n")
	cmd, _, err := configure(t, "backup", "--config", cfg)
	if err != nil || flagValue(t, cmd, "exclude") != "[a,b]" {
		t.Errorf("alias: %v, exclude %s", err, flagValue(t, cmd, "exclude"))
	}
	// verify's own key reaches verify.
	cmd, _, err = configure(t, "verify", "--config", writeFile(t, "k.yaml", "verify:\n  deep: true\n"))
	if err != nil || flagValue(t, cmd, "deep") != "true" {
		t.Errorf("verify.deep: %v, %s", err, flagValue(t, cmd, "deep"))
	}
}
