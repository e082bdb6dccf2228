package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/storesync/storesync/ledger"
)

// DefaultEventDeadAfter is how long a delivery is retried before it is
// dead-lettered (STORESYNC_EVENT_DEAD_AFTER).
const DefaultEventDeadAfter = 72 * time.Hour

// DeliverySettings tunes the delivery of the change feed to endpoints.
type DeliverySettings struct {
	// DeadAfter: a delivery failing for this long is dead-lettered (shown
	// by status, redelivered by `storesync events redeliver`), and the
	// subscription's later events go on. Default DefaultEventDeadAfter.
	DeadAfter time.Duration
	// Client sends the webhooks; default one with a 10s timeout. An
	// endpoint must answer 2xx within it.
	Client *http.Client
	// MaxBackoff caps the wait between attempts; default 10 minutes.
	MaxBackoff time.Duration
}

// EventFanOutArgs is the job that sequences new events, creates their
// deliveries for every endpoint and enqueues a delivery job per
// subscription that got one (and per stalled queue). It runs on a schedule
// (EventFanOutPeriodic) and, without waiting for it, after every job that
// wrote events (feedNudger): delivery does not hang on River's leader or
// on the schedule.
type EventFanOutArgs struct{}

// Kind is River's job kind.
func (EventFanOutArgs) Kind() string { return "event_fanout" }

// fanOutUniqueStates: at most one fan-out waits or runs. Without it a
// slow pass (a large backlog) let the 1s schedule pile up a job a second,
// each queueing on the sequencer's lock and crowding the maintenance queue.
var fanOutUniqueStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// InsertOpts: unique while waiting or running (fanOutUniqueStates); a
// pass that leaves work snoozes to run again instead of ending.
func (EventFanOutArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByState: fanOutUniqueStates}}
}

// EventDeliverArgs delivers one subscription's pending events to one
// endpoint, oldest first: a later event waits for the earlier one.
type EventDeliverArgs struct {
	EndpointID            int64  `json:"endpoint_id"`
	OriginalTransactionID string `json:"original_transaction_id"`
}

// Kind is River's job kind.
func (EventDeliverArgs) Kind() string { return "event_deliver" }

// deliveryUniqueStates: at most one unfinished job per queue (River
// requires running among them), which is what keeps one queue's events in
// order: no second job can deliver them concurrently. A delivery added while its queue's job is
// finishing may so find no job: the fan-out re-enqueues queues whose
// oldest pending delivery is older than stalledAfter.
var deliveryUniqueStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// stalledAfter is when a pending delivery's queue is enqueued again; the
// uniqueness above makes that a no-op for queues whose job is waiting.
const stalledAfter = 10 * time.Second

// InsertOpts: unique per queue while waiting; retried (with NextRetry's
// backoff) until the dead-letter time, whatever the attempt count.
func (EventDeliverArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueNotifications, MaxAttempts: 100000,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: deliveryUniqueStates}}
}

// EventFanOutPeriodic is the fan-out's schedule (every interval; 0 = none):
// the safety net behind the fan-out that jobs writing events ask for.
func EventFanOutPeriodic(interval time.Duration) *river.PeriodicJob {
	if interval <= 0 {
		return nil
	}
	return river.NewPeriodicJob(river.PeriodicInterval(interval), func() (river.JobArgs, *river.InsertOpts) {
		return EventFanOutArgs{}, nil
	}, &river.PeriodicJobOpts{ID: "event_fanout", RunOnStart: true})
}

type eventFanOutWorker struct {
	river.WorkerDefaults[EventFanOutArgs]
	d *Deps
}

// fanOutPassBatches bounds one pass: a backlog of millions of events is
// worked in passes of at most this many batches of 1000 events, each
// pass well within the job timeout.
const fanOutPassBatches = 20

// fanOutAgain is how soon a pass that left work runs again.
const fanOutAgain = 200 * time.Millisecond

// Work runs one bounded pass, then snoozes (runs again shortly) while
// the feed is behind: events committed during the pass, whose jobs' own
// requests for a fan-out found this one running, are not left for the
// schedule.
func (w *eventFanOutWorker) Work(ctx context.Context, job *river.Job[EventFanOutArgs]) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return ErrNoRiverClient
	}
	more, err := fanOutPass(ctx, w.d.Ledger, client, fanOutPassBatches)
	if err != nil {
		return err
	}
	if !more {
		if more, err = w.d.Ledger.FeedBehind(ctx); err != nil {
			return err
		}
	}
	if more {
		return river.JobSnooze(fanOutAgain)
	}
	return nil
}

// FanOutEvents is the fan-out's work, also run by `events redeliver`'s
// caller and tests: sequence new events, create their deliveries and
// enqueue the queues that got one or have stalled (stalledAfter), until
// every sequenced event is fanned out.
func FanOutEvents(ctx context.Context, l *ledger.Ledger, client *river.Client[pgx.Tx]) error {
	_, err := fanOutPass(ctx, l, client, 0)
	return err
}

// fanOutPass fans out at most maxBatches batches (0: no bound) and
// reports whether it stopped with work left.
func fanOutPass(ctx context.Context, l *ledger.Ledger, client *river.Client[pgx.Tx], maxBatches int) (more bool, err error) {
	sequenced, err := l.SequenceEvents(ctx)
	if err != nil {
		return false, err
	}
	for batch := 0; ; batch++ {
		if maxBatches > 0 && batch == maxBatches {
			more = true
			break
		}
		var n int
		err := pgx.BeginFunc(ctx, l.Pool(), func(tx pgx.Tx) error {
			keys, err := l.WithTx(tx).FanOutEvents(ctx, 1000)
			if err != nil {
				return err
			}
			n = len(keys)
			return EnqueueDeliveries(ctx, client, tx, keys)
		})
		if err != nil {
			return false, err
		}
		if n == 0 {
			break
		}
	}
	stalled, err := l.StalledDeliveries(ctx, stalledAfter, 10000)
	if err != nil {
		return false, err
	}
	// SequenceEvents numbers at most 10,000 at a time: a full batch
	// means more wait.
	return more || sequenced >= 10000, EnqueueDeliveries(ctx, client, nil, stalled)
}

// EnqueueDeliveries inserts a delivery job per queue (in tx when not nil).
func EnqueueDeliveries(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, keys []ledger.DeliveryKey) error {
	if len(keys) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(keys))
	for i, k := range keys {
		params[i] = river.InsertManyParams{Args: EventDeliverArgs{EndpointID: k.EndpointID, OriginalTransactionID: k.OriginalTransactionID}}
	}
	var err error
	if tx != nil {
		_, err = client.InsertManyTx(ctx, tx, params)
	} else {
		_, err = client.InsertMany(ctx, params)
	}
	if err != nil {
		return fmt.Errorf("enqueueing event deliveries: %w", err)
	}
	return nil
}

type eventDeliverWorker struct {
	river.WorkerDefaults[EventDeliverArgs]
	d *Deps
}

// NextRetry backs off exponentially from 1s to MaxBackoff: River's default
// (attempt⁴ seconds) would wait days after a long outage.
func (w *eventDeliverWorker) NextRetry(job *river.Job[EventDeliverArgs]) time.Time {
	max := orDuration(w.d.Settings.Delivery.MaxBackoff, 10*time.Minute)
	d := time.Second << min(job.Attempt, 20)
	return time.Now().Add(min(d, max))
}

// Work delivers the queue's pending events in order until it is empty; the
// first failure fails the job (River retries it), so later events wait.
func (w *eventDeliverWorker) Work(ctx context.Context, job *river.Job[EventDeliverArgs]) error {
	key := ledger.DeliveryKey{EndpointID: job.Args.EndpointID, OriginalTransactionID: job.Args.OriginalTransactionID}
	deadAfter := orDuration(w.d.Settings.Delivery.DeadAfter, DefaultEventDeadAfter)
	for {
		p, err := w.d.Ledger.NextDelivery(ctx, key)
		if err != nil || p == nil {
			return err
		}
		sendErr := w.send(ctx, p)
		switch {
		case sendErr == nil:
			err = w.d.Ledger.MarkDelivery(ctx, key.EndpointID, p.Event.ID, "delivered", "")
		case w.d.now().Sub(p.Since) >= deadAfter:
			err = w.d.Ledger.MarkDelivery(ctx, key.EndpointID, p.Event.ID, "dead", sendErr.Error())
		default:
			if err := w.d.Ledger.MarkDelivery(ctx, key.EndpointID, p.Event.ID, "pending", sendErr.Error()); err != nil {
				return err
			}
			return sendErr
		}
		if err != nil {
			return err
		}
	}
}

// send posts one event, signed per Standard Webhooks. webhook-id is the
// event's feed id, the same on every attempt, so receivers drop duplicates.
func (w *eventDeliverWorker) send(ctx context.Context, p *ledger.PendingDelivery) error {
	body, err := json.Marshal(p.Event)
	if err != nil {
		return err
	}
	wh, err := standardwebhooks.NewWebhook(p.Secret)
	if err != nil {
		return fmt.Errorf("endpoint secret unusable: %w", err)
	}
	msgID := "evt_" + strconv.FormatInt(p.Event.ID, 10)
	now := time.Now()
	sig, err := wh.Sign(msgID, now, body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(standardwebhooks.HeaderWebhookID, msgID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	client := w.d.Settings.Delivery.Client
	if client == nil {
		client = defaultDeliveryClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			return fmt.Errorf("posting event %d: %w", p.Event.ID, ue.Unwrap())
		}
		return fmt.Errorf("posting event %d: %w", p.Event.ID, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("posting event %d: endpoint answered %s", p.Event.ID, resp.Status)
	}
	return nil
}

var defaultDeliveryClient = &http.Client{Timeout: 10 * time.Second}
