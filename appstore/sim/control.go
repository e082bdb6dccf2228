package sim

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/storesync/storesync/appstore"
)

// controlRoutes adds the /sim/ endpoints (see the package documentation).
// They carry no authentication: the simulator is a local test tool.
func (s *Simulator) controlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /sim/token", func(w http.ResponseWriter, r *http.Request) {
		tok, err := s.Token()
		if err != nil {
			http.Error(w, "minting token failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, tok+"\n")
	})
	mux.HandleFunc("GET /sim/now", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"now": s.Now(), "nowMillis": s.Now().UnixMilli()})
	})
	mux.HandleFunc("POST /sim/advance", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 {
			http.Error(w, "want ?d=DURATION, e.g. ?d=24h", http.StatusBadRequest)
			return
		}
		writeJSON(w, http.StatusOK, s.Advance(d))
	})
	mux.HandleFunc("GET /sim/truth/{otid}", func(w http.ResponseWriter, r *http.Request) {
		t, ok := s.TruthOf(r.PathValue("otid"))
		if !ok {
			http.Error(w, "no such originalTransactionId", http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, t)
	})
	mux.HandleFunc("GET /sim/truth", func(w http.ResponseWriter, r *http.Request) {
		env, ok := envParam(w, r)
		if !ok {
			return
		}
		var out []SubscriptionTruth
		for _, t := range s.Truth() {
			if t.Environment == env {
				out = append(out, t)
			}
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /sim/ids", csvOfEnvs([]string{"original_transaction_id", "app_account_token"},
		func(env appstore.Environment) ([][]string, error) {
			var out [][]string
			for _, row := range s.ImportRows(env) {
				out = append(out, []string{row.OriginalTransactionID, row.AppAccountToken})
			}
			return out, nil
		}))
	mux.HandleFunc("GET /sim/orders", csvOfEnvs([]string{"order_id", "original_transaction_id"},
		func(env appstore.Environment) ([][]string, error) {
			var out [][]string
			for _, o := range s.Orders(env) {
				out = append(out, []string{o.OrderID, o.OriginalTransactionID})
			}
			return out, nil
		}))
	mux.HandleFunc("GET /sim/receipts", csvOfEnvs(receiptCSVHeader,
		func(env appstore.Environment) ([][]string, error) {
			rs, err := s.Receipts(env)
			var out [][]string
			for _, row := range rs {
				out = append(out, []string{row.AppReceipt, row.CustomerID, row.AppAccountToken})
			}
			return out, err
		}))
	mux.HandleFunc("POST /sim/mutate", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mutate := s.Mutate
		if v := q.Get("notify"); v != "" {
			notify, err := strconv.ParseBool(v)
			if err != nil {
				http.Error(w, "notify must be true or false", http.StatusBadRequest)
				return
			}
			if notify {
				mutate = s.MutateAndNotify
			}
		}
		if err := mutate(q.Get("otid"), MutationKind(q.Get("kind"))); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		t, _ := s.TruthOf(q.Get("otid"))
		writeJSON(w, http.StatusOK, t)
	})
	mux.HandleFunc("GET /sim/faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("POST /sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err == nil {
			err = json.Unmarshal(b, &f)
		}
		if err == nil {
			err = s.SetFaults(f)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("POST /sim/webhook", func(w http.ResponseWriter, r *http.Request) {
		if err := s.SetWebhookURL(r.URL.Query().Get("url")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"webhookURL": s.hooks.getURL()})
	})
	mux.HandleFunc("POST /sim/flush", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Flush(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, http.StatusOK, s.Stats().Webhook)
	})
	mux.HandleFunc("GET /sim/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("GET /sim/root.pem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.RootPEM())
	})
}

// envParam reads ?env= (any case; default production).
func envParam(w http.ResponseWriter, r *http.Request) (appstore.Environment, bool) {
	v := r.URL.Query().Get("env")
	if v == "" {
		return appstore.Production, true
	}
	env, err := appstore.ParseEnvironment(v)
	if err != nil || !env.HasServer() {
		http.Error(w, "env must be production or sandbox", http.StatusBadRequest)
		return "", false
	}
	return env, true
}

// envsParam reads ?env= like envParam, and also "all": production, then
// sandbox.
// csvOfEnvs serves a CSV import file: header, then rowsOf each environment
// the request's env parameter names (?env=all for both). Rows are gathered
// before anything is written, so an error is a clean 500, not half a file.
func csvOfEnvs(header []string, rowsOf func(appstore.Environment) ([][]string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		envs, ok := envsParam(w, r)
		if !ok {
			return
		}
		var rows [][]string
		for _, env := range envs {
			rs, err := rowsOf(env)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			rows = append(rows, rs...)
		}
		w.Header().Set("Content-Type", "text/csv")
		cw := csv.NewWriter(w)
		_ = cw.Write(header)
		_ = cw.WriteAll(rows)
	}
}

func envsParam(w http.ResponseWriter, r *http.Request) ([]appstore.Environment, bool) {
	if r.URL.Query().Get("env") == "all" {
		return []appstore.Environment{appstore.Production, appstore.Sandbox}, true
	}
	env, ok := envParam(w, r)
	if !ok {
		return nil, false
	}
	return []appstore.Environment{env}, true
}
