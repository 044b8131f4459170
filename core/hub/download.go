package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/perceiverkit/perceiver/internal/progress"
)

// headTimeout bounds each metadata request, as huggingface_hub's etag timeout.
const headTimeout = 10 * time.Second

const userAgent = "perceiverkit-hub/1 (Go)"

// fileMeta is what a HEAD on the resolve endpoint tells about a file.
type fileMeta struct {
	commit   string // X-Repo-Commit
	etag     string // blob name: sha256 for LFS files, git sha1 otherwise
	size     int64  // -1 when unknown
	location string // where to GET: the CDN for LFS files
}

// unreachableError marks a failure to talk to the endpoint at all, after which
// Resolve falls back to the cache.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return "endpoint unreachable: " + e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// etagPattern keeps a server-chosen blob name inside blobs/.
var etagPattern = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]*$`)

// fetch makes sure snapshots/<commit>/<file> exists for rev and returns the
// commit.
func (c *repoCache) fetch(ctx context.Context, rev, file string) (string, error) {
	meta, err := c.head(ctx, rev, file)
	if err != nil {
		return "", err
	}
	if err := c.writeRef(rev, meta.commit); err != nil {
		return "", err
	}
	pointer := filepath.Join(c.snapshot(meta.commit), file)
	if isFile(pointer) {
		return meta.commit, nil
	}
	blob := filepath.Join(c.root, "blobs", meta.etag)
	for _, d := range []string{filepath.Dir(blob), filepath.Dir(pointer)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("hub: %s: %w", c.repo, diskFull(err))
		}
	}
	if !isFile(blob) {
		if err := c.download(ctx, meta, file, blob); err != nil {
			return "", err
		}
	}
	if err := linkBlob(blob, pointer); err != nil {
		return "", fmt.Errorf("hub: %s: linking %s: %w", c.repo, file, diskFull(err))
	}
	return meta.commit, nil
}

func (c *repoCache) setHeaders(req *http.Request, withToken bool) {
	req.Header.Set("User-Agent", userAgent)
	// Sizes and ranges must count the stored bytes, not a compressed stream.
	req.Header.Set("Accept-Encoding", "identity")
	if withToken && c.opt.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opt.Token)
	}
}

// head asks the resolve endpoint about a file, following relative redirects
// (renamed repositories) but not absolute ones (the CDN of LFS files).
func (c *repoCache) head(ctx context.Context, rev, file string) (fileMeta, error) {
	client := *c.opt.Client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	u := c.fileURL(rev, file)
	for hops := 0; ; hops++ {
		hctx, cancel := context.WithTimeout(ctx, headTimeout)
		req, err := http.NewRequestWithContext(hctx, http.MethodHead, u, nil)
		if err != nil {
			cancel()
			return fileMeta{}, fmt.Errorf("hub: %s: bad endpoint URL %q: %w", c.repo, u, err)
		}
		c.setHeaders(req, true)
		resp, err := client.Do(req)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return fileMeta{}, fmt.Errorf("hub: %s: %s: %w", c.repo, file, ctx.Err())
			}
			return fileMeta{}, &unreachableError{err}
		}
		resp.Body.Close()

		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err == nil && loc.Host == "" && resp.Header.Get("Location") != "" {
				if hops >= 10 {
					return fileMeta{}, fmt.Errorf("hub: %s: %s: too many redirects from %s", c.repo, file, u)
				}
				base, _ := url.Parse(u)
				u = base.ResolveReference(loc).String()
				continue
			}
		}
		if resp.StatusCode >= 400 {
			if resp.Header.Get("X-Error-Code") == "EntryNotFound" {
				if commit := resp.Header.Get("X-Repo-Commit"); commitPattern.MatchString(commit) {
					c.markAbsent(commit, file)
					_ = c.writeRef(rev, commit) // best effort, as huggingface_hub
				}
			}
			return fileMeta{}, c.statusError(resp, rev, file, u)
		}
		return c.metaFrom(resp, rev, file, u)
	}
}

func (c *repoCache) metaFrom(resp *http.Response, rev, file, u string) (fileMeta, error) {
	m := fileMeta{commit: resp.Header.Get("X-Repo-Commit"), size: -1, location: u}
	if !commitPattern.MatchString(m.commit) {
		return m, fmt.Errorf("hub: %s@%s: %s: the reply from %s has no valid X-Repo-Commit header (%q); is HF_ENDPOINT a hub?", c.repo, rev, file, u, m.commit)
	}
	m.etag = resp.Header.Get("X-Linked-Etag")
	if m.etag == "" {
		m.etag = resp.Header.Get("ETag")
	}
	m.etag = strings.Trim(strings.TrimPrefix(m.etag, "W/"), `"`)
	if !etagPattern.MatchString(m.etag) {
		return m, fmt.Errorf("hub: %s@%s: %s: the reply from %s has no usable ETag (%q)", c.repo, rev, file, u, m.etag)
	}
	size := resp.Header.Get("X-Linked-Size")
	if size == "" && resp.StatusCode < 300 {
		// A redirect's Content-Length is its own (empty) body's, not the file's: the size is
		// then unknown until the download.
		size = resp.Header.Get("Content-Length")
	}
	if n, err := strconv.ParseInt(size, 10, 64); err == nil && n >= 0 {
		m.size = n
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		if loc := resp.Header.Get("Location"); loc != "" {
			m.location = loc
		}
	}
	return m, nil
}

// statusError turns a failed reply into a one-line error; the hub's
// X-Error-Code tells a missing file from a missing repository or revision.
func (c *repoCache) statusError(resp *http.Response, rev, file, u string) error {
	code := resp.Header.Get("X-Error-Code")
	msg := resp.Header.Get("X-Error-Message")
	where := c.repo + "@" + rev
	st := resp.StatusCode
	switch {
	case code == "RevisionNotFound":
		return fmt.Errorf("hub: %s: %w (HTTP %d from %s)", where, ErrRevisionNotFound, st, u)
	case code == "EntryNotFound" || (st == http.StatusNotFound && code == ""):
		return fmt.Errorf("hub: %s: %s %w (HTTP %d from %s)", where, file, ErrEntryNotFound, st, u)
	case code == "GatedRepo":
		return fmt.Errorf("hub: %s: %w: the repository is gated; accept its conditions at %s/%s and set HF_TOKEN to a token of that account (HTTP %d)",
			where, ErrAccessDenied, c.opt.Endpoint, c.repo, st)
	case msg == "Access to this resource is disabled.":
		return fmt.Errorf("hub: %s: %w: the repository is disabled (HTTP %d)", where, ErrAccessDenied, st)
	case code == "RepoNotFound" || code == "RepositoryNotFound" || st == http.StatusUnauthorized:
		hint := "check the id; if the repository is private or gated, set HF_TOKEN"
		if c.opt.Token != "" {
			hint = "check the id, and that HF_TOKEN is valid and has access to it"
		}
		return fmt.Errorf("hub: %s: %w at %s (HTTP %d); %s", where, ErrRepoNotFound, c.opt.Endpoint, st, hint)
	case st == http.StatusForbidden:
		return fmt.Errorf("hub: %s: %w (HTTP 403 from %s); make sure HF_TOKEN has read access to the repository", where, ErrAccessDenied, u)
	}
	if msg != "" {
		msg = ": " + msg
	}
	return fmt.Errorf("hub: %s: %s: HTTP %d from %s%s", where, file, st, u, msg)
}

// download fills blob from the hub, resuming blob.incomplete, and verifies it
// against the etag before moving it into place.
func (c *repoCache) download(ctx context.Context, meta fileMeta, file, blob string) error {
	lockDir := filepath.Join(c.opt.CacheDir, ".locks", filepath.Base(c.root))
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return fmt.Errorf("hub: %s: %w", c.repo, diskFull(err))
	}
	// The same lock file as huggingface_hub, so Python and Go never write one blob at once.
	unlock, err := lockFile(ctx, filepath.Join(lockDir, meta.etag+".lock"))
	if err != nil {
		return fmt.Errorf("hub: %s: locking %s: %w", c.repo, file, err)
	}
	defer unlock()
	if isFile(blob) {
		return nil // another process finished it while we waited
	}

	inc := blob + ".incomplete"
	f, err := os.OpenFile(inc, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("hub: %s: %w", c.repo, diskFull(err))
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("hub: %s: %s: %w", c.repo, inc, err)
	}
	if meta.size >= 0 && have > meta.size {
		if have, err = restart(f); err != nil {
			return fmt.Errorf("hub: %s: %s: %w", c.repo, inc, err)
		}
	}
	if meta.size > 0 {
		if free, ok := freeSpace(filepath.Dir(blob)); ok && free < meta.size-have {
			return fmt.Errorf("hub: %s: %s needs %d more bytes but %s has %d free: %w",
				c.repo, file, meta.size-have, filepath.Dir(blob), free, ErrDiskFull)
		}
	}
	if meta.size < 0 || have < meta.size {
		if err := c.get(ctx, meta, file, f, &have); err != nil {
			if errors.Is(err, ErrDiskFull) {
				f.Close()
				os.Remove(inc) // give the space back
			}
			return err
		}
	}
	if meta.size >= 0 && have != meta.size {
		f.Close()
		os.Remove(inc)
		return fmt.Errorf("hub: %s: %s: received %d bytes, the hub announced %d; partial file removed, run again", c.repo, file, have, meta.size)
	}
	if have == 0 && !isHex(meta.etag, 64) && !isHex(meta.etag, 40) {
		// Nothing to verify an empty reply against: caching it would keep it for good.
		f.Close()
		os.Remove(inc)
		return fmt.Errorf("hub: %s: %s: the server sent an empty file under an ETag that is not a digest (%q); nothing cached, run again", c.repo, file, meta.etag)
	}
	if err := verify(f, have, meta.etag); err != nil {
		f.Close()
		os.Remove(inc)
		return fmt.Errorf("hub: %s: %s %w; partial file removed, run again", c.repo, file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("hub: %s: %s: %w", c.repo, inc, diskFull(err))
	}
	if err := os.Rename(inc, blob); err != nil {
		return fmt.Errorf("hub: %s: %w", c.repo, err)
	}
	return nil
}

func restart(f *os.File) (int64, error) {
	if err := f.Truncate(0); err != nil {
		return 0, err
	}
	return f.Seek(0, io.SeekStart)
}

// get appends the rest of the file to f, asking for a byte range when part of
// it is already there; *have tracks the bytes in f.
func (c *repoCache) get(ctx context.Context, meta fileMeta, file string, f *os.File, have *int64) error {
	endpoint, _ := url.Parse(c.opt.Endpoint)
	loc, err := url.Parse(meta.location)
	if err != nil {
		return fmt.Errorf("hub: %s: %s: bad download location %q: %w", c.repo, file, meta.location, err)
	}
	// The token is for the hub, not for a CDN the blob is served from.
	withToken := endpoint != nil && loc.Host == endpoint.Host

	// A server that stops sending with the connection open would hold us forever, and one that
	// trickles a byte at a time never looks idle: every ReadTimeout, the request is cancelled
	// unless at least MinRate·ReadTimeout bytes (one, with no rate) arrived in that window.
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timeout := c.opt.ReadTimeout
	least := int64(1)
	if c.opt.MinRate > 0 {
		least = max(1, int64(c.opt.MinRate*timeout.Seconds()))
	}
	var got atomic.Int64
	var window *time.Timer
	window = time.AfterFunc(timeout, func() {
		if got.Swap(0) < least {
			cancel(ErrStalled)
			return
		}
		window.Reset(timeout)
	})
	defer window.Stop()
	interrupted := func(err error) error {
		if errors.Is(context.Cause(rctx), ErrStalled) && ctx.Err() == nil {
			return fmt.Errorf("hub: %s: download of %s %w: fewer than %d bytes received in %s (nothing, or a trickle), at %d of %d bytes; run again to resume",
				c.repo, file, ErrStalled, least, timeout, *have, meta.size)
		}
		return c.interrupted(ctx, file, *have, meta.size, err)
	}

	for attempt := 0; ; attempt++ {
		got.Store(0)
		window.Reset(timeout)
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, meta.location, nil)
		if err != nil {
			return fmt.Errorf("hub: %s: %s: %w", c.repo, file, err)
		}
		c.setHeaders(req, withToken)
		if *have > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", *have))
		}
		resp, err := c.opt.Client.Do(req)
		if err != nil {
			return interrupted(err)
		}
		retry := false
		switch {
		case resp.StatusCode == http.StatusPartialContent:
			if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != *have {
				retry = true // not the range we asked for: start over
			}
		case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			if *have == meta.size {
				resp.Body.Close()
				return nil
			}
			retry = true
		case resp.StatusCode == http.StatusOK:
			if *have > 0 { // the server ignored the range
				if *have, err = restart(f); err != nil {
					resp.Body.Close()
					return fmt.Errorf("hub: %s: %s: %w", c.repo, file, err)
				}
			}
		default:
			resp.Body.Close()
			return c.statusError(resp, meta.commit, file, meta.location)
		}
		if retry {
			resp.Body.Close()
			if attempt > 0 {
				return fmt.Errorf("hub: %s: %s: the server at %s mishandles byte ranges", c.repo, file, loc.Host)
			}
			if *have, err = restart(f); err != nil {
				return fmt.Errorf("hub: %s: %s: %w", c.repo, file, err)
			}
			continue
		}

		bar := progress.New(c.opt.Progress, meta.size, file, progress.Bytes(), progress.Start(*have))
		n, werr, rerr := copyBody(f, countingReader{resp.Body, &got}, bar)
		bar.Finish()
		resp.Body.Close()
		*have += n
		if werr != nil {
			return fmt.Errorf("hub: %s: writing %s: %w", c.repo, f.Name(), werr)
		}
		if rerr != nil {
			return interrupted(rerr)
		}
		return nil
	}
}

// countingReader adds the bytes read to n, for the rate check of get.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	k, err := r.r.Read(p)
	r.n.Add(int64(k))
	return k, err
}

func (c *repoCache) interrupted(ctx context.Context, file string, have, size int64, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return fmt.Errorf("hub: %s: download of %s stopped at %d of %d bytes (%w); run again to resume", c.repo, file, have, size, err)
}

// rangeStart reads the first byte position of "bytes start-end/total".
func rangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(start), 10, 64)
	return n, err == nil
}

// copyBody streams src to dst; write errors (werr) and read errors (rerr) are
// kept apart because only the latter leave a resumable download.
func copyBody(dst io.Writer, src io.Reader, bar *progress.Bar) (n int64, werr, rerr error) {
	buf := make([]byte, 1<<20)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			w, e := dst.Write(buf[:k])
			n += int64(w)
			bar.Add(int64(w))
			if e != nil {
				return n, diskFull(e), nil
			}
		}
		if err == io.EOF {
			return n, nil, nil
		}
		if err != nil {
			return n, nil, err
		}
	}
}

// diskFull tags "no space left on device" with ErrDiskFull.
func diskFull(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return err
}

// verify checks the first size bytes of f against the etag: a 64-hex etag is
// the sha256 of an LFS file, a 40-hex one git's sha1 of "blob <size>\0" and
// the content. Other etags carry no checksum.
func verify(f *os.File, size int64, etag string) error {
	var h hash.Hash
	switch {
	case isHex(etag, 64):
		h = sha256.New()
	case isHex(etag, 40):
		h = sha1.New()
		fmt.Fprintf(h, "blob %d\x00", size)
	default:
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.CopyN(h, f, size); err != nil {
		return fmt.Errorf("reading it back: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(etag) {
		return fmt.Errorf("%w: expected %s, got %s", ErrChecksum, strings.ToLower(etag), got)
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// linkBlob points the snapshot file at the blob with a relative symlink, as
// huggingface_hub does, or copies it where symlinks are not supported.
func linkBlob(blob, pointer string) error {
	rel, err := filepath.Rel(filepath.Dir(pointer), blob)
	if err != nil {
		rel = blob
	}
	os.Remove(pointer)
	if err := os.Symlink(rel, pointer); err == nil {
		return nil
	}
	src, err := os.Open(blob)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(pointer)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		os.Remove(pointer)
		return err
	}
	return dst.Close()
}
