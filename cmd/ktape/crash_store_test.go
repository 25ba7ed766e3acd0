package main

// Where the crash trials keep their repositories: a local directory each,
// or a prefix each in one S3 bucket served by versitygw. Users keep
// backups in S3, where an object appears whole or not at all, large
// objects go up as multipart uploads that a killed process never
// completes nor aborts, and every read and write is a request: the same
// trials run against both, and judge both the same way.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ktape/ktape/internal/s3test"
	"github.com/ktape/ktape/storage"
	"gocloud.dev/blob"
)

// crashStore hands out the trials' repositories.
type crashStore struct {
	// s3 is versitygw's store URL (s3test.Start), "" for local
	// directories.
	s3 *url.URL
	n  atomic.Int64
	// client lists the bucket's multipart uploads, which no object
	// listing shows.
	client *s3.Client
	bucket *blob.Bucket
}

// localStore keeps each repository in a temporary directory.
func localStore() *crashStore { return &crashStore{} }

// s3Store starts versitygw (setting the AWS credentials ktape's processes
// inherit) and keeps each repository under a prefix of its own in its
// bucket. Without versitygw it returns nil (s3test.Start fails in CI).
func s3Store(t *testing.T) *crashStore {
	raw := s3test.Start(t)
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("s3test URL %q: %v", raw, err)
	}
	cs := &crashStore{s3: u}
	bare := *u
	bare.Path = ""
	if cs.bucket, err = blob.OpenBucket(context.Background(), bare.String()); err != nil {
		t.Fatalf("open %s: %v", bare.String(), err)
	}
	t.Cleanup(func() { cs.bucket.Close() })
	if !cs.bucket.As(&cs.client) {
		t.Fatal("gocloud's s3 bucket gives no *s3.Client")
	}
	return cs
}

func (cs *crashStore) String() string {
	if cs.s3 == nil {
		return "local"
	}
	return "s3"
}

// newRepo returns a new, empty repository location for kind: a temporary
// directory, or a prefix of the bucket no other trial uses.
func (cs *crashStore) newRepo(t *testing.T, kind string) string {
	if cs.s3 == nil {
		return t.TempDir()
	}
	u := *cs.s3
	u.Path = fmt.Sprintf("/crash/%s/%d", kind, cs.n.Add(1))
	return u.String()
}

// prefix is the key prefix (in the bucket) of the repository at loc.
func (cs *crashStore) prefix(t *testing.T, loc string) string {
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Trim(u.Path, "/") + "/"
}

// copyRepo copies the repository at from into a new location for kind
// (a restore writes its log into its repository, so each trial restores
// from a copy of its own).
func (cs *crashStore) copyRepo(t *testing.T, kind, from string) string {
	if cs.s3 == nil {
		return copyDir(t, from)
	}
	ctx := context.Background()
	to := cs.newRepo(t, kind)
	src, err := storage.OpenExisting(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := storage.Open(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	keys, err := src.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		b, err := src.Get(ctx, k)
		if err == nil {
			err = dst.Create(ctx, k, b)
		}
		if err != nil {
			t.Fatalf("copy %s from %s to %s: %v", k, from, to, err)
		}
	}
	return to
}

// uploads counts the multipart uploads begun and neither completed nor
// aborted under the repository at loc: parts held by the store, in no
// object, until someone aborts them (or a bucket lifecycle rule does).
// A local store has none.
func (cs *crashStore) uploads(t *testing.T, loc string) int {
	if cs.s3 == nil {
		return 0
	}
	n := 0
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(cs.s3.Host), Prefix: aws.String(cs.prefix(t, loc))}
	for {
		out, err := cs.client.ListMultipartUploads(context.Background(), in)
		if err != nil {
			t.Fatalf("list the multipart uploads under %s: %v", loc, err)
		}
		n += len(out.Uploads)
		if !aws.ToBool(out.IsTruncated) {
			return n
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// leftovers lists what a finished trial left in its repository at loc
// besides its backups and logs and adds it to the tally: segment and
// index objects no backup or checkpoint names (storage a prune would
// reclaim; nothing reads them) and unfinished multipart uploads. Neither
// fails the trial.
func (cs *crashStore) leftovers(t *testing.T, loc string, tally *crashTally) {
	t.Helper()
	ctx := context.Background()
	st, r := openRepo(t, loc)
	all, err := st.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	orphans, err := r.Unreferenced(ctx)
	if err != nil {
		t.Fatal(err)
	}
	up := cs.uploads(t, loc)
	tally.Objects += len(all)
	tally.FinalOrphans += len(orphans)
	tally.OpenUploads += up
	if len(orphans) > 0 || up > 0 {
		t.Logf("left in the repository: %d of %d objects unreferenced (%v), %d multipart uploads unfinished", len(orphans), len(all), orphans, up)
	}
}

// crashStoreSelection reads KTAPE_CRASH_STORE: which stores the trials
// use. Empty runs the local trials and a few on S3 (CI); "local" or "s3"
// only those (the long forms); "all" both, each with every trial.
func crashStoreSelection(t *testing.T) string {
	switch v := os.Getenv("KTAPE_CRASH_STORE"); v {
	case "", "local", "s3", "all":
		return v
	default:
		t.Fatalf("KTAPE_CRASH_STORE=%q: want local, s3 or all", v)
		return ""
	}
}
