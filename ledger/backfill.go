package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storesync/storesync/appstore"
)

// Kinds of backfill window: who asked for it.
const (
	BackfillSweep  = "sweep"  // the scheduled sweep (STORESYNC_BACKFILL_CRON)
	BackfillManual = "manual" // `storesync backfill`
)

// BackfillWindow is one window of Get Notification History paged by a
// backfill, as recorded in backfill_windows. A window is identified by
// (Environment, Start, End, OnlyFailures).
type BackfillWindow struct {
	ID           int64                `json:"id"`
	Environment  appstore.Environment `json:"environment"`
	Kind         string               `json:"kind"`
	Start        time.Time            `json:"start"`
	End          time.Time            `json:"end"`
	OnlyFailures bool                 `json:"onlyFailures,omitempty"`
	// PaginationToken is the token of the next page to ask for ("" before
	// the first page and once finished).
	PaginationToken string     `json:"-"`
	Pages           int        `json:"pages"`
	Seen            int        `json:"seen"`
	New             int        `json:"new"`
	Restarts        int        `json:"restarts,omitempty"`
	StartedAt       time.Time  `json:"startedAt"`
	FinishedAt      *time.Time `json:"finishedAt,omitempty"`
	// CompleteUntil is, once finished, how far the window is known
	// complete: End, or for a partial window (read before End had passed on
	// Apple's clock) the moment it was read. Nil while unfinished.
	CompleteUntil *time.Time `json:"completeUntil,omitempty"`
	Error         string     `json:"error,omitempty"`
}

const backfillWindowSelect = `SELECT id, environment, kind, start_date, end_date, only_failures, pagination_token,
	pages, seen, new, restarts, started_at, finished_at, complete_until, COALESCE(error, '') FROM backfill_windows`

func collectBackfillWindows(rows pgx.Rows) ([]BackfillWindow, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (BackfillWindow, error) {
		var w BackfillWindow
		var env string
		err := row.Scan(&w.ID, &env, &w.Kind, &w.Start, &w.End, &w.OnlyFailures, &w.PaginationToken,
			&w.Pages, &w.Seen, &w.New, &w.Restarts, &w.StartedAt, &w.FinishedAt, &w.CompleteUntil, &w.Error)
		w.Environment = appstore.Environment(env)
		w.Start, w.End, w.StartedAt = w.Start.UTC(), w.End.UTC(), w.StartedAt.UTC()
		for _, tp := range []**time.Time{&w.FinishedAt, &w.CompleteUntil} {
			if *tp != nil {
				t := (*tp).UTC()
				*tp = &t
			}
		}
		return w, err
	})
}

// OpenBackfillWindow returns the recorded window with w's environment,
// bounds and OnlyFailures, creating it (with w.Kind) when new. A window
// that had finished is reset to page again from the start: asking for a
// window twice means someone wants it re-read.
func (l *Ledger) OpenBackfillWindow(ctx context.Context, w BackfillWindow) (*BackfillWindow, error) {
	if !w.Start.Before(w.End) {
		return nil, fmt.Errorf("ledger: backfill window start %s is not before its end %s", w.Start, w.End)
	}
	if w.Kind != BackfillSweep && w.Kind != BackfillManual {
		return nil, fmt.Errorf("ledger: unknown backfill window kind %q", w.Kind)
	}
	rows, err := l.db.Query(ctx, `INSERT INTO backfill_windows (environment, kind, start_date, end_date, only_failures)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (environment, start_date, end_date, only_failures) DO UPDATE SET
			pagination_token = CASE WHEN backfill_windows.finished_at IS NULL THEN backfill_windows.pagination_token ELSE '' END,
			pages = CASE WHEN backfill_windows.finished_at IS NULL THEN backfill_windows.pages ELSE 0 END,
			seen = CASE WHEN backfill_windows.finished_at IS NULL THEN backfill_windows.seen ELSE 0 END,
			new = CASE WHEN backfill_windows.finished_at IS NULL THEN backfill_windows.new ELSE 0 END,
			started_at = CASE WHEN backfill_windows.finished_at IS NULL THEN backfill_windows.started_at ELSE now() END,
			finished_at = NULL, complete_until = NULL, error = NULL
		RETURNING id, environment, kind, start_date, end_date, only_failures, pagination_token,
			pages, seen, new, restarts, started_at, finished_at, complete_until, COALESCE(error, '')`,
		string(w.Environment), w.Kind, w.Start, w.End, w.OnlyFailures)
	if err != nil {
		return nil, fmt.Errorf("ledger: opening backfill window: %w", err)
	}
	ws, err := collectBackfillWindows(rows)
	if err != nil {
		return nil, fmt.Errorf("ledger: opening backfill window: %w", err)
	}
	return &ws[0], nil
}

// BackfillWindowByID returns one recorded window, or ErrNotFound.
func (l *Ledger) BackfillWindowByID(ctx context.Context, id int64) (*BackfillWindow, error) {
	rows, err := l.db.Query(ctx, backfillWindowSelect+` WHERE id = $1`, id)
	if err != nil {
		return nil, err
	}
	ws, err := collectBackfillWindows(rows)
	if err != nil {
		return nil, err
	}
	if len(ws) == 0 {
		return nil, ErrNotFound
	}
	return &ws[0], nil
}

// SaveBackfillPage records one page of a window: nextToken is the token
// of the page to ask for next ("" after the last), seen the notifications
// on the page and fresh how many of them were new to the ledger. Call it on
// WithTx of the transaction that stored the page's notifications, so a crash
// resumes exactly after the last stored page.
func (l *Ledger) SaveBackfillPage(ctx context.Context, id int64, nextToken string, seen, fresh int) error {
	tag, err := l.db.Exec(ctx, `UPDATE backfill_windows SET pagination_token = $2, pages = pages + 1,
		seen = seen + $3, new = new + $4 WHERE id = $1`, id, nextToken, seen, fresh)
	if err == nil && tag.RowsAffected() != 1 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("ledger: saving backfill window %d page: %w", id, err)
	}
	return nil
}

// RestartBackfillWindow makes a window page again from its first page
// (Apple expired its pagination token): the token, pages and seen are
// reset and the restart counted; new keeps counting, since what was new
// stays stored.
func (l *Ledger) RestartBackfillWindow(ctx context.Context, id int64) error {
	_, err := l.db.Exec(ctx, `UPDATE backfill_windows SET pagination_token = '', pages = 0, seen = 0,
		restarts = restarts + 1 WHERE id = $1`, id)
	return err
}

// FailBackfillWindow records why a window gave up (it stays unfinished, so
// the watermark does not pass it).
func (l *Ledger) FailBackfillWindow(ctx context.Context, id int64, reason string) error {
	_, err := l.db.Exec(ctx, `UPDATE backfill_windows SET error = $2 WHERE id = $1`, id, reason)
	return err
}

// FinishBackfillWindow marks a window finished, its last page read at
// readAt on Apple's clock, and, for a full window (not only-failures),
// advances its environment's watermark across every contiguous finished
// full window. The first full window to finish in an environment starts
// the watermark at its own start. It returns the watermark after the update
// (zero when the environment has none).
//
// A window is complete up to its end only when that end had passed when it
// was read: one read earlier (a sweep whose last window ends at "now" or
// after it) is partial, complete until readAt (CompleteUntil), since Apple
// cannot list what was not signed yet. The watermark stops at readAt and
// the next sweep starts there (LastSweepEnd), so the rest of the window is
// read once its time has passed and the watermark moves over it then,
// once; a zero readAt means the end had passed.
//
// Its statements hold the watermark's row lock, which serialises concurrent
// finishers, until they commit together: it must run in the caller's
// transaction (call it on Ledger.WithTx of the one that saved the window's
// last page). On a pool-backed ledger it returns an error wrapping
// ErrNotInTransaction.
func (l *Ledger) FinishBackfillWindow(ctx context.Context, id int64, readAt time.Time) (time.Time, error) {
	if err := l.requireTx("FinishBackfillWindow"); err != nil {
		return time.Time{}, err
	}
	var env string
	var start time.Time
	var onlyFailures bool
	var read *time.Time
	if !readAt.IsZero() {
		read = &readAt
	}
	err := l.db.QueryRow(ctx, `UPDATE backfill_windows SET finished_at = now(), pagination_token = '', error = NULL,
			complete_until = GREATEST(start_date, LEAST(end_date, COALESCE($2, end_date)))
		WHERE id = $1 RETURNING environment, start_date, only_failures`, id, read).Scan(&env, &start, &onlyFailures)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, fmt.Errorf("ledger: backfill window %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("ledger: finishing backfill window %d: %w", id, err)
	}
	if onlyFailures {
		wm, _, err := l.BackfillWatermark(ctx, appstore.Environment(env))
		return wm, err
	}
	if _, err := l.db.Exec(ctx, `INSERT INTO backfill_watermarks (environment, complete_until) VALUES ($1, $2)
		ON CONFLICT (environment) DO NOTHING`, env, start); err != nil {
		return time.Time{}, fmt.Errorf("ledger: starting the backfill watermark: %w", err)
	}
	var wm time.Time
	// The row lock serialises concurrent finishers, and each statement
	// below sees windows the others committed.
	if err := l.db.QueryRow(ctx, `SELECT complete_until FROM backfill_watermarks WHERE environment = $1 FOR UPDATE`,
		env).Scan(&wm); err != nil {
		return time.Time{}, err
	}
	for {
		var next *time.Time
		if err := l.db.QueryRow(ctx, `SELECT max(complete_until) FROM backfill_windows WHERE environment = $1
			AND NOT only_failures AND finished_at IS NOT NULL AND start_date <= $2 AND complete_until > $2`,
			env, wm).Scan(&next); err != nil {
			return time.Time{}, err
		}
		if next == nil {
			break
		}
		wm = *next
	}
	if _, err := l.db.Exec(ctx, `UPDATE backfill_watermarks SET complete_until = $2, updated_at = now()
		WHERE environment = $1 AND complete_until < $2`, env, wm); err != nil {
		return time.Time{}, err
	}
	return wm.UTC(), nil
}

// BackfillWatermark returns the time up to which the ledger is known to
// hold every notification Apple sent in env, and false when no full window
// has finished there yet.
func (l *Ledger) BackfillWatermark(ctx context.Context, env appstore.Environment) (time.Time, bool, error) {
	var wm time.Time
	err := l.db.QueryRow(ctx, `SELECT complete_until FROM backfill_watermarks WHERE environment = $1`, string(env)).Scan(&wm)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	return wm.UTC(), true, nil
}

// BackfillWatermarks returns the watermark of every environment that has
// one.
func (l *Ledger) BackfillWatermarks(ctx context.Context) (map[appstore.Environment]time.Time, error) {
	rows, err := l.db.Query(ctx, `SELECT environment, complete_until FROM backfill_watermarks ORDER BY environment`)
	if err != nil {
		return nil, err
	}
	out := map[appstore.Environment]time.Time{}
	var env string
	var wm time.Time
	_, err = pgx.ForEachRow(rows, []any{&env, &wm}, func() error {
		out[appstore.Environment(env)] = wm.UTC()
		return nil
	})
	return out, err
}

// LastSweepEnd returns the end of the latest scheduled-sweep window of env,
// finished or not, and false when there is none: the next sweep starts
// there (minus an overlap), so sweeps tile time even when one is still
// running or failed. A finished partial window ends, for this, where it is
// complete (CompleteUntil): the next sweep reads the rest of it, so no
// stretch is skipped.
func (l *Ledger) LastSweepEnd(ctx context.Context, env appstore.Environment) (time.Time, bool, error) {
	var end *time.Time
	err := l.db.QueryRow(ctx, `SELECT max(COALESCE(complete_until, end_date)) FROM backfill_windows
		WHERE environment = $1 AND kind = 'sweep'`, string(env)).Scan(&end)
	if err != nil || end == nil {
		return time.Time{}, false, err
	}
	return end.UTC(), true, nil
}

// FindBackfillWindow returns the window of env ending at end that a job
// asked to start at start opened (its start may have been moved later, into
// Apple's look-back), or ErrNotFound.
func (l *Ledger) FindBackfillWindow(ctx context.Context, env appstore.Environment, start, end time.Time, onlyFailures bool) (*BackfillWindow, error) {
	rows, err := l.db.Query(ctx, backfillWindowSelect+` WHERE environment = $1 AND end_date = $2 AND only_failures = $3
		AND start_date >= $4 ORDER BY start_date LIMIT 1`, string(env), end, onlyFailures, start)
	if err != nil {
		return nil, err
	}
	ws, err := collectBackfillWindows(rows)
	if err != nil {
		return nil, err
	}
	if len(ws) == 0 {
		return nil, ErrNotFound
	}
	return &ws[0], nil
}

// RecentBackfillWindows returns the latest limit windows, newest first.
func (l *Ledger) RecentBackfillWindows(ctx context.Context, limit int) ([]BackfillWindow, error) {
	rows, err := l.db.Query(ctx, backfillWindowSelect+` ORDER BY started_at DESC, id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return collectBackfillWindows(rows)
}
