package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A SASL password never reaches any output: full backup, ls, describe,
// verify --deep, a dry-run and a real restore, with progress logged as
// often as it can be, with the password from a file and from the
// environment, PLAIN and SCRAM; then a wrong password (the auth failure's
// message) and every command's --help. Every line of stdout and stderr is
// searched for the password.
func TestSecretsNeverPrinted(t *testing.T) {
	const secret = "Zq7-never-print-me-" + testPassword
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-512"} {
		for _, from := range []string{"file", "env"} {
			t.Run(mech+"/"+from, func(t *testing.T) {
				c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(2, "orders"), kfaketest.SASL(mech, "u1", secret))
				for p := int32(0); p < 2; p++ {
					c.Produce(t, "orders", p, &kgo.Record{Key: []byte(fmt.Sprint(p)), Value: []byte("v")})
				}
				dir := t.TempDir()
				auth := []string{"--brokers", c.Addrs()[0], "--sasl-mechanism", mech, "--sasl-username", "u1"}
				t.Setenv("KTAPE_SASL_PASSWORD", "")
				switch from {
				case "file":
					pw := filepath.Join(dir, "pw")
					if err := os.WriteFile(pw, []byte(secret+"\n"), 0o600); err != nil {
						t.Fatal(err)
					}
					auth = append(auth, "--sasl-password-file", pw)
				case "env":
					t.Setenv("KTAPE_SASL_PASSWORD", secret)
				}
				repoDir := filepath.Join(dir, "repo")
				var all strings.Builder
				lines := 0
				runAll := func(wantCode int, args ...string) {
					t.Helper()
					code, out, errOut := runKtape(t, args...)
					all.WriteString(out + errOut)
					lines += strings.Count(out+errOut, "\n")
					if wantCode >= 0 && code != wantCode {
						t.Fatalf("%v: exit %d, want %d: %s%s", args, code, wantCode, out, errOut)
					}
				}
				runAll(0, append([]string{"backup", "--repo", repoDir, "--progress-interval", "1ms"}, auth...)...)
				runAll(0, append([]string{"backup", "--repo", repoDir, "--progress-interval", "1ms", "--json"}, auth...)...)
				runAll(0, "ls", "--repo", repoDir)
				runAll(0, "describe", "--repo", repoDir, "--json")
				runAll(0, "verify", "--repo", repoDir, "--deep")
				runAll(0, append([]string{"restore", "--repo", repoDir, "--remap", "orders=copy", "--dry-run"}, auth...)...)
				runAll(0, append([]string{"restore", "--repo", repoDir, "--remap", "orders=copy", "--progress-interval", "1ms", "--json"}, auth...)...)
				if got := c.ConsumeAll(t, "copy"); len(got) != 2 {
					t.Fatalf("restored %d records, want 2", len(got))
				}
				// A wrong password: the auth failure's message.
				bad := append([]string{}, auth...)
				if from == "file" {
					pw := filepath.Join(dir, "bad")
					os.WriteFile(pw, []byte(secret+"x"), 0o600)
					bad[len(bad)-1] = pw
				} else {
					t.Setenv("KTAPE_SASL_PASSWORD", secret+"x")
				}
				runAll(1, append([]string{"backup", "--repo", repoDir}, bad...)...)
				for _, cmd := range []string{"backup", "restore", "verify", "ls", "describe"} {
					runAll(0, cmd, "--help")
				}
				if strings.Contains(all.String(), secret) || strings.Contains(all.String(), testPassword) {
					t.Fatalf("the password appears in the output:\n%s", all.String())
				}
				t.Logf("%d lines of output searched", lines)
			})
		}
	}
}

// TLS verification is on by default: a broker whose certificate no
// trusted CA signed is refused with --tls alone, naming the certificate
// problem in one line, and accepted only when verification is turned off
// explicitly (--tls-insecure-skip-verify) or its CA is given
// (TestBackupTLSFlags covers --tls-ca, the server name and mutual TLS).
func TestTLSVerifiedByDefault(t *testing.T) {
	server, clientCfg := kfaketest.TLSConfigs(t)
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "events"), kfaketest.TLS(server, clientCfg))
	c.Produce(t, "events", 0, &kgo.Record{Value: []byte("hello")})
	dir := t.TempDir()
	_, cert, key := writeTLSFiles(t, dir, clientCfg)
	repoDir := filepath.Join(dir, "repo")
	args := []string{"backup", "--brokers", c.Addrs()[0], "--repo", repoDir, "--tls", "--tls-cert", cert, "--tls-key", key}
	code, out, errOut := runKtape(t, args...)
	if code != 1 || !strings.Contains(errOut, "certificate signed by unknown authority") || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
		t.Fatalf("untrusted broker: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, errOut := runKtape(t, append(args, "--tls-insecure-skip-verify")...); code != 0 || !strings.Contains(out, "1 records") {
		t.Fatalf("with --tls-insecure-skip-verify: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
