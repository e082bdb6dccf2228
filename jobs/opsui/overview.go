package opsui

import (
	"context"
	"html/template"
	"net/http"
	"time"

	"github.com/storesync/storesync/jobs"
	"github.com/storesync/storesync/ledger/budget"
)

// overview renders jobs.ReadStatus, the source `storesync status` prints,
// plus the budget chart. A failing section shows its error in place and
// the others still render, as in `storesync status`.
func (c *Console) overview(w http.ResponseWriter, r *http.Request, session string) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	l := c.deps.Ledger
	st, _ := jobs.ReadStatus(ctx, l, jobs.StatusOptions{Runs: 5, Now: c.opts.Now}) // errors are per section
	data := map[string]any{"Title": "Overview", "CSRFSession": c.auth.csrfToken(session), "Now": st.At, "S": st,
		"States": jobs.RiverStates, "Queue": st.QueueRows()}
	var errs []string
	for _, e := range []struct {
		name string
		err  error
	}{{"imports", st.ImportsErr}, {"budget", st.BudgetErr}, {"webhook", st.WebhookErr}, {"queue", st.QueueErr},
		{"backfill", st.BackfillErr}, {"reconciliation", st.ReconcileErr}, {"kept-aside notifications", st.KeptAsideErr},
		{"event delivery", st.DeliveryErr}} {
		if e.err != nil {
			errs = append(errs, e.name+": "+e.err.Error())
		}
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
	data["Errors"] = errs
	busy := st.Busy()
	data["Busy"] = busy
	if busy {
		data["Refresh"] = 2
	} else {
		data["Refresh"] = 30
	}
	c.render(w, http.StatusOK, "overview", data)
}
