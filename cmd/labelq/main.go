// Command labelq is every labelq process in one binary: the enqueue API, the workers,
// the scheduler, the outbox relay, migrations and admin commands. It only parses the
// command line, wires dependencies and calls Run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labelq/labelq/internal/admin"
	"github.com/labelq/labelq/internal/app"
	"github.com/labelq/labelq/internal/config"
	"github.com/labelq/labelq/internal/database"
	"github.com/labelq/labelq/internal/logging"
	"github.com/labelq/labelq/internal/storage"
)

const usage = `labelq — background jobs for data-annotation platforms

Usage:
  labelq [command] [arguments]

Commands:
  all                 every role in one process (default): api, worker, scheduler, relay
  api                 the enqueue API, /monitoring (asynqmon), /metrics, /healthz, /readyz
  worker              the asynq server running every task handler
  scheduler           periodic tasks: export schedules and maintenance
  relay               moves committed outbox rows into asynq
  migrate up          creates the database if missing and applies migrations
  migrate down [N]    rolls back N migrations (default 1; "all" for every one)
  migrate status      lists migrations and whether each is applied
  token create --org NAME --name NAME [--scopes read,upload,manage] [--expires 720h]
                      creates an API token (and the organization if missing);
                      prints the secret once; scopes default to all three
  token list [--org NAME]
                      lists tokens: id, organization, name, scopes, created,
                      last used, expires, revoked (never a secret)
  token revoke ID     revokes a token; the API refuses it from then on
  storage rekey       seals every storage's credentials and webhook secret again under the first key
                      of LABELQ_SECRET_KEY (after adding a new key in front)
  healthcheck [URL]   exits 0 when URL (default: this host's /healthz) answers 200
  version             prints the version

Configuration is read from the environment:

`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "all"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "-h", "--help", "help":
		_, _ = fmt.Fprint(stdout, usage) // nowhere to report a failed write to stdout
		config.WriteHelp(stdout)
		return 0
	case "version":
		fmt.Fprintln(stdout, app.Version)
		return 0
	case "healthcheck":
		return fail(stderr, healthcheck(args))
	}
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "labelq: configuration is not valid:\n%v\n\nRun `labelq --help` for every variable.\n", err)
		return 2
	}
	log := logging.New(stderr, cfg.LogLevel, cfg.LogFormat)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "migrate":
		return fail(stderr, migrate(ctx, cfg, args, stdout))
	case "token":
		return fail(stderr, token(ctx, cfg, args, stdout))
	case "storage":
		return fail(stderr, storageCmd(ctx, cfg, args, stdout))
	}
	roles := map[string][]app.Role{
		"all": app.AllRoles, "api": {app.RoleAPI}, "worker": {app.RoleWorker},
		"scheduler": {app.RoleScheduler}, "relay": {app.RoleRelay},
	}[cmd]
	if roles == nil {
		fmt.Fprintf(stderr, "labelq: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return fail(stderr, err)
	}
	defer a.Close()
	a.Mount = mountWorkers
	return fail(stderr, a.Run(ctx, roles...))
}

// healthcheck is for container health checks, where no curl is installed.
func healthcheck(args []string) error {
	u := "http://127.0.0.1:8080/healthz"
	if len(args) > 0 {
		u = args[0]
	} else if cfg, err := config.Load(os.Getenv); err == nil {
		if _, port, err := net.SplitHostPort(cfg.HTTPAddr); err == nil {
			u = "http://127.0.0.1:" + port + "/healthz"
		}
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", u, resp.Status)
	}
	return nil
}

func fail(stderr io.Writer, err error) int {
	if err == nil || errors.Is(err, context.Canceled) {
		return 0
	}
	fmt.Fprintf(stderr, "labelq: %v\n", err)
	return 1
}

func migrate(ctx context.Context, cfg *config.Config, args []string, stdout io.Writer) error {
	log := logging.New(stdout, "info", "text")
	sub := "up"
	if len(args) > 0 {
		sub = args[0]
	}
	switch sub {
	case "up":
		if err := database.EnsureDatabase(ctx, cfg.DirectDatabase()); err != nil {
			return err
		}
		return database.MigrateUp(ctx, cfg.DirectDatabase(), log)
	case "down":
		steps := 1
		if len(args) > 1 {
			if args[1] == "all" {
				steps = 0
			} else if n, err := strconv.Atoi(args[1]); err == nil && n > 0 {
				steps = n
			} else {
				return fmt.Errorf("migrate down takes a positive number of steps or \"all\", not %q", args[1])
			}
		}
		return database.MigrateDown(ctx, cfg.DirectDatabase(), steps, log)
	case "status":
		lines, err := database.MigrationStatus(ctx, cfg.DirectDatabase())
		for _, l := range lines {
			fmt.Fprintln(stdout, l)
		}
		return err
	}
	return fmt.Errorf("unknown migrate command %q (want up, down or status)", sub)
}

// storageCmd is `labelq storage rekey`.
func storageCmd(ctx context.Context, cfg *config.Config, args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "rekey" {
		return errors.New("usage: labelq storage rekey")
	}
	keys, err := storage.ParseKeyring(cfg.SecretKey)
	if err != nil {
		return err
	}
	pool, err := database.Open(ctx, cfg.DirectDatabase(), 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := admin.Rekey(ctx, pool, keys)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "resealed=%d\nkey_id=%s\n", n, keys.Current())
	return nil
}

const tokenUsage = `usage: labelq token create --org NAME --name NAME [--scopes read,upload,manage] [--expires 720h]
       labelq token list [--org NAME]
       labelq token revoke ID`

func token(ctx context.Context, cfg *config.Config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(tokenUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("token "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the returned error says what is wrong
	var run func(context.Context, *pgxpool.Pool) error
	switch sub {
	case "create":
		org := fs.String("org", "", "organization name (created if missing)")
		name := fs.String("name", "", "a name for the token, such as upload-endpoint")
		scopes := fs.String("scopes", "read,upload,manage", "comma-separated scopes: read, upload, manage")
		expires := fs.Duration("expires", 0, "expire the token this long from now, such as 720h (default: never)")
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("token create: %w\n%s", err, tokenUsage)
		}
		if *org == "" || *name == "" {
			return errors.New("token create needs --org and --name")
		}
		sc, err := admin.ParseScopes(*scopes)
		if err != nil {
			return fmt.Errorf("token create --scopes: %w", err)
		}
		if *expires < 0 {
			return fmt.Errorf("token create --expires %s: must be positive", *expires)
		}
		run = func(ctx context.Context, pool *pgxpool.Pool) error {
			tok, err := admin.CreateTokenWith(ctx, pool, *org, *name, admin.TokenOptions{Scopes: sc, TTL: *expires})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "organization_id=%d\ntoken_id=%d\nscopes=%s\n", tok.OrgID, tok.TokenID, joinScopes(tok.Scopes))
			if tok.ExpiresAt != nil {
				fmt.Fprintf(stdout, "expires_at=%s\n", tok.ExpiresAt.Format(time.RFC3339))
			}
			fmt.Fprintf(stdout, "token=%s\n", tok.Secret)
			fmt.Fprintln(os.Stderr, "The token is shown once; labelq keeps only its SHA-256.")
			return nil
		}
	case "list":
		org := fs.String("org", "", "only this organization's tokens")
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("token list: %w\n%s", err, tokenUsage)
		}
		run = func(ctx context.Context, pool *pgxpool.Pool) error {
			toks, err := admin.ListTokens(ctx, pool, *org)
			if err != nil {
				return err
			}
			return writeTokens(stdout, toks)
		}
	case "revoke":
		if len(args) != 1 {
			return errors.New("usage: labelq token revoke ID (the id from `labelq token list`)")
		}
		id, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("token revoke: %q is not a token id (a positive number from `labelq token list`)", args[0])
		}
		run = func(ctx context.Context, pool *pgxpool.Pool) error {
			at, err := admin.RevokeToken(ctx, pool, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "token_id=%d\nrevoked_at=%s\n", id, at.UTC().Format(time.RFC3339))
			return nil
		}
	default:
		return fmt.Errorf("unknown token command %q\n%s", sub, tokenUsage)
	}
	pool, err := database.Open(ctx, cfg.DirectDatabase(), 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	return run(ctx, pool)
}

func joinScopes(scopes []admin.Scope) string {
	s := make([]string, len(scopes))
	for i, sc := range scopes {
		s[i] = string(sc)
	}
	return strings.Join(s, ",")
}

// writeTokens prints tokens as a table; times are UTC, "-" when unset.
func writeTokens(w io.Writer, toks []admin.TokenInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tORG\tNAME\tSCOPES\tCREATED\tLAST USED\tEXPIRES\tREVOKED")
	when := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, t := range toks {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.OrgName, t.Name, strings.Join(t.Scopes, ","),
			when(&t.CreatedAt), when(t.LastUsedAt), when(t.ExpiresAt), when(t.RevokedAt))
	}
	return tw.Flush()
}
