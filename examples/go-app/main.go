// A counter whose state pull-state-operator keeps: the app contract (docs/app-contract.md) in Go's standard
// library only. GET /state returns a consistent snapshot, POST /state replaces it atomically, every answer
// carries Pull-State-Instance (new with each process start), and after SIGTERM the counter stops while GET
// is still served for a few seconds, so a planned move loses nothing.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// state is what is checkpointed and restored.
type state struct {
	Count int64 `json:"count"`
}

// restoreBody is what POST /state takes: a count that must be there (not null, not missing).
type restoreBody struct {
	Count *int64 `json:"count"`
}

type app struct {
	mu       sync.Mutex
	state    state
	counting bool
	restores int
	// restored is the count of the last restore (nil before any): what a test compares with the copy.
	restored *int64
	instance string
}

// maxBody bounds a restore's body: the state is a few bytes, anything larger is not ours.
const maxBody = 1 << 20

func (a *app) tick() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counting {
		a.state.Count++
	}
}

func (a *app) serveState(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Pull-State-Instance", a.instance)
	switch r.Method {
	case http.MethodGet:
		a.mu.Lock()
		body, err := json.Marshal(a.state)
		a.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	case http.MethodPost:
		var body restoreBody
		dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
		dec.DisallowUnknownFields()
		err := dec.Decode(&body)
		if err == nil && dec.Decode(&struct{}{}) != io.EOF {
			err = errors.New("trailing data")
		}
		if err != nil || body.Count == nil || *body.Count < 0 {
			http.Error(w, `body must be JSON {"count": <whole number >= 0>}`, http.StatusBadRequest)
			return
		}
		s := state{Count: *body.Count}
		a.mu.Lock()
		a.state = s
		a.restores++
		restored := s.Count
		a.restored = &restored
		restores := a.restores
		a.mu.Unlock()
		log.Printf(`{"msg":"state restored","count":%d,"restores":%d}`, s.Count, restores)
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"count":%d}`, s.Count)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
	}
}

func (a *app) serveStats(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"count": a.state.Count, "restores": a.restores, "restoredCount": a.restored, "counting": a.counting,
	})
}

func (a *app) serveReady(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	counting := a.counting
	a.mu.Unlock()
	if !counting {
		http.Error(w, "stopping", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok"))
}

// envInt reads a whole-number setting, refusing anything else with what is allowed.
func envInt(name string, def, lo, hi int) int {
	raw, ok := os.LookupEnv(name)
	if !ok || raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		fmt.Fprintf(os.Stderr, "error: %s=%q is not valid; allowed: a whole number from %d to %d\n", name, raw, lo, hi)
		os.Exit(2)
	}
	return n
}

func main() {
	log.SetFlags(0)
	if len(os.Args) > 1 {
		fmt.Fprint(os.Stderr, "usage: go-app (settings from the environment)\n"+
			"  PORT           HTTP port (default 8080)\n"+
			"  TICK_MS        milliseconds between increments (default 100)\n"+
			"  DRAIN_SECONDS  seconds GET /state is still served after SIGTERM (default 5)\n")
		if os.Args[1] == "--help" || os.Args[1] == "-h" {
			os.Exit(0)
		}
		os.Exit(2)
	}
	port := envInt("PORT", 8080, 1, 65535)
	tick := envInt("TICK_MS", 100, 1, 60_000)
	drain := envInt("DRAIN_SECONDS", 5, 0, 300)
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		log.Fatalf("no random id: %v", err)
	}
	a := &app{counting: true, instance: hex.EncodeToString(id)}

	mux := http.NewServeMux()
	mux.HandleFunc("/state", a.serveState)
	mux.HandleFunc("/stats", a.serveStats)
	mux.HandleFunc("/readyz", a.serveReady)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := &http.Server{Addr: fmt.Sprintf(":%d", port), Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ticker := time.NewTicker(time.Duration(tick) * time.Millisecond)
	go func() {
		for range ticker.C {
			a.tick()
		}
	}()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	// main returns only once Shutdown has let the answers in flight (the last pull's) finish.
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-stop
		a.mu.Lock()
		a.counting = false
		count := a.state.Count
		a.mu.Unlock()
		ticker.Stop()
		log.Printf(`{"msg":"SIGTERM: counting stopped, still serving","count":%d,"drainSeconds":%d}`, count, drain)
		time.Sleep(time.Duration(drain) * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	log.Printf(`{"msg":"go-app listening","port":%d,"instance":%q}`, port, a.instance)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("fatal: %v", err)
	}
	<-done
}
