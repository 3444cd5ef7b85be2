package database

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pipeTx is the transaction Tx hands to its callback. It cuts round trips to
// Postgres, which on a busy machine cost more than the statements themselves:
//
//   - BEGIN is not sent on its own; it goes with the transaction's first statement.
//   - A statement whose result the caller cannot use (an sqlc `:exec` query, known by
//     the "-- name: X :exec" comment sqlc puts first in its SQL) is held back and
//     sent, in order, with the next statement that returns something, or with
//     COMMIT. Nothing the caller sees changes except when a held-back statement's
//     error is reported: by the call that sends it (wrapped with the statement's
//     name), so a failed transaction still fails, at the latest at Commit. (SQL
//     the server cannot even prepare fails the whole batch and is reported under
//     the batch's first name; sqlc has checked generated SQL long before.)
//   - COMMIT goes with the statements still held back.
//
// Statements always reach the server in the order they were issued, so locks
// (pg_advisory_xact_lock and the like, which are `:exec` queries) are still taken
// before anything issued after them runs. Every send is one pgx batch: one write
// and one read on the socket, however many statements it carries.
//
// A pipeTx is used by one goroutine, like pgx.Tx.
type pipeTx struct {
	conn    *pgx.Conn
	begun   bool // BEGIN has been sent
	closed  bool
	pending pgx.Batch
	names   []string // the held-back statements' names, for errors
}

var errNestedTx = errors.New("database: nested transactions (savepoints) are not supported by database.Tx")

// execOnly reports whether sql is an sqlc `:exec` query, and its name.
func execOnly(sql string) (string, bool) {
	rest, ok := strings.CutPrefix(sql, "-- name: ")
	if !ok {
		return "", false
	}
	line, _, _ := strings.Cut(rest, "\n")
	name, kind, _ := strings.Cut(line, " ")
	return name, strings.TrimSpace(kind) == ":exec"
}

// take returns the batch to send: BEGIN when it has not gone yet, the held-back
// statements, and then whatever the caller adds.
func (t *pipeTx) take() (*pgx.Batch, []string) {
	b := &pgx.Batch{}
	var names []string
	if !t.begun {
		b.Queue("begin")
		names = append(names, "BEGIN")
		t.begun = true
	}
	b.QueuedQueries = append(b.QueuedQueries, t.pending.QueuedQueries...)
	names = append(names, t.names...)
	t.pending, t.names = pgx.Batch{}, nil
	return b, names
}

// readAhead reads the results of the first n statements of a sent batch; on an
// error it closes the batch and returns the error, named.
func readAhead(br pgx.BatchResults, names []string, n int) error {
	for i := range n {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("%s: %w", names[i], err)
		}
	}
	return nil
}

// sendWith sends the held-back statements (with BEGIN if it has not gone) and then
// sql, in one batch, and reads the results before sql's. The caller reads sql's
// result and closes the batch.
func (t *pipeTx) sendWith(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	b, names := t.take()
	b.Queue(sql, args...)
	br := t.conn.SendBatch(ctx, b)
	if err := readAhead(br, names, b.Len()-1); err != nil {
		return nil, err
	}
	return br, nil
}

// flush sends whatever is held back (with BEGIN if it has not gone) and waits.
func (t *pipeTx) flush(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	if t.begun && t.pending.Len() == 0 {
		return nil
	}
	b, names := t.take()
	br := t.conn.SendBatch(ctx, b)
	if err := readAhead(br, names, b.Len()); err != nil {
		return err
	}
	return br.Close()
}

func (t *pipeTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.closed {
		return pgconn.CommandTag{}, pgx.ErrTxClosed
	}
	if name, ok := execOnly(sql); ok {
		t.pending.Queue(sql, args...)
		t.names = append(t.names, name)
		return pgconn.CommandTag{}, nil
	}
	if t.begun && t.pending.Len() == 0 {
		return t.conn.Exec(ctx, sql, args...)
	}
	br, err := t.sendWith(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (t *pipeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.closed {
		return nil, pgx.ErrTxClosed
	}
	if t.begun && t.pending.Len() == 0 {
		return t.conn.Query(ctx, sql, args...)
	}
	br, err := t.sendWith(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (t *pipeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return pgxRow{rows: rows, err: err}
}

// batchRows are the rows of a batch's last statement; closing them closes the batch,
// which frees the connection for the next statement.
type batchRows struct {
	pgx.Rows
	br pgx.BatchResults
}

func (r *batchRows) Close() {
	r.Rows.Close()
	_ = r.br.Close()
}

// pgxRow is pgx's QueryRow behaviour over Query: the first row or ErrNoRows, and
// the rows closed after Scan.
type pgxRow struct {
	rows pgx.Rows
	err  error
}

func (r pgxRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// Commit sends COMMIT with the statements still held back. A transaction that
// never sent anything has nothing to commit.
func (t *pipeTx) Commit(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	if !t.begun && t.pending.Len() == 0 {
		t.closed = true
		return nil
	}
	br, err := t.sendWith(ctx, "commit", nil)
	if err != nil {
		// The server skipped the rest of the batch, COMMIT included: the
		// transaction is open and failed. Rollback ends it.
		return err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	t.closed = true
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// Rollback ends the transaction if BEGIN has gone; held-back statements are dropped.
// Like pgx's, it is safe to call after Commit.
func (t *pipeTx) Rollback(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	t.closed = true
	t.pending, t.names = pgx.Batch{}, nil
	if !t.begun {
		return nil
	}
	if t.conn.PgConn().TxStatus() == 'I' {
		return nil
	}
	_, err := t.conn.Exec(ctx, "rollback")
	if err != nil {
		// The connection is in an unknown state: pgxpool closes it on release
		// because it is not idle.
		return err
	}
	return nil
}

func (t *pipeTx) Begin(context.Context) (pgx.Tx, error) { return nil, errNestedTx }

func (t *pipeTx) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.flush(ctx); err != nil {
		return 0, err
	}
	return t.conn.CopyFrom(ctx, table, cols, src)
}

func (t *pipeTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.flush(ctx); err != nil {
		return errBatch{err}
	}
	return t.conn.SendBatch(ctx, b)
}

func (t *pipeTx) LargeObjects() pgx.LargeObjects {
	panic("database: large objects are not used by labelq")
}

func (t *pipeTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.conn.Prepare(ctx, name, sql)
}

// Conn returns the connection, with BEGIN and held-back statements not yet sent
// unless a statement has been issued through the transaction since.
func (t *pipeTx) Conn() *pgx.Conn { return t.conn }

// errBatch is a BatchResults whose every call fails with err.
type errBatch struct{ err error }

func (e errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, e.err }
func (e errBatch) Query() (pgx.Rows, error)         { return nil, e.err }
func (e errBatch) QueryRow() pgx.Row                { return pgxRow{err: e.err} }
func (e errBatch) Close() error                     { return e.err }
func (e errBatch) Tx() pgx.Tx                       { return nil }
