package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ReadNeeds reads what Missing recorded in dir.
func ReadNeeds(dir string) ([]Need, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	var needs []Need
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var n Need
			if json.Unmarshal(sc.Bytes(), &n) == nil && n.Need != "" {
				needs = append(needs, n)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return needs, nil
}

// CountSkips counts the tests that a stream of `go test -json` events
// reports as skipped.
func CountSkips(events io.Reader) (int, error) {
	n := 0
	dec := json.NewDecoder(events)
	for {
		var ev struct{ Action, Test string }
		if err := dec.Decode(&ev); err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, err
		}
		if ev.Action == "skip" && ev.Test != "" {
			n++
		}
	}
}

// Summary is the line the test command ends with: how many tests skipped,
// and every missing thing they needed with how to get it, most needed
// first. Skips that Missing did not record (a test that does not apply
// here, -short) are counted as skipped by design.
func Summary(skipped int, needs []Need) string {
	if skipped == 0 {
		return "Skipped: none."
	}
	count := map[Need]int{}
	for _, n := range needs {
		count[n]++
	}
	kinds := make([]Need, 0, len(count))
	for n := range count {
		kinds = append(kinds, n)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if count[kinds[i]] != count[kinds[j]] {
			return count[kinds[i]] > count[kinds[j]]
		}
		return kinds[i].Need < kinds[j].Need
	})
	parts := make([]string, 0, len(kinds)+1)
	for _, n := range kinds {
		parts = append(parts, fmt.Sprintf("%s (%s): %d", n.Need, n.Fix, count[n]))
	}
	if other := skipped - len(needs); other > 0 {
		parts = append(parts, fmt.Sprintf("by design (run with -v to see why): %d", other))
	}
	tests := "tests"
	if skipped == 1 {
		tests = "test"
	}
	return fmt.Sprintf("Skipped %d %s. %s.", skipped, tests, strings.Join(parts, "; "))
}
