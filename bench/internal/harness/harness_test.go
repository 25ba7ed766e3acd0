package harness

import (
	"bytes"
	"errors"
	"os/exec"
	"slices"
	"testing"
)

func TestHelpers(t *testing.T) {
	if got := Median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3: %v", got)
	}
	if got := Median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of 4: %v", got)
	}
	if got := Median(nil); got != 0 {
		t.Errorf("median of none: %v", got)
	}
	for n, want := range map[int64]string{1 << 30: "1 GiB", 64 << 10: "64 KiB", 3 << 20: "3 MiB", 1000: "1000 B", 1<<30 + 1: "1.00 GiB"} {
		if got := SizeString(n); got != want {
			t.Errorf("SizeString(%d) = %q, want %q", n, got, want)
		}
	}
	items := []string{"a", "b", "c", "d", "e"}
	a, b := Shuffled(items, 1, 0), Shuffled(items, 1, 0)
	if !slices.Equal(a, b) || !slices.Equal(slices.Sorted(slices.Values(a)), items) {
		t.Errorf("Shuffled: %v and %v from %v", a, b, items)
	}
	if _, err := ParseNames("impl", "a,x", []string{"a", "b"}); err == nil {
		t.Errorf("ParseNames accepted x")
	}
	if got, err := ParsePartitions("partitions", "1, 8"); err != nil || !slices.Equal(got, []int{1, 8}) {
		t.Errorf("ParsePartitions: %v, %v", got, err)
	}
	if _, err := ParsePartitions("partitions", "0"); err == nil {
		t.Errorf("ParsePartitions accepted 0")
	}
	if got, err := ParseSizes("size", "1GiB,4KiB"); err != nil || !slices.Equal(got, []int64{1 << 30, 4 << 10}) {
		t.Errorf("ParseSizes: %v, %v", got, err)
	}
	if got := LastLines("a\nb\nc\n", 2); got != "b | c" {
		t.Errorf("LastLines: %q", got)
	}
}

func TestMeasure(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	launcher, err := Launcher(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Grow this process, so that the floor it puts under a direct child's
	// peak RSS shows.
	ballast := make([]byte, 64<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	busy := "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"
	direct, err := Measure("", exec.Command(sh, "-c", busy))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(sh, "-c", busy+"; echo done")
	cmd.Stdout = &out
	launched, err := Measure(launcher, cmd)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []Usage{direct, launched} {
		if u.Wall <= 0 || u.CPU() <= 0 || u.MaxRSSMB <= 0 {
			t.Errorf("implausible usage %+v", u)
		}
	}
	if out.String() != "done\n" {
		t.Errorf("the launched child's stdout: %q", out.String())
	}
	if direct.MaxRSSMB < 64 || launched.MaxRSSMB > 32 {
		t.Errorf("peak RSS of sh: %.1f MB as this process's child, %.1f MB launched; want ≥ 64 and ≤ 32", direct.MaxRSSMB, launched.MaxRSSMB)
	}
	ballast[len(ballast)-1] = 2

	_, err = Measure(launcher, exec.Command(sh, "-c", "exit 3"))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("exit 3 through the launcher: %v", err)
	}
}
