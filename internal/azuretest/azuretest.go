// Package azuretest serves Azure Blob Storage for tests: Azurite's blob
// service, Microsoft's emulator (a Node.js program; scripts/test.sh
// installs it with npm), on loopback, with its blobs in memory.
//
// gocloud.dev's azureblob is pointed at it by URL parameters
// (protocol=http, domain=127.0.0.1:PORT, which puts the account name in
// the path as Azurite wants) and by Azurite's fixed development account in
// AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY. azureblob reads those two
// variables once per process, at the first azblob:// URL opened; they are
// the same for every Azurite, so servers started by later tests are
// reached with them too.
package azuretest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Azurite's development account, the same in every installation
// (https://learn.microsoft.com/azure/storage/common/storage-use-azurite).
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Container is the container Start creates.
const Container = "ktape"

// Start starts Azurite's blob service, stopped when the test ends, creates
// Container in it and returns a store URL with the container and a prefix.
// It sets the development account's credentials in the test's environment
// (so the test must not be parallel). Without Azurite it returns ""
// outside CI and fails the test in CI.
func Start(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("KTAPE_AZURITE")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache", "ktape-tools", "azurite", "node_modules", ".bin", "azurite-blob")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Azurite is required in CI (scripts/test.sh installs it): %v", err)
		}
		t.Logf("Azurite not installed (%v): Azure Blob not tested", err)
		return ""
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	host, port, _ := net.SplitHostPort(addr)
	// --skipApiVersionCheck: the Go SDK sends a newer x-ms-version than
	// the Azurite that runs on Node 20 knows, for the same blob API.
	// --disableTelemetry: tests run offline and report nothing.
	// --inMemoryPersistence excludes --location; whatever else Azurite
	// writes goes to its working directory, a temporary one.
	cmd := exec.Command(bin, "--blobHost", host, "--blobPort", port,
		"--inMemoryPersistence", "--silent", "--skipApiVersionCheck", "--disableTelemetry")
	cmd.Dir = t.TempDir()
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start Azurite: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })

	cred, err := container.NewSharedKeyCredential(Account, Key)
	if err != nil {
		t.Fatal(err)
	}
	// Retries off: the loop below is the retry, while Node starts.
	c, err := container.NewClientWithSharedKeyCredential(
		fmt.Sprintf("http://%s/%s/%s", addr, Account, Container), cred,
		&container.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	// The container's creation doubles as the readiness check.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.Create(ctx, nil)
		cancel()
		if err == nil || bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Azurite did not start: %v\n%s", err, stderr.String())
		}
		select {
		case werr := <-exited:
			exited <- werr // for the cleanup
			t.Fatalf("Azurite exited (%v): %s", werr, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Setenv("AZURE_STORAGE_ACCOUNT", Account)
	t.Setenv("AZURE_STORAGE_KEY", Key)
	// A SAS token in the environment would forbid the domain parameter.
	t.Setenv("AZURE_STORAGE_SAS_TOKEN", "")
	return fmt.Sprintf("azblob://%s/some/prefix?protocol=http&domain=%s", Container, addr)
}
