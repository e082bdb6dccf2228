package jobs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/storesync/storesync/appstore"
	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/ledger/budget"
)

// StatusOptions configures ReadStatus.
type StatusOptions struct {
	// Runs is how many recent import, backfill and reconciliation runs to
	// read; default 5.
	Runs int
	// Now is the clock of rates, ETAs and "ago"; default time.Now.
	Now func() time.Time
}

// Status is everything `storesync status` prints and the ops console's
// overview shows, read once by ReadStatus: the two render the same
// numbers because they render this. Each section has its own error: a
// failing read leaves its section empty with Err set, and the others are
// still read.
type Status struct {
	// At is when the status was read (StatusOptions.Now).
	At time.Time

	Queue    []ledger.QueueCount
	QueueErr error

	Imports    []ImportStatus // newest first
	ImportsErr error

	Budget    []budget.Use // per app, environment and endpoint
	BudgetErr error

	Watermarks      []Watermark // by environment name
	BackfillWindows []ledger.BackfillWindow
	BackfillErr     error

	Reconciles   []ReconcileStatus // newest first
	ReconcileErr error

	KeptAside    []ledger.KeptAsideReason
	KeptAsideErr error

	Delivery    []ledger.DeliveryStats // per endpoint
	DeliveryErr error

	Webhook    WebhookStatus
	WebhookErr error
}

// ImportStatus is one import run with its progress, rate and ETA.
type ImportStatus struct {
	ledger.ImportRun
	// State is "file not read completely", "migrating", "migrating: N jobs
	// left" or "finished". The newest run whose rows are all settled is
	// still migrating while jobs of the run work: receipts not yet resolved
	// into rows, and subscriptions Apple named beside the rows (older runs
	// are not asked, to keep status cheap while a big run goes on).
	State string
	// Percent is the share of enqueued rows settled (done or failed).
	Percent float64
	// Rate is rows settled per second since the run started; 0 when the
	// run has finished (no rate to show) or nothing is settled yet.
	Rate float64
	// ETA is when, at Rate, the pending rows are settled; 0 when unknown
	// or finished.
	ETA time.Duration
	// CurrentPercent, CurrentRate and CurrentETA are the same for the
	// first phase: rows whose current state is stored (statuses fetched),
	// which runs ahead of the full history (issue 15). CurrentRate is 0
	// once no pending row waits for its statuses.
	CurrentPercent float64
	CurrentRate    float64
	CurrentETA     time.Duration
}

// RateText is Rate for people: "1,234 rows/s", "2.5 rows/s" or
// "30 rows/min"; "—" while a running import has no rate yet, "" for a
// finished run.
func (s ImportStatus) RateText() string { return importRateText(s.Progress.Pending, s.Rate) }

// ETAText is ETA rounded to the second, or to the minute from ten
// minutes on, where seconds are noise ("—" unknown, "" finished).
func (s ImportStatus) ETAText() string { return importETAText(s.Progress.Pending, s.ETA) }

// CurrentRateText is CurrentRate as RateText shows Rate; "" once every
// row has its current state.
func (s ImportStatus) CurrentRateText() string {
	return importRateText(s.Progress.CurrentWaiting, s.CurrentRate)
}

// CurrentETAText is CurrentETA as ETAText shows ETA; "" once every row
// has its current state.
func (s ImportStatus) CurrentETAText() string {
	return importETAText(s.Progress.CurrentWaiting, s.CurrentETA)
}

func importRateText(waiting int64, rate float64) string {
	switch {
	case waiting == 0:
		return ""
	case rate <= 0:
		return "—"
	case rate >= 10:
		return Commas(int64(rate+0.5)) + " rows/s"
	case rate >= 1:
		return strconv.FormatFloat(rate, 'f', 1, 64) + " rows/s"
	}
	return strconv.FormatFloat(rate*60, 'f', 1, 64) + " rows/min"
}

func importETAText(waiting int64, eta time.Duration) string {
	switch {
	case waiting == 0:
		return ""
	case eta <= 0:
		return "—"
	case eta >= 10*time.Minute:
		return eta.Round(time.Minute).String()
	}
	return eta.Round(time.Second).String()
}

// Watermark is an environment's backfill watermark: every notification
// Apple sent before At is in the ledger.
type Watermark struct {
	Environment appstore.Environment
	At          time.Time
	Ago         time.Duration // Status.At - At, to the minute
}

// ReconcileStatus is one reconciliation run with its state and drift by
// class.
type ReconcileStatus struct {
	*ledger.ReconcileRun
	// State is "running (phase)", "finished", "finished: reason" or
	// "failed: error".
	State string
	// Drift is Drifted sorted by class.
	Drift []DriftCount
}

// DriftCount is how many subscriptions drifted in one class.
type DriftCount struct {
	Class string
	N     int64
}

// WebhookStatus is what the webhook answered over the last minute and the
// last hour (the minutes stored by every `serve`'s WebhookLog).
type WebhookStatus struct {
	LastMinute, LastHour ledger.WebhookAnswers
	// PerSecondMinute and PerSecondHour are the answer rates over each.
	PerSecondMinute, PerSecondHour float64
}

// ReadStatus reads every section of the status from l, concurrently. It
// returns an error only when every section failed (the database is
// unreachable); otherwise the failed sections carry their own error.
func ReadStatus(ctx context.Context, l *ledger.Ledger, opts StatusOptions) (*Status, error) {
	if opts.Runs <= 0 {
		opts.Runs = 5
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Status{At: opts.Now()}
	var wg sync.WaitGroup
	read := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	read(func() { s.Queue, s.QueueErr = l.QueueCounts(ctx) })
	read(func() {
		var runs []ledger.ImportRun
		runs, s.ImportsErr = l.ImportRuns(ctx, opts.Runs)
		for _, r := range runs {
			s.Imports = append(s.Imports, importStatus(r, s.At))
		}
		if len(s.Imports) > 0 && s.Imports[0].State == "finished" && s.ImportsErr == nil {
			newest := &s.Imports[0]
			left, err := unfinishedRunJobs(ctx, l, newest.ID, ResolveReceiptArgs{}.Kind(), ImportArgs{}.Kind(), ImportHistoryArgs{}.Kind())
			if err != nil {
				s.ImportsErr = err
			} else if left > 0 {
				newest.State = fmt.Sprintf("migrating: %d jobs left", left)
			}
		}
	})
	read(func() { s.Budget, s.BudgetErr = budget.Usage(ctx, l.Pool()) })
	read(func() {
		marks, err := l.BackfillWatermarks(ctx)
		if err != nil {
			s.BackfillErr = err
			return
		}
		for env, at := range marks {
			s.Watermarks = append(s.Watermarks, Watermark{Environment: env, At: at, Ago: s.At.Sub(at).Round(time.Minute)})
		}
		sort.Slice(s.Watermarks, func(i, j int) bool { return s.Watermarks[i].Environment < s.Watermarks[j].Environment })
		s.BackfillWindows, s.BackfillErr = l.RecentBackfillWindows(ctx, opts.Runs)
	})
	read(func() {
		runs, err := l.ReconcileRuns(ctx, opts.Runs)
		s.ReconcileErr = err
		for _, r := range runs {
			s.Reconciles = append(s.Reconciles, reconcileStatus(r))
		}
	})
	read(func() { s.KeptAside, s.KeptAsideErr = l.KeptAsideSummary(ctx) })
	read(func() { s.Delivery, s.DeliveryErr = l.DeliveryStatus(ctx) })
	read(func() {
		var err1, err2 error
		s.Webhook.LastMinute, err1 = l.WebhookAnswersSince(ctx, s.At.Add(-time.Minute))
		s.Webhook.LastHour, err2 = l.WebhookAnswersSince(ctx, s.At.Add(-time.Hour))
		s.Webhook.PerSecondMinute = s.Webhook.LastMinute.PerSecond(s.At)
		s.Webhook.PerSecondHour = s.Webhook.LastHour.PerSecond(s.At)
		s.WebhookErr = errors.Join(err1, err2)
	})
	wg.Wait()
	errs := s.Errors()
	if len(errs) == 8 {
		return s, errors.Join(errs...)
	}
	return s, nil
}

// Errors lists the error of every failed section, in the order the
// sections are printed.
func (s *Status) Errors() []error {
	var out []error
	for _, err := range []error{s.QueueErr, s.ImportsErr, s.BudgetErr, s.BackfillErr, s.ReconcileErr, s.KeptAsideErr,
		s.DeliveryErr, s.WebhookErr} {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// DeadLettered is how many events are dead-lettered across endpoints.
func (s *Status) DeadLettered() int64 {
	var n int64
	for _, d := range s.Delivery {
		n += d.Dead
	}
	return n
}

// KeptAsideTotal is how many distinct notifications are kept aside.
func (s *Status) KeptAsideTotal() int64 {
	var n int64
	for _, k := range s.KeptAside {
		n += k.Notifications
	}
	return n
}

// Busy reports whether work is running: an import with pending rows, a
// reconciliation not finished, or jobs waiting or running. Pages refresh
// faster while it is true.
func (s *Status) Busy() bool {
	for _, i := range s.Imports {
		if i.Progress.Pending > 0 {
			return true
		}
	}
	for _, r := range s.Reconciles {
		if r.FinishedAt == nil && r.Error == "" {
			return true
		}
	}
	for _, q := range s.Queue {
		switch q.State {
		case "available", "running", "retryable", "pending":
			if q.Jobs > 0 {
				return true
			}
		}
	}
	return false
}

func importStatus(r ledger.ImportRun, now time.Time) ImportStatus {
	v := ImportStatus{ImportRun: r, State: "migrating"}
	switch {
	case r.FinishedAt == nil:
		v.State = "file not read completely"
	case r.Progress.Pending == 0:
		v.State = "finished"
	}
	settled := r.Progress.Done + r.Progress.Failed
	if total := settled + r.Progress.Pending; total > 0 {
		v.Percent = 100 * float64(settled) / float64(total)
	}
	if r.Progress.Pending > 0 && settled > 0 {
		if el := now.Sub(r.StartedAt).Seconds(); el > 0 {
			v.Rate = float64(settled) / el
			v.ETA = time.Duration(float64(r.Progress.Pending) / v.Rate * float64(time.Second))
		}
	}
	// Rows that failed before their statuses count as settled here too:
	// they will never get a current state.
	current := settled + r.Progress.Pending - r.Progress.CurrentWaiting
	if total := settled + r.Progress.Pending; total > 0 {
		v.CurrentPercent = 100 * float64(current) / float64(total)
	}
	if r.Progress.CurrentWaiting > 0 && current > 0 {
		if el := now.Sub(r.StartedAt).Seconds(); el > 0 {
			v.CurrentRate = float64(current) / el
			v.CurrentETA = time.Duration(float64(r.Progress.CurrentWaiting) / v.CurrentRate * float64(time.Second))
		}
	}
	return v
}

func reconcileStatus(r *ledger.ReconcileRun) ReconcileStatus {
	v := ReconcileStatus{ReconcileRun: r}
	switch {
	case r.Error != "":
		v.State = "failed: " + r.Error
	case r.FinishedAt != nil && r.StoppedReason != "":
		v.State = "finished: " + r.StoppedReason
	case r.FinishedAt != nil:
		v.State = "finished"
	default:
		v.State = "running (" + r.Phase + ")"
	}
	for class, n := range r.Drifted {
		v.Drift = append(v.Drift, DriftCount{class, n})
	}
	sort.Slice(v.Drift, func(i, j int) bool { return v.Drift[i].Class < v.Drift[j].Class })
	return v
}

// Commas formats 1234567 as "1,234,567": the status's and the console's
// one way of writing counts.
func Commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	if neg {
		return "-" + string(b)
	}
	return string(b)
}

// LatencyText writes an answer time for people, to three significant
// digits: "2ms", "512µs", "1.5s"; "—" for 0 (no answers).
func LatencyText(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// RateText writes a per-second rate to two decimals ("0.00" for none).
func RateText(perSecond float64) string {
	return strconv.FormatFloat(perSecond, 'f', 2, 64) + "/s"
}

// RiverStates are River's job states in lifecycle order: the columns of
// the queue table.
var RiverStates = []string{"available", "scheduled", "pending", "running", "retryable", "completed", "cancelled", "discarded"}

// QueueRow is one kind and queue's job counts, in RiverStates order.
type QueueRow struct {
	Kind, Queue string
	Counts      []int64
	// AtLeast marks the counts that are lower bounds (their state holds
	// more than ledger.QueueCountCap jobs).
	AtLeast []bool
}

// Cells are the counts as status and the overview print them: 1,234, or
// 10,001+ for a lower bound.
func (r QueueRow) Cells() []string {
	out := make([]string, len(r.Counts))
	for i, n := range r.Counts {
		out[i] = Commas(n)
		if r.AtLeast[i] {
			out[i] += "+"
		}
	}
	return out
}

// QueueRows pivots Queue into one row per kind and queue, in the order
// the ledger listed them.
func (s *Status) QueueRows() []QueueRow {
	var rows []QueueRow
	idx := map[[2]string]int{}
	for _, qc := range s.Queue {
		k := [2]string{qc.Kind, qc.Queue}
		i, ok := idx[k]
		if !ok {
			i = len(rows)
			idx[k] = i
			rows = append(rows, QueueRow{Kind: qc.Kind, Queue: qc.Queue, Counts: make([]int64, len(RiverStates)),
				AtLeast: make([]bool, len(RiverStates))})
		}
		for j, st := range RiverStates {
			if st == qc.State {
				rows[i].Counts[j], rows[i].AtLeast[j] = qc.Jobs, qc.AtLeast
			}
		}
	}
	return rows
}
