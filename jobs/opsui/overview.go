package opsui

import (
	"context"
	"html/template"
	"net/http"
	"sort"
	"time"

	"github.com/storesync/storesync/ledger"
	"github.com/storesync/storesync/ledger/budget"
)

// riverStates are River's job states in lifecycle order (as in
// `storesync status`).
var riverStates = []string{"available", "scheduled", "pending", "running", "retryable", "completed", "cancelled", "discarded"}

type importView struct {
	ledger.ImportRun
	State   string
	Percent float64 // of enqueued rows settled (done or failed)
	Rate    string  // rows settled per second since the run started
	ETA     string
}

type queueRow struct {
	Kind, Queue string
	Counts      []int64 // in riverStates order
}

type watermark struct {
	Env string
	At  time.Time
	Ago time.Duration
}

type reconcileView struct {
	*ledger.ReconcileRun
	State  string
	Drift  []driftCount
	Checks int64
}

type driftCount struct {
	Class string
	N     int64
}

// overview gathers each section independently: a failing read shows its
// error in place and the others still render, as `storesync status` does.
func (c *Console) overview(w http.ResponseWriter, r *http.Request, session string) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	l := c.deps.Ledger
	now := c.opts.Now()
	data := map[string]any{"Title": "Overview", "CSRFSession": c.auth.csrfToken(session), "Now": now}
	var errs []string
	busy := false

	if runs, err := l.ImportRuns(ctx, 5); err != nil {
		errs = append(errs, "imports: "+err.Error())
	} else {
		views := make([]importView, 0, len(runs))
		for _, run := range runs {
			v := importView{ImportRun: run, State: importState(run)}
			settled := run.Progress.Done + run.Progress.Failed
			if total := settled + run.Progress.Pending; total > 0 {
				v.Percent = 100 * float64(settled) / float64(total)
			}
			if run.Progress.Pending > 0 {
				busy = true
				if el := now.Sub(run.StartedAt).Seconds(); el > 0 && settled > 0 {
					rate := float64(settled) / el
					v.Rate = formatRate(rate)
					v.ETA = (time.Duration(float64(run.Progress.Pending)/rate) * time.Second).Round(time.Second).String()
				} else {
					v.Rate, v.ETA = "—", "—"
				}
			}
			views = append(views, v)
		}
		data["Imports"] = views
	}

	if series, err := budget.UsageSeries(ctx, l.Pool(), 2*time.Hour, time.Minute); err != nil {
		errs = append(errs, "budget chart: "+err.Error())
	} else {
		charts := make([]template.HTML, 0, len(series))
		for _, s := range series {
			charts = append(charts, budgetChart(s))
		}
		data["Charts"] = charts
	}
	if use, err := budget.Usage(ctx, l.Pool()); err != nil {
		errs = append(errs, "budget: "+err.Error())
	} else {
		data["Budget"] = use
	}

	if counts, err := l.QueueCounts(ctx); err != nil {
		errs = append(errs, "queue: "+err.Error())
	} else {
		rows, active := queueRows(counts)
		busy = busy || active
		data["Queue"], data["States"] = rows, riverStates
	}

	if marks, err := l.BackfillWatermarks(ctx); err != nil {
		errs = append(errs, "backfill: "+err.Error())
	} else {
		var ws []watermark
		for env, at := range marks {
			ws = append(ws, watermark{Env: string(env), At: at, Ago: now.Sub(at).Round(time.Minute)})
		}
		sort.Slice(ws, func(i, j int) bool { return ws[i].Env < ws[j].Env })
		data["Watermarks"] = ws
	}

	if runs, err := l.ReconcileRuns(ctx, 5); err != nil {
		errs = append(errs, "reconciliation: "+err.Error())
	} else {
		views := make([]reconcileView, 0, len(runs))
		for _, run := range runs {
			v := reconcileView{ReconcileRun: run, State: reconcileState(run), Checks: run.CheckedTotal()}
			for class, n := range run.Drifted {
				v.Drift = append(v.Drift, driftCount{class, n})
			}
			sort.Slice(v.Drift, func(i, j int) bool { return v.Drift[i].Class < v.Drift[j].Class })
			if run.FinishedAt == nil && run.Error == "" {
				busy = true
			}
			views = append(views, v)
		}
		data["Reconciles"] = views
	}
	data["Errors"] = errs
	data["Busy"] = busy
	if busy {
		data["Refresh"] = 2
	} else {
		data["Refresh"] = 30
	}
	c.render(w, http.StatusOK, "overview", data)
}

func importState(r ledger.ImportRun) string {
	switch {
	case r.FinishedAt == nil:
		return "file not read completely"
	case r.Progress.Pending == 0:
		return "finished"
	}
	return "migrating"
}

func reconcileState(r *ledger.ReconcileRun) string {
	switch {
	case r.Error != "":
		return "failed: " + r.Error
	case r.FinishedAt != nil && r.StoppedReason != "":
		return "finished: " + r.StoppedReason
	case r.FinishedAt != nil:
		return "finished"
	}
	return "running (" + r.Phase + ")"
}

// queueRows pivots QueueCounts into one row per kind and queue; active
// reports whether any job waits or runs.
func queueRows(counts []ledger.QueueCount) (rows []queueRow, active bool) {
	idx := map[[2]string]int{}
	for _, qc := range counts {
		k := [2]string{qc.Kind, qc.Queue}
		i, ok := idx[k]
		if !ok {
			i = len(rows)
			idx[k] = i
			rows = append(rows, queueRow{Kind: qc.Kind, Queue: qc.Queue, Counts: make([]int64, len(riverStates))})
		}
		for j, st := range riverStates {
			if st == qc.State {
				rows[i].Counts[j] = qc.Jobs
			}
		}
		switch qc.State {
		case "available", "running", "retryable", "pending":
			active = active || qc.Jobs > 0
		}
	}
	return rows, active
}

func formatRate(perSecond float64) string {
	switch {
	case perSecond >= 10:
		return commas(int64(perSecond+0.5)) + " rows/s"
	case perSecond >= 1:
		return trimFloat(perSecond, 1) + " rows/s"
	}
	return trimFloat(perSecond*60, 1) + " rows/min"
}
