package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// errBusy is returned when a queue is full; handlers answer 503 with Retry-After.
var errBusy = errors.New("server busy: too many requests waiting")

// queue runs at most `running` jobs at once and lets at most `waiting` more wait for a slot;
// beyond that it refuses at once, so a burst of requests costs memory for a bounded number of
// goroutines and never an unbounded backlog of forward passes.
type queue struct {
	admitted chan struct{} // running + waiting tokens
	slots    chan struct{} // running tokens
}

func newQueue(running, waiting int) *queue {
	return &queue{admitted: make(chan struct{}, running+waiting), slots: make(chan struct{}, running)}
}

// do runs fn when a slot is free, or returns errBusy when the queue is full, or ctx's error when
// the caller gives up while waiting.
func (q *queue) do(ctx context.Context, fn func() error) error {
	select {
	case q.admitted <- struct{}{}:
	default:
		return errBusy
	}
	defer func() { <-q.admitted }()
	select {
	case q.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-q.slots }()
	return fn()
}

// pending is the number of jobs running or waiting.
func (q *queue) pending() int { return len(q.admitted) }

// flight is one computation that callers with the same key share.
type flight[V any] struct {
	done chan struct{}
	val  V
	err  error
}

// group lets concurrent requests for the same key share one computation (the page asks for an
// image's analysis and its maps at the same moment). A panic in the computation becomes an error
// for every caller, so no waiter hangs and the process stays up.
type group[V any] struct {
	mu      sync.Mutex
	flights map[string]*flight[V]
}

func (g *group[V]) do(key string, fn func() (V, error)) (val V, err error) {
	g.mu.Lock()
	if g.flights == nil {
		g.flights = map[string]*flight[V]{}
	}
	if f, ok := g.flights[key]; ok {
		g.mu.Unlock()
		<-f.done
		return f.val, f.err
	}
	f := &flight[V]{done: make(chan struct{})}
	g.flights[key] = f
	g.mu.Unlock()

	defer func() {
		if p := recover(); p != nil {
			f.err = fmt.Errorf("internal error: %v", p)
		}
		val, err = f.val, f.err
		g.mu.Lock()
		delete(g.flights, key)
		g.mu.Unlock()
		close(f.done)
	}()
	f.val, f.err = fn()
	return f.val, f.err // the deferred function sets the same values, also after a panic
}

// sharedFlight is a computation that callers with the same key share, cancelled when the last of
// them has gone.
type sharedFlight[V any] struct {
	done    chan struct{}
	val     V
	err     error
	waiters int
	cancel  context.CancelFunc
}

// shared is group's variant for work that should stop when nobody waits for it any more: each
// caller waits with its own context; when every caller's context is done, the computation's
// context is cancelled (and it is bounded by timeout in any case).
type shared[V any] struct {
	mu      sync.Mutex
	flights map[string]*sharedFlight[V]
}

func (g *shared[V]) doShared(ctx context.Context, key string, timeout time.Duration, fn func(context.Context) (V, error)) (V, error) {
	g.mu.Lock()
	if g.flights == nil {
		g.flights = map[string]*sharedFlight[V]{}
	}
	f, ok := g.flights[key]
	if !ok {
		var wctx context.Context
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		f = &sharedFlight[V]{done: make(chan struct{}), cancel: cancel}
		g.flights[key] = f
		go func() {
			defer func() {
				if p := recover(); p != nil {
					f.err = fmt.Errorf("internal error: %v", p)
				}
				g.mu.Lock()
				delete(g.flights, key)
				g.mu.Unlock()
				cancel()
				close(f.done)
			}()
			f.val, f.err = fn(wctx)
		}()
	}
	f.waiters++
	g.mu.Unlock()
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		g.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			f.cancel() // nobody waits for it any more
		}
		g.mu.Unlock()
		var zero V
		return zero, ctx.Err()
	}
}
