package serve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
)

// Limits and defaults; doc.go explains each.
const (
	DefaultMaxUpload  = 20 << 20
	DefaultCacheBytes = 1 << 30
	DefaultQueueLen   = 8
	maxListed         = 10000
	thumbSide         = 128
	maxUploads        = 64
)

// Options configure a Server. The zero value serves the model alone (uploads only).
type Options struct {
	Images    string             // folder of images to browse; "" for none
	ModelName string             // shown in the page's header
	Decode    preprocess.Options // decoding limits (MaxPixels) for files and uploads
	Features  *Features          // the probe report and PCA scatter; nil for none
	SAE       *SAE               // a sparse autoencoder's features view; nil for none
	Kinds     []Kind             // map kinds; nil means Kinds()
	MaxUpload int64              // upload size cap in bytes; 0 means DefaultMaxUpload
	Cache     int64              // analysis cache budget in bytes; 0 means DefaultCacheBytes
	QueueLen  int                // analyses that may wait behind the running one; 0 means DefaultQueueLen
	LocalOnly bool               // refuse requests whose Host is not a loopback name (DNS rebinding)
	Log       *log.Logger        // request errors; nil discards them
	testHook  func(key string)   // tests: called inside the queue slot, before an analysis (key: the image's) or a costly map (key: costlyKey)
}

// Server is the explorer's HTTP handler. Create it with New; it is safe for concurrent use.
type Server struct {
	model   *core.Model
	opt     Options
	labels  []string
	kinds   []Kind
	images  *folder
	mux     *http.ServeMux
	queue   *queue // forward passes: one at a time, QueueLen waiting
	aux     *queue // thumbnails and PCA: two at a time, 64 waiting
	flights group[*Analysis]
	maps    group[[]float32] // costly kinds' maps being computed
	thumbs  group[[]byte]
	cache   *lru[*Analysis]
	thumbC  *lru[[]byte]
	uploads *lru[*upload]
	feat    *featureState

	statMu  sync.Mutex
	jobMean time.Duration // running mean of the work queue's job times, for Retry-After
	jobs    int
}

// New returns a server for the model. It opens the image folder (Close releases it) and, with
// Options.Features, starts the probe evaluation in the background.
func New(m *core.Model, opt Options) (*Server, error) {
	if opt.MaxUpload <= 0 {
		opt.MaxUpload = DefaultMaxUpload
	}
	if opt.Cache <= 0 {
		opt.Cache = DefaultCacheBytes
	}
	if opt.QueueLen <= 0 {
		opt.QueueLen = DefaultQueueLen
	}
	if opt.Log == nil {
		opt.Log = log.New(io.Discard, "", 0)
	}
	s := &Server{
		model:   m,
		opt:     opt,
		labels:  m.Config.Labels(),
		kinds:   opt.Kinds,
		queue:   newQueue(1, opt.QueueLen),
		aux:     newQueue(2, 64),
		cache:   newLRU[*Analysis](opt.Cache, 1<<20),
		thumbC:  newLRU[[]byte](32<<20, maxListed),
		uploads: newLRU[*upload](256<<20, maxUploads),
	}
	if s.kinds == nil {
		s.kinds = Kinds()
	}
	seen := map[string]bool{"latent": true}
	for _, k := range s.kinds {
		if err := k.check(); err != nil {
			return nil, err
		}
		if seen[k.Name] {
			return nil, fmt.Errorf("map kind %q given twice (or reserved)", k.Name)
		}
		seen[k.Name] = true
	}
	if opt.Images != "" {
		f, err := openFolder(opt.Images)
		if err != nil {
			return nil, err
		}
		s.images = f
	}
	if opt.Features != nil {
		s.feat = startFeatures(opt.Features)
	}
	s.routes()
	return s, nil
}

// Close releases the image folder. Requests in flight may fail afterwards.
func (s *Server) Close() error {
	if s.images != nil {
		return s.images.Close()
	}
	return nil
}

func (s *Server) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleIndex)
	mux.HandleFunc("GET /static/{file}", s.handleStatic)
	mux.HandleFunc("GET /api/info", s.handleInfo)
	mux.HandleFunc("GET /api/images", s.handleImages)
	mux.HandleFunc("GET /api/thumb", s.handleThumb)
	mux.HandleFunc("GET /api/analysis", s.handleAnalysis)
	mux.HandleFunc("GET /api/input.png", s.handleInput)
	mux.HandleFunc("GET /api/map.png", s.handleMap)
	mux.HandleFunc("GET /api/latent.png", s.handleLatent)
	mux.HandleFunc("GET /api/relevance", s.handleRelevance)
	mux.HandleFunc("GET /api/colorbar.png", s.handleColorbar)
	mux.HandleFunc("POST /api/upload", s.handleUpload)
	mux.HandleFunc("GET /api/features", s.handleFeatures)
	mux.HandleFunc("GET /api/features/pca", s.handlePCA)
	mux.HandleFunc("GET /api/sae", s.handleSAE)
	mux.HandleFunc("GET /api/sae/png", s.handleSAEPNG)
	mux.HandleFunc("GET /api/sae/active", s.handleSAEActive)
	s.mux = mux
}

// contentSecurityPolicy allows the page's own scripts, styles, images and requests and nothing
// else: no external source, no inline script or style, no frames, no plugins.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// ServeHTTP sets the security headers, checks Host and Origin, and recovers from panics so that
// one bad request never ends the process.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if s.opt.LocalOnly && !loopbackHost(r.Host) {
		writeError(w, http.StatusMisdirectedRequest, "this server answers loopback host names only")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	// The mux would redirect an unclean path (/static/../x) to its clean form; no route wants
	// one, so it is simply not found.
	if p := r.URL.Path; p != "/" && path.Clean(p) != p {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.opt.Log.Printf("panic serving %s: %v", r.URL.Path, p)
			writeError(w, http.StatusInternalServerError, "internal error")
		}
	}()
	s.mux.ServeHTTP(w, r)
}

// loopbackHost reports whether a Host header names this machine: localhost or a loopback IP.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameOrigin accepts a state-changing request that a browser marks as coming from this server's
// own page, or that no browser sent (no Origin, no Sec-Fetch-Site: curl, tests), so that another
// site's page cannot post uploads through a visitor's browser.
func sameOrigin(r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		return err == nil && u.Host == r.Host
	}
	site := r.Header.Get("Sec-Fetch-Site")
	return site == "" || site == "same-origin" || site == "none"
}

// httpError is an error with the status it answers.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// fail answers err with its status: 404 for names, 503 with Retry-After when busy, 413 for too
// large images, 415 for data that is not an image, 400 for bad parameters, else 500.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, he.msg)
	case errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, "no such image")
	case errors.Is(err, errBusy):
		w.Header().Set("Retry-After", strconv.Itoa(s.retryAfter()))
		writeError(w, http.StatusServiceUnavailable, "busy: too many analyses waiting; retry later")
	case errors.Is(err, preprocess.ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, publicImageError(err))
	case errors.Is(err, preprocess.ErrInvalidImage):
		writeError(w, http.StatusUnsupportedMediaType, publicImageError(err))
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "request cancelled")
	default:
		s.opt.Log.Printf("%s %s: %v", r.Method, r.URL.Path, err)
		writeError(w, http.StatusInternalServerError, "internal error: "+err.Error())
	}
}

// publicImageError is a decoder error without the server-side path it starts with.
func publicImageError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ": "); i >= 0 && strings.ContainsAny(msg[:i], "/\\") {
		msg = msg[i+2:]
	}
	return msg
}

// retryAfter estimates, in whole seconds, when the queue will have room: the mean time of its
// jobs (analyses and costly maps) times the jobs ahead, between 1 and 120.
func (s *Server) retryAfter() int {
	s.statMu.Lock()
	mean := s.jobMean
	s.statMu.Unlock()
	secs := math.Ceil(mean.Seconds() * float64(s.queue.pending()))
	return int(min(120, max(1, secs)))
}

// recordJob adds a job's time to the running mean (of the last 16 or so).
func (s *Server) recordJob(d time.Duration) {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	s.jobs++
	s.jobMean += (d - s.jobMean) / time.Duration(min(s.jobs, 16))
}

// source is the image a request names: a file of the folder or an upload.
type source struct {
	key    string // cache key: "image:NAME" or "upload:ID"
	name   string // NAME, or the upload's file name
	upload *upload
}

// upload is an image posted to /api/upload, kept preprocessed (a few hundred kB) so that its
// analysis can be recomputed after the cache drops it.
type upload struct {
	id, name string
	prep     *preprocess.Result
	thumb    []byte
}

// parseSource reads image=NAME or upload=ID. Unknown names are errNotFound.
func (s *Server) parseSource(r *http.Request) (*source, error) {
	q := r.URL.Query()
	if id := q.Get("upload"); id != "" {
		if !validUploadID(id) {
			return nil, errNotFound
		}
		u, ok := s.uploads.get(id)
		if !ok {
			return nil, errNotFound
		}
		return &source{key: "upload:" + id, name: u.name, upload: u}, nil
	}
	name := q.Get("image")
	if name == "" {
		return nil, badRequest("name an image (image=NAME) or an upload (upload=ID)")
	}
	if s.images == nil || !s.images.exists(name) {
		return nil, errNotFound
	}
	return &source{key: "image:" + name, name: name}, nil
}

func validUploadID(id string) bool {
	if len(id) != 24 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

func uploadID(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:12])
}

// load decodes and preprocesses the source's image (the caller holds a queue slot).
func (s *Server) load(src *source) (*preprocess.Result, error) {
	if src.upload != nil {
		return src.upload.prep, nil
	}
	f, err := s.images.openImage(src.name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := preprocess.Decode(f, src.name, s.opt.Decode)
	if err != nil {
		return nil, err
	}
	return s.model.Preprocessor.Process(img)
}

// analysis returns the source's analysis from the cache, or computes it in the queue; requests
// for the same image share one computation.
func (s *Server) analysis(ctx context.Context, src *source) (*Analysis, error) {
	if a, ok := s.cache.get(src.key); ok {
		return a, nil
	}
	return s.flights.do(src.key, func() (*Analysis, error) {
		if a, ok := s.cache.get(src.key); ok {
			return a, nil
		}
		var a *Analysis
		// The computation is shared, so one client going away must not cancel it for the others.
		err := s.queue.do(context.WithoutCancel(ctx), func() error {
			if s.opt.testHook != nil {
				s.opt.testHook(src.key)
			}
			img, err := s.load(src)
			if err != nil {
				return err
			}
			a, err = analyze(s.model, img, s.kinds)
			if err != nil {
				return fmt.Errorf("%s: %w", src.name, err)
			}
			s.recordJob(a.Elapsed)
			return nil
		})
		if err != nil {
			return nil, err
		}
		s.cache.put(src.key, a, a.Bytes())
		return a, nil
	})
}

// costlyKey names a costly kind's map of one analysis: the kind and the parameters it declares.
func costlyKey(k *Kind, q Query) string {
	key := k.Name
	if k.PerClass {
		key += ":c" + strconv.Itoa(q.Class)
	}
	if k.Steps {
		key += ":s" + strconv.Itoa(q.Step)
	}
	return key
}

// costlyMap returns a costly kind's map for the analysis: kept from an earlier request, or
// computed in the work queue, once for all the requests that ask for it meanwhile, then kept with
// the analysis and counted in the cache's budget. The map is shared: callers must not change it.
func (s *Server) costlyMap(ctx context.Context, src *source, a *Analysis, k *Kind, q Query) ([]float32, error) {
	key := costlyKey(k, q)
	if m, ok := a.costlyMap(key); ok {
		return m, nil
	}
	return s.maps.do(src.key+"|"+key, func() ([]float32, error) {
		if m, ok := a.costlyMap(key); ok {
			return m, nil
		}
		m := make([]float32, a.H*a.W)
		// Shared by every request for this map: one client leaving must not cancel it.
		err := s.queue.do(context.WithoutCancel(ctx), func() error {
			if s.opt.testHook != nil {
				s.opt.testHook(src.key + "|" + key)
			}
			start := time.Now()
			if err := k.Map(m, a, q); err != nil {
				return fmt.Errorf("%s: map %s: %w", src.name, key, err)
			}
			s.recordJob(time.Since(start))
			return nil
		})
		if err != nil {
			return nil, err
		}
		if b := a.keepCostlyMap(key, m); b > 0 {
			s.cache.grow(src.key, a, func(x, y *Analysis) bool { return x == y }, b)
		}
		return m, nil
	})
}
