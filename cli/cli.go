// Package cli adds the support subcommand to the caddy command:
//
//	caddy sms-recovery locks [--kind account|ip|prefix] [--clear] [--json]
//	caddy sms-recovery lock <account> [--for <duration>]
//	caddy sms-recovery unlock <account>
//	caddy sms-recovery unblock <ip or IPv6 /64>
//	caddy sms-recovery unblock-prefix <+prefix>
//	caddy sms-recovery acknowledge-loss
//	caddy sms-recovery trace <reference> [--clear] [--json]
//
// It talks to the admin API of a running Caddy as caddy reload and caddy
// stop do: at --address if given, else at the admin address of the config
// named by --config (and --adapter), else at Caddy's default,
// localhost:2019. The admin routes it calls are those of package admin.
package cli

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/storage"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "sms-recovery",
		Usage: "locks|lock|unlock|unblock|unblock-prefix|acknowledge-loss|trace [--address <admin>] [--config <path> [--adapter <name>]]",
		Short: "Lists, imposes and lifts the account locks, IP blocks and prefix blocks of SMS recovery",
		Long: `
Lists and lifts the account locks, IP blocks and destination prefix blocks
of the sms_recovery handlers of a running Caddy, and locks an account's
recovery, through its admin API:

  caddy sms-recovery locks [--kind account|ip|prefix] [--clear] [--json]
  caddy sms-recovery lock <account> [--for <duration>]
  caddy sms-recovery unlock <account>
  caddy sms-recovery unblock <ip address or IPv6 /64>
  caddy sms-recovery unblock-prefix <destination prefix, such as +447400>
  caddy sms-recovery acknowledge-loss
  caddy sms-recovery trace <support reference> [--clear] [--json]

The listing masks accounts and addresses (a*****@example.com, 192.0.2.*)
unless --clear asks for them whole. A lock support imposes holds until it
is lifted, or for --for (30m, 24h, 7d); the account's phone is told once.
Lifting also gives fresh tries: the count of wrong codes starts again.

A prefix block stops the codes to numbers under a destination prefix whose
codes went out but were not entered (SMS traffic pumping); its third block
holds until support lifts it. Lifting it starts its count of blocks again.

When the Redis storage has lost its state (a restart without data, a
failover to a replica without it, a flush), recovery answers 503 until an
operator acknowledges the loss with acknowledge-loss: the locks and counts
that were lost stay lost, so re-impose locks on accounts known to be under
attack.

Every refusal the gateway answers, and every lock notice, gives a support
reference such as K7QMX-2XD9T; trace prints what happened under it: times,
events and answers, the masked phone number, the limit or lock involved.
It never holds a code, a token or a password.

The admin endpoint is found as caddy reload and caddy stop find it: the
--address flag if given; otherwise the admin address of the config named by
--config (and --adapter); otherwise Caddy's default, localhost:2019.
`,
		CobraFunc: func(cmd *cobra.Command) { attach(cmd, time.Now) },
	})
}

// attach makes cmd the parent of the locks, lock, unlock and unblock
// commands, which tell the time left on a lock by now.
func attach(cmd *cobra.Command, now func() time.Time) {
	f := cmd.PersistentFlags()
	f.String("address", "", "Address of the administration endpoint, if different from the config")
	f.StringP("config", "c", "", "Configuration file whose admin address to use")
	f.StringP("adapter", "a", "", "Name of the config adapter of --config")
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }

	locks := &cobra.Command{
		Use:   "locks",
		Short: "Lists the account locks and IP blocks in force",
		Args:  cobra.NoArgs,
		RunE:  run(now, listLocks),
	}
	locks.Flags().String("kind", "", "Only locks of this kind: account, ip or prefix")
	locks.Flags().Bool("json", false, "Print the admin API's JSON instead of a table")
	locks.Flags().Bool("clear", false, "Show accounts and addresses whole instead of masked")
	lock := &cobra.Command{
		Use:   "lock <account>",
		Short: "Locks an account's recovery until it is lifted, or for --for; its phone is told once",
		Args:  cobra.ExactArgs(1),
		RunE:  run(now, impose),
	}
	lock.Flags().String("for", "", "How long the lock holds (e.g. 30m, 24h, 7d); default: until lifted")
	traceCmd := &cobra.Command{
		Use:   "trace <reference>",
		Short: "Shows what happened under a support reference: times, events, answers, masked number",
		Args:  cobra.ExactArgs(1),
		RunE:  run(now, trace),
	}
	traceCmd.Flags().Bool("json", false, "Print the admin API's JSON instead of a timeline")
	traceCmd.Flags().Bool("clear", false, "Show addresses and accounts whole instead of masked")
	cmd.AddCommand(locks, lock, traceCmd, &cobra.Command{
		Use:   "unlock <account>",
		Short: "Lifts the lock on an account's recovery and gives it fresh tries",
		Args:  cobra.ExactArgs(1),
		RunE:  run(now, lift(recovery.KindAccount)),
	}, &cobra.Command{
		Use:   "unblock <ip>",
		Short: "Lifts the block on a client IP address or IPv6 /64 and gives it fresh tries",
		Args:  cobra.ExactArgs(1),
		RunE:  run(now, lift(recovery.KindIP)),
	}, &cobra.Command{
		Use:   "unblock-prefix <prefix>",
		Short: "Lifts the block on a destination prefix such as +447400; its next block is a first one again",
		Args:  cobra.ExactArgs(1),
		RunE:  run(now, lift(recovery.KindPrefix)),
	}, &cobra.Command{
		Use:   "acknowledge-loss",
		Short: "Lets recovery work again after the storage lost its state",
		Args:  cobra.NoArgs,
		RunE:  run(now, acknowledgeLoss),
	})
}

// lossPath is where the admin API serves the storage's losses of state.
const lossPath = "/sms-recovery/store-loss"

// acknowledgeLoss acknowledges the storage's loss of state.
func acknowledgeLoss(cmd *cobra.Command, c *client, _ []string) error {
	var got struct {
		Acknowledged int `json:"acknowledged"`
	}
	if err := c.do(http.MethodDelete, lossPath, &got); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Acknowledged the loss of state of %d storage(s); recovery works again. Locks and counts that were lost stay lost.\n", got.Acknowledged)
	return nil
}

// locksPath is where the admin API serves the locks.
const locksPath = "/sms-recovery/locks"

// run adapts a subcommand to cobra: its error is printed once, as a plain
// line on stderr a person can read, and makes the exit status 1.
func run(now func() time.Time, f func(*cobra.Command, *client, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cmd.SilenceUsage = true
		cmd.SilenceErrors = true
		c, err := newClient(cmd, now)
		if err == nil {
			err = f(cmd, c, args)
		}
		if err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "sms-recovery:", err)
		}
		return err
	}
}

// client calls one admin endpoint.
type client struct {
	addr string
	now  func() time.Time
}

func newClient(cmd *cobra.Command, now func() time.Time) (*client, error) {
	f := cmd.Flags()
	address, _ := f.GetString("address")
	config, _ := f.GetString("config")
	adapter, _ := f.GetString("adapter")
	addr, err := caddycmd.DetermineAdminAPIAddress(address, nil, config, adapter)
	if err != nil {
		return nil, fmt.Errorf("finding the admin endpoint: %w", err)
	}
	return &client{addr: addr, now: now}, nil
}

// adminStatus reads the status and body of a refusal from the error of
// caddycmd.AdminAPIRequest, which carries them in its text.
var adminStatus = regexp.MustCompile(`HTTP (\d{3}): (.*)$`)

// do sends one request and decodes a 2xx JSON answer into out. A refusal
// becomes an error that holds the admin API's own message.
func (c *client) do(method, uri string, out any) error {
	resp, err := caddycmd.AdminAPIRequest(c.addr, method, uri, nil, nil)
	if err != nil {
		m := adminStatus.FindStringSubmatch(strings.TrimSpace(err.Error()))
		if m == nil {
			return fmt.Errorf("cannot reach Caddy's admin endpoint at %s (is Caddy running? give its admin address with --address or --config): %w", c.addr, err)
		}
		status, _ := strconv.Atoi(m[1])
		return &refusal{status: status, message: errorMessage(m[2])}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading the answer of %s: %w", c.addr, err)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("the admin endpoint at %s gave an answer this command cannot read (does its Caddy have the sms_recovery module?): %w", c.addr, err)
	}
	return nil
}

// refusal is an answer of the admin API with an error status.
type refusal struct {
	status  int
	message string
}

func (r *refusal) Error() string {
	switch r.status {
	case http.StatusNotFound:
		return r.message
	case http.StatusServiceUnavailable:
		return "the storage of the locks does not answer: " + r.message
	}
	return fmt.Sprintf("the admin endpoint refused (%d %s): %s", r.status, http.StatusText(r.status), r.message)
}

// errorMessage takes the message out of the admin API's {"error": "..."}
// body, or gives the body as it is.
func errorMessage(body string) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(body), &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(body)
}

// listLocks prints the locks in force as a table, or as JSON.
func listLocks(cmd *cobra.Command, c *client, _ []string) error {
	kind, _ := cmd.Flags().GetString("kind")
	if kind != "" && kind != recovery.KindAccount && kind != recovery.KindIP && kind != recovery.KindPrefix {
		return fmt.Errorf("--kind %q: want %s, %s or %s", kind, recovery.KindAccount, recovery.KindIP, recovery.KindPrefix)
	}
	inClear, _ := cmd.Flags().GetBool("clear")
	uri := locksPath
	if inClear {
		uri += "?clear=1"
	}
	var all []recovery.Lock
	if err := c.do(http.MethodGet, uri, &all); err != nil {
		if r, ok := errors.AsType[*refusal](err); ok && r.status == http.StatusNotFound {
			return fmt.Errorf("the admin endpoint at %s has no %s: its Caddy lacks the sms_recovery module", c.addr, locksPath)
		}
		return err
	}
	locks := all[:0]
	for _, l := range all {
		if kind == "" || l.Kind == kind {
			locks = append(locks, l)
		}
	}
	out := cmd.OutOrStdout()
	if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(locks)
	}
	if len(locks) == 0 {
		what := "locks or blocks"
		switch kind {
		case recovery.KindAccount:
			what = "account locks"
		case recovery.KindIP:
			what = "IP blocks"
		case recovery.KindPrefix:
			what = "prefix blocks"
		}
		fmt.Fprintf(out, "No %s in force.\n", what)
		return nil
	}
	now := c.now()
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tKEY\tREASON\tUNTIL\tSTRIKES\tPERMANENT")
	for _, l := range locks {
		key := l.Key
		if l.Country != "" {
			key += " (" + l.Country + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", l.Kind, key, cmp.Or(l.Reason, "-"), until(l.Until, l.Permanent, now), l.Strikes, yesNo(l.Permanent))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nLift one with: caddy sms-recovery unlock <account>, unblock <ip> or unblock-prefix <prefix>\n")
	if !inClear {
		fmt.Fprintf(out, "Accounts and addresses are masked: list them whole with --clear.\n")
	}
	return nil
}

// until says when a lock ends, for a person.
func until(t time.Time, permanent bool, now time.Time) string {
	switch {
	case permanent:
		return "until lifted"
	case t.IsZero():
		return "-"
	}
	return fmt.Sprintf("%s (in %s)", t.UTC().Format(time.RFC3339), remaining(t.Sub(now)))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// remaining rounds a time left to what a person reads: minutes, or seconds
// under a minute.
func remaining(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

// lift returns the unlock or unblock command for kind.
func lift(kind string) func(*cobra.Command, *client, []string) error {
	return func(cmd *cobra.Command, c *client, args []string) error {
		key := strings.TrimSpace(args[0])
		if key == "" {
			return fmt.Errorf("give the %s to lift", liftNames[kind].what)
		}
		var got struct {
			Kind string `json:"kind"`
			Key  string `json:"key"`
		}
		if err := c.do(http.MethodDelete, locksPath+"/"+kind+"/"+escapeKey(key), &got); err != nil {
			return err
		}
		n := liftNames[kind]
		fmt.Fprintf(cmd.OutOrStdout(), "Lifted %s %s; %s.\n", n.lock, got.Key, n.after)
		return nil
	}
}

// liftNames say, for each kind, what a lift takes, what it lifted and what
// follows.
var liftNames = map[string]struct{ what, lock, after string }{
	recovery.KindAccount: {"account", "the lock on account", "it has a fresh set of tries"},
	recovery.KindIP:      {"IP address or IPv6 /64", "the block on client", "it has a fresh set of tries"},
	recovery.KindPrefix:  {"destination prefix (such as +447400)", "the block on destination prefix", "its codes go out again, and its next block is a first one"},
}

// impose is the lock command: it locks an account's recovery until it is
// lifted, or for --for.
func impose(cmd *cobra.Command, c *client, args []string) error {
	account := strings.TrimSpace(args[0])
	if account == "" {
		return errors.New("give the account to lock")
	}
	uri := locksPath + "/" + recovery.KindAccount + "/" + url.PathEscape(account)
	if d, _ := cmd.Flags().GetString("for"); cmd.Flags().Changed("for") {
		uri += "?for=" + url.QueryEscape(d)
	}
	var got struct {
		Key       string    `json:"key"`
		Until     time.Time `json:"until"`
		Permanent bool      `json:"permanent"`
	}
	if err := c.do(http.MethodPut, uri, &got); err != nil {
		return err
	}
	when := "until support lifts it"
	if !got.Permanent {
		when = "until " + until(got.Until, false, c.now())
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Locked the recovery of account %s %s; if the directory has its phone, the phone is told once.\n"+
		"Lift it with: caddy sms-recovery unlock %s\n", got.Key, when, got.Key)
	return nil
}

// escapeKey escapes a key for the admin path, keeping the / of a /64 as the
// admin API reads it.
func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// tracePath is where the admin API serves support's trails.
const tracePath = "/sms-recovery/trace/"

// trace prints what happened under a support reference, oldest first.
func trace(cmd *cobra.Command, c *client, args []string) error {
	ref, err := recovery.ParseTraceRef(args[0])
	if err != nil {
		return fmt.Errorf("%q is not a support reference: it is ten letters and digits, such as K7QMX-2XD9T", args[0])
	}
	inClear, _ := cmd.Flags().GetBool("clear")
	uri := tracePath + ref
	if inClear {
		uri += "?clear=1"
	}
	var t struct {
		Reference string               `json:"reference"`
		Entries   []storage.TrailEntry `json:"entries"`
	}
	if err := c.do(http.MethodGet, uri, &t); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(t)
	}
	fmt.Fprintf(out, "Support reference %s, times in UTC:\n\n", t.Reference)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEVENT\tDETAILS")
	for _, e := range t.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.At.UTC().Format("2006-01-02 15:04:05"), e.Event, cmp.Or(trailDetails(e), "-"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !inClear {
		fmt.Fprintf(out, "\nAddresses are masked and accounts named by their hash: show them with --clear (accounts only where log_accounts is clear).\n")
	}
	return nil
}

// trailDetails says what an entry of a trail holds besides its time and
// event, for a person.
func trailDetails(e storage.TrailEntry) string {
	var d []string
	if e.Status != 0 {
		a := fmt.Sprintf("answered %d %s", e.Status, e.Error)
		if e.RetryAfter > 0 {
			a += ", retry after " + remaining(time.Duration(e.RetryAfter)*time.Second)
		}
		d = append(d, a)
	}
	for _, f := range []struct{ label, v string }{
		{"limit", e.Scope}, {"", e.Reason}, {"phone", e.Phone}, {"from", e.ClientIP},
		{"account", e.Account}, {"account_hash", e.AccountHash}, {"site", e.Site},
	} {
		switch {
		case f.v == "":
		case f.label == "":
			d = append(d, f.v)
		default:
			d = append(d, f.label+" "+f.v)
		}
	}
	return strings.Join(d, "; ")
}
