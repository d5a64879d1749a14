// Command run runs every test of the repository, as the README's test
// command: gotestsum (a tool of go.mod) runs go test -race on both modules
// of the workspace and prints as go test does, and a last line names every
// missing service or program that made tests skip, with how to install it.
// Arguments replace the default package patterns and flags. It exits as go
// test would.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		if code == 0 {
			code = 2
		}
	}
	os.Exit(code)
}

func run(args []string) (int, error) {
	if len(args) == 0 {
		args = []string{"-race", "./...", "./cmd/recovery-load/..."}
	}
	dir, err := os.MkdirTemp("", "sms-recovery-tests-")
	if err != nil {
		return 2, err
	}
	defer os.RemoveAll(dir)
	events := filepath.Join(dir, "events.json")
	cmd := exec.Command("go", append([]string{"tool", "gotestsum", "--format", "standard-quiet",
		"--hide-summary", "skipped", "--jsonfile", events, "--"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), testenv.RecordDir+"="+dir)
	code := 0
	var exit *exec.ExitError
	if err := cmd.Run(); errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		return 2, err
	}
	f, err := os.Open(events)
	if err != nil {
		return code, err
	}
	defer f.Close()
	skipped, err := testenv.CountSkips(f)
	if err != nil {
		return code, err
	}
	needs, err := testenv.ReadNeeds(dir)
	if err != nil {
		return code, err
	}
	fmt.Println(testenv.Summary(skipped, needs))
	return code, nil
}
