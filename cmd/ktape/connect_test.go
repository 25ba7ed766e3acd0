package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktape/ktape/client/sasl"
	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/twmb/franz-go/pkg/kgo"
)

const testPassword = "s3cr3t-PASSWORD-value"

func TestConnectOptionsDialer(t *testing.T) {
	pwFile := writeFile(t, "pw", testPassword+"\r\n")
	for _, tc := range []struct {
		name string
		o    ConnectOptions
		mech string // the mechanism's name; "" for none
		tls  bool
	}{
		{name: "plaintext", o: ConnectOptions{}},
		{name: "tls", o: ConnectOptions{TLS: true}, tls: true},
		{name: "tls implied", o: ConnectOptions{TLSServerName: "kafka"}, tls: true},
		{name: "plain", o: ConnectOptions{SASLMechanism: "PLAIN", SASLUsername: "u", SASLPassword: testPassword}, mech: "PLAIN"},
		{name: "scram-256 file", o: ConnectOptions{SASLMechanism: "SCRAM-SHA-256", SASLUsername: "u", SASLPasswordFile: pwFile}, mech: "SCRAM-SHA-256"},
		{name: "scram-512", o: ConnectOptions{SASLMechanism: "SCRAM-SHA-512", SASLUsername: "u", SASLPassword: testPassword}, mech: "SCRAM-SHA-512"},
		{name: "oauthbearer", o: ConnectOptions{SASLMechanism: "OAUTHBEARER", SASLPassword: "tok"}, mech: "OAUTHBEARER"},
	} {
		d, err := tc.o.Dialer(nil)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if (d.TLS != nil) != tc.tls {
			t.Errorf("%s: TLS %v, want %v", tc.name, d.TLS != nil, tc.tls)
		}
		if d.TLS != nil && d.TLS.MinVersion < tls.VersionTLS12 {
			t.Errorf("%s: TLS minimum version %x", tc.name, d.TLS.MinVersion)
		}
		name := ""
		if d.SASL != nil {
			name = d.SASL.Name()
		}
		if name != tc.mech {
			t.Errorf("%s: mechanism %q, want %q", tc.name, name, tc.mech)
		}
	}

	// A password file loses its line ending.
	d, err := ConnectOptions{SASLMechanism: "PLAIN", SASLUsername: "u", SASLPasswordFile: pwFile}.Dialer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := d.SASL.(*sasl.Plain); p.Pass != testPassword {
		t.Errorf("password from file: %q", p.Pass)
	}
	// Password and password file: the one given with higher precedence.
	both := ConnectOptions{SASLMechanism: "PLAIN", SASLUsername: "u", SASLPassword: "from-flag", SASLPasswordFile: pwFile}
	d, err = both.Dialer(sources{"sasl-password": "--sasl-password", "sasl-password-file": "k.yaml:3: sasl.password_file"})
	if err != nil || d.SASL.(*sasl.Plain).Pass != "from-flag" {
		t.Errorf("flag over file: %v", err)
	}
	d, err = both.Dialer(sources{"sasl-password": "k.yaml:3: sasl.password", "sasl-password-file": "$KTAPE_SASL_PASSWORD_FILE"})
	if err != nil || d.SASL.(*sasl.Plain).Pass != testPassword {
		t.Errorf("env over file: %v", err)
	}
}

// An OAUTHBEARER token file is read at each authentication: a refreshed
// token is used without a restart.
func TestConnectOAuthBearerTokenFile(t *testing.T) {
	file := writeFile(t, "token", "first\n")
	d, err := ConnectOptions{SASLMechanism: "OAUTHBEARER", SASLPasswordFile: file}.Dialer(nil)
	if err != nil {
		t.Fatal(err)
	}
	tokenOf := func() string {
		_, msg, err := d.SASL.Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return string(msg)
	}
	if m := tokenOf(); !strings.Contains(m, "auth=Bearer first\x01") {
		t.Fatalf("first message %q", m)
	}
	if err := os.WriteFile(file, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	if m := tokenOf(); !strings.Contains(m, "auth=Bearer second\x01") {
		t.Errorf("after refresh: %q", m)
	}
}

func TestConnectOptionsErrors(t *testing.T) {
	empty := writeFile(t, "empty", "\n")
	for _, tc := range []struct {
		name string
		o    ConnectOptions
		src  sources
		want string
	}{
		{"cert without key", ConnectOptions{TLSCert: "c.pem"}, nil, "--tls-cert needs --tls-key"},
		{"key without cert", ConnectOptions{TLSKey: "k.pem"}, nil, "--tls-key needs --tls-cert"},
		{"ca and skip verify", ConnectOptions{TLSCA: "ca.pem", TLSInsecureSkipVerify: true}, nil, "--tls-ca and --tls-insecure-skip-verify: a CA is pointless"},
		{"tls off explicitly", ConnectOptions{TLSCA: "ca.pem"}, sources{"tls": "$KTAPE_TLS"}, "$KTAPE_TLS turns TLS off, but --tls-ca asks for it"},
		{"password without mechanism", ConnectOptions{SASLPassword: testPassword}, sources{"sasl-password": "$KTAPE_SASL_PASSWORD"}, "$KTAPE_SASL_PASSWORD is set but not --sasl-mechanism"},
		{"no user", ConnectOptions{SASLMechanism: "PLAIN", SASLPassword: testPassword}, nil, "--sasl-mechanism PLAIN needs a user name"},
		{"no password", ConnectOptions{SASLMechanism: "SCRAM-SHA-256", SASLUsername: "u"}, nil, "needs a password: set KTAPE_SASL_PASSWORD, give --sasl-password-file"},
		{"two passwords", ConnectOptions{SASLMechanism: "PLAIN", SASLUsername: "u", SASLPassword: testPassword, SASLPasswordFile: "f"}, nil, "both --sasl-password and --sasl-password-file are set"},
		{"empty password file", ConnectOptions{SASLMechanism: "PLAIN", SASLUsername: "u", SASLPasswordFile: empty}, nil, "--sasl-password-file: secret file " + empty + " is empty"},
		{"missing token file", ConnectOptions{SASLMechanism: "OAUTHBEARER", SASLPasswordFile: "/nonexistent/token"}, nil, "--sasl-password-file: read password or token: open /nonexistent/token"},
		{"oauth with user", ConnectOptions{SASLMechanism: "OAUTHBEARER", SASLUsername: "u", SASLPassword: "t"}, nil, "--sasl-username: OAUTHBEARER takes no user name"},
		{"oauth without token", ConnectOptions{SASLMechanism: "OAUTHBEARER"}, nil, "OAUTHBEARER needs a token"},
	} {
		_, err := tc.o.Dialer(tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != 2 {
			t.Errorf("%s: %v (exit %d); want exit 2 and %q", tc.name, err, exitCode(err), tc.want)
		}
		if err != nil && strings.Contains(err.Error(), testPassword) {
			t.Errorf("%s: the error shows the password: %v", tc.name, err)
		}
	}
	if _, err := (ConnectOptions{Brokers: []string{"a:1", " b:2"}}).Seeds(nil); err != nil {
		t.Errorf("Seeds: %v", err)
	}
	for _, bad := range [][]string{nil, {"a"}, {"a:1", ""}, {"a:"}} {
		if _, err := (ConnectOptions{Brokers: bad}).Seeds(nil); err == nil || exitCode(err) != 2 {
			t.Errorf("Seeds(%q): %v", bad, err)
		}
	}
}

func TestConnectOptionsStringRedacts(t *testing.T) {
	o := BackupOptions{Conn: ConnectOptions{SASLMechanism: "PLAIN", SASLUsername: "u", SASLPassword: testPassword}}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(format, o); strings.Contains(s, testPassword) || !strings.Contains(s, "<redacted>") {
			t.Errorf("%s shows the password or hides that it is set: %s", format, s)
		}
	}
}

// A backup through kfake with SCRAM, configured by nothing but a YAML
// file; the password is in a file it names, relative to it.
func TestBackupSASLFromConfigFile(t *testing.T) {
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(2, "orders"),
		kfaketest.SASL("SCRAM-SHA-256", "backup-user", testPassword))
	c.Produce(t, "orders", 0, &kgo.Record{Value: []byte("one")}, &kgo.Record{Value: []byte("two")})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(pwFile string) string {
		return fmt.Sprintf(`brokers: [%s]
repo: repo
sasl:
  mechanism: SCRAM-SHA-256
  username: backup-user
  password_file: %s
backup:
  topics: [orders]
  memory: 16MiB
`, c.Addrs()[0], pwFile)
	}
	cfg := filepath.Join(dir, "ktape.yaml")
	if err := os.WriteFile(cfg, []byte(config("password")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runKtape(t, "backup", "--config", cfg, "--json")
	var done struct {
		Backup     string `json:"backup"`
		Partitions int    `json:"partitions"`
		Batches    int    `json:"batches"`
	}
	if err := json.Unmarshal([]byte(out), &done); code != 0 || err != nil || done.Partitions != 2 || done.Batches != 1 {
		t.Fatalf("backup: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, _ := runKtape(t, "verify", "--config", cfg, "--deep", done.Backup); code != 0 || !strings.Contains(out, "no problems") {
		t.Fatalf("verify with the same config: %d %q", code, out)
	}

	// A wrong password fails the connection (exit 1), and no output shows
	// either password.
	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrong, []byte("not-"+testPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(config(wrong)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runKtape(t, "backup", "--config", cfg)
	// (kfake closes the connection where Kafka would answer
	// SASL_AUTHENTICATION_FAILED.)
	if code != 1 || !strings.Contains(errOut, "SaslAuthenticate") || strings.Contains(out+errOut, testPassword) {
		t.Fatalf("wrong password: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// A password in the environment beats the file's password file, as it
	// would the file's password.
	t.Setenv("KTAPE_SASL_PASSWORD", testPassword)
	if code, out, errOut := runKtape(t, "backup", "--config", cfg); code != 0 {
		t.Fatalf("password from the environment over the file's password_file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Both on one level is a mistake.
	t.Setenv("KTAPE_SASL_PASSWORD_FILE", wrong)
	code, _, errOut = runKtape(t, "backup", "--config", cfg)
	if code != 2 || !strings.Contains(errOut, "both $KTAPE_SASL_PASSWORD and $KTAPE_SASL_PASSWORD_FILE are set") {
		t.Fatalf("two passwords in the environment: exit %d, stderr %q", code, errOut)
	}
}

// A backup through kfake with mutual TLS, configured by flags only, from
// PEM files of a CA made in the test.
func TestBackupTLSFlags(t *testing.T) {
	server, clientCfg := kfaketest.TLSConfigs(t)
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "events"), kfaketest.TLS(server, clientCfg))
	c.Produce(t, "events", 0, &kgo.Record{Value: []byte("hello")})
	dir := t.TempDir()
	ca, cert, key := writeTLSFiles(t, dir, clientCfg)
	repoDir := filepath.Join(dir, "repo")
	code, out, errOut := runKtape(t, "backup", "--brokers", c.Addrs()[0], "--repo", repoDir,
		"--tls-ca", ca, "--tls-cert", cert, "--tls-key", key, "--topics", "events")
	if code != 0 || !strings.Contains(out, "1 topics, 1 partitions") || !strings.Contains(out, "1 records") {
		t.Fatalf("backup over TLS: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Without the CA, the broker's certificate is not trusted.
	code, _, errOut = runKtape(t, "backup", "--brokers", c.Addrs()[0], "--repo", repoDir,
		"--tls", "--tls-cert", cert, "--tls-key", key)
	if code != 1 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("backup without the CA: exit %d, stderr %q", code, errOut)
	}
	// The name checked is --tls-server-name's, not the address's.
	code, _, errOut = runKtape(t, "backup", "--brokers", c.Addrs()[0], "--repo", repoDir,
		"--tls-ca", ca, "--tls-cert", cert, "--tls-key", key, "--tls-server-name", "kafka.invalid")
	if code != 1 || !strings.Contains(errOut, "kafka.invalid") {
		t.Fatalf("backup with a wrong server name: exit %d, stderr %q", code, errOut)
	}
}

// writeTLSFiles writes cfg's CA, client certificate and key as PEM files.
func writeTLSFiles(t *testing.T, dir string, cfg *tls.Config) (ca, cert, key string) {
	t.Helper()
	chain := cfg.Certificates[0].Certificate // leaf, then the CA
	keyDER, err := x509.MarshalPKCS8PrivateKey(cfg.Certificates[0].PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", chain[1]), write("client.pem", "CERTIFICATE", chain[0]), write("client-key.pem", "PRIVATE KEY", keyDER)
}

// promptScript runs a command on a new terminal, types $PROMPT_ANSWER and
// a newline once the terminal shows "password for", and prints all the
// terminal showed; it exits as the command did.
const promptScript = `
import os, pty, select, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out, sent = b"", False
while True:
    r, _, _ = select.select([fd], [], [], 60)
    if not r:
        break
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
    if not sent and b"password for" in out:
        os.write(fd, os.environ["PROMPT_ANSWER"].encode() + b"\n")
        sent = True
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
`

// On a terminal, a SASL password given nowhere else is asked for, and
// what is typed is not echoed.
func TestSASLPasswordPrompt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ktape")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 (for a pseudo-terminal) not installed")
	}
	bin := buildKtape(t)
	c := kfaketest.Start(t, kfaketest.Brokers(1), kfaketest.Topics(1, "orders"),
		kfaketest.SASL("SCRAM-SHA-256", "backup-user", testPassword))
	c.Produce(t, "orders", 0, &kgo.Record{Value: []byte("one")})
	cmd := exec.Command("python3", "-c", promptScript, bin, "backup", "--brokers", c.Addrs()[0], "--repo", t.TempDir(),
		"--sasl-mechanism", "SCRAM-SHA-256", "--sasl-username", "backup-user", "--json")
	env := []string{"PROMPT_ANSWER=" + testPassword}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KTAPE_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SASL password for backup-user: ") || !strings.Contains(string(out), `"message_type":"backup_done"`) {
		t.Fatalf("backup asking for the password: %v\n%s", err, out)
	}
	if strings.Contains(string(out), testPassword) {
		t.Fatalf("the password typed was echoed:\n%s", out)
	}
}
