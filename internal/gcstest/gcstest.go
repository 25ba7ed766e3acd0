// Package gcstest serves Google Cloud Storage for tests: fake-gcs-server, a
// GCS emulator speaking the JSON API (scripts/test.sh builds it), on
// loopback, with its objects in memory.
//
// gocloud.dev's gcsblob finds an emulator through STORAGE_EMULATOR_HOST
// alone: with it set, it talks plain HTTP to that host without
// authentication and never looks for Google credentials, so the gs:// URL
// Start returns is an ordinary one.
package gcstest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Bucket is the bucket Start creates.
const Bucket = "ktape"

// Start starts fake-gcs-server, stopped when the test ends, creates
// Bucket in it and returns a store URL with the bucket and a prefix. It
// points STORAGE_EMULATOR_HOST at the server in the test's environment (so
// the test must not be parallel). Without fake-gcs-server it returns ""
// outside CI and fails the test in CI.
func Start(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("KTAPE_FAKE_GCS_SERVER")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache", "ktape-tools", "fake-gcs-server")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("fake-gcs-server is required in CI (scripts/test.sh installs it): %v", err)
		}
		t.Logf("fake-gcs-server not installed (%v): GCS not tested", err)
		return ""
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	host, port, _ := net.SplitHostPort(addr)
	base := "http://" + addr
	// -external-url: resumable uploads continue at the URL the server
	// returns, which must be this one, not the 0.0.0.0 it would guess.
	cmd := exec.Command(bin, "-scheme", "http", "-host", host, "-port", port,
		"-backend", "memory", "-external-url", base, "-public-host", addr, "-log-level", "error")
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start fake-gcs-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })

	// The bucket's creation doubles as the readiness check: it succeeds
	// once the server answers.
	body := fmt.Sprintf(`{"name":%q}`, Bucket)
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := post(base+"/storage/v1/b?project=ktape", body)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fake-gcs-server did not start: %v\n%s", err, stderr.String())
		}
		select {
		case werr := <-exited:
			exited <- werr // for the cleanup
			t.Fatalf("fake-gcs-server exited (%v): %s", werr, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Setenv("STORAGE_EMULATOR_HOST", addr)
	return fmt.Sprintf("gs://%s/some/prefix", Bucket)
}

// post sends a JSON body and fails on any status but 200.
func post(url, body string) error {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, msg)
	}
	return nil
}
