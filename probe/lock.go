package probe

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LockPath is the lock file of a write to path: a hidden file next to it
// holding "host pid". Each shard's part file has its own lock, so shards
// of one output never contend.
func LockPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".lock")
}

// LockedError reports an output that another writer holds.
type LockedError struct {
	Path string // the output
	Lock string // the lock file
	Host string // the holder's host name
	PID  int    // the holder's process id on Host
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is being written by pid %d on %s (lock %s); wait for that run, or remove the lock if it is gone",
		e.Path, e.PID, e.Host, e.Lock)
}

// writeLock is a held lock. Its content ends with a token drawn for this holder (its
// generation): a writer that was paused past LockStale and taken over finds another token in the
// file and stops (ErrSuperseded), even if the new holder runs on the same host with the same pid.
type writeLock struct {
	path    string
	key     string // canonical(path), the key in heldLocks
	content string
	token   string // this holder's generation, also in its checkpoint names
	stop    chan struct{}
	done    chan struct{}
}

// acquireLock takes the lock of a write to path. The lock file is created
// exclusively (O_EXCL, which shared file systems honour), so of two
// writers exactly one wins; the other gets a *LockedError naming the
// holder. A lock is taken over, and notify told, when its holder is known
// to be gone: a pid on this host that no longer runs (or this pid, not held
// by this process), or a lock not refreshed for LockStale.
func acquireLock(path string, notify func(string)) (*writeLock, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("lock %s: host name: %w", path, err)
	}
	lp := LockPath(path)
	key := canonical(lp)
	var tb [8]byte
	if _, err := rand.Read(tb[:]); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	token := hex.EncodeToString(tb[:])
	content := fmt.Sprintf("%s %d %s\n", host, os.Getpid(), token)
	for attempt := 0; attempt < 4; attempt++ {
		f, err := os.OpenFile(lp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, werr := f.WriteString(content)
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				os.Remove(lp)
				return nil, fmt.Errorf("lock %s: %w", lp, werr)
			}
			l := &writeLock{path: lp, key: key, content: content, token: token, stop: make(chan struct{}), done: make(chan struct{})}
			heldLocks.Store(key, true)
			go l.refresh()
			return l, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("lock: %w", err)
		}
		held, err := os.ReadFile(lp)
		if errors.Is(err, fs.ErrNotExist) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("lock: %w", err)
		}
		hHost, hPID, ok := parseLock(string(held))
		if !ok && len(held) == 0 && attempt < 2 {
			time.Sleep(20 * time.Millisecond) // created this instant, its content not yet written
			continue
		}
		if !ok {
			// Being written this instant, or damaged: name it rather than guess.
			return nil, fmt.Errorf("%s: lock %s holds %q, not \"host pid\"; remove it if no run is writing", path, lp, strings.TrimSpace(string(held)))
		}
		var gone string
		switch {
		case hHost == host && hPID == os.Getpid():
			if _, mine := heldLocks.Load(key); mine {
				return nil, &LockedError{Path: path, Lock: lp, Host: hHost, PID: hPID}
			}
			gone = fmt.Sprintf("pid %d on %s, an earlier process with this pid (a restarted container)", hPID, hHost)
		case hHost == host && !processAlive(hPID):
			gone = fmt.Sprintf("pid %d on %s, which no longer runs", hPID, hHost)
		default:
			st, err := os.Stat(lp)
			if err != nil {
				continue
			}
			age := time.Since(st.ModTime())
			if age <= LockStale {
				return nil, &LockedError{Path: path, Lock: lp, Host: hHost, PID: hPID}
			}
			gone = fmt.Sprintf("pid %d on %s, not refreshed for %s", hPID, hHost, age.Round(time.Second))
		}
		// A dead holder on this host. Move its lock aside (rename is atomic:
		// of several takers one moves it), and check that what moved is still
		// the dead holder's lock, not a fresh one taken in between.
		aside := fmt.Sprintf("%s.stale-%d", lp, os.Getpid())
		if err := os.Rename(lp, aside); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("lock: %w", err)
		}
		moved, _ := os.ReadFile(aside)
		if string(moved) != string(held) {
			os.Rename(aside, lp) // a live lock: put it back
			continue
		}
		os.Remove(aside)
		notify(fmt.Sprintf("%s: taking over the lock of %s", path, gone))
	}
	return nil, fmt.Errorf("%s: could not take lock %s: it keeps changing hands", path, lp)
}

func parseLock(s string) (host string, pid int, ok bool) {
	f := strings.Fields(s)
	if len(f) != 2 && len(f) != 3 { // "host pid", or "host pid token" since the generation token
		return "", 0, false
	}
	pid, err := strconv.Atoi(f[1])
	if err != nil || pid <= 0 {
		return "", 0, false
	}
	return f[0], pid, true
}

// processAlive reports whether pid exists on this host. EPERM means it
// exists under another user.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// refresh touches the lock every lockRefresh while it is held, so that
// others can tell a live holder on another host from a dead one.
func (l *writeLock) refresh() {
	defer close(l.done)
	t := time.NewTicker(lockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if l.ours() {
				now := time.Now()
				os.Chtimes(l.path, now, now)
			}
		}
	}
}

func (l *writeLock) ours() bool {
	b, err := os.ReadFile(l.path)
	return err == nil && string(b) == l.content
}

// ErrSuperseded reports a writer whose lock was taken over (it was paused or cut off past
// LockStale): it must not write another checkpoint or the output. Test with errors.Is.
var ErrSuperseded = errors.New("superseded")

// check returns nil while the lock is still this holder's, and otherwise an error wrapping
// ErrSuperseded naming the current holder. Writers call it before every checkpoint and before
// the output is put in place.
func (l *writeLock) check(output string) error {
	if l == nil || l.ours() {
		return nil
	}
	b, err := os.ReadFile(l.path)
	holder := "nobody (the lock is gone)"
	if err == nil {
		if h, pid, ok := parseLock(string(b)); ok {
			holder = fmt.Sprintf("pid %d on %s", pid, h)
		}
	}
	return fmt.Errorf("%s: this writer was %w: its lock %s now belongs to %s (this process was paused or cut off for over %s); stopping without writing, the new holder finishes the output",
		output, ErrSuperseded, l.path, holder, LockStale)
}

// release stops the refreshing and removes the lock if it is still ours.
func (l *writeLock) release() error {
	if l == nil {
		return nil
	}
	close(l.stop)
	<-l.done
	heldLocks.Delete(l.key)
	if !l.ours() {
		return nil // taken over or removed by hand: not ours to remove
	}
	return os.Remove(l.path)
}

// LockStale is how long a lock may go unrefreshed before it is taken over
// whatever host holds it: a writer refreshes its lock's modification time
// every lockRefresh, so an older lock belongs to a process that is gone
// (a failed node, a deleted pod), whose pid cannot be checked from here.
var LockStale = 2 * time.Minute

var lockRefresh = 20 * time.Second

// heldLocks are the lock files this process holds. A lock naming this host and
// this pid that is not in heldLocks was left by an earlier process that had the
// same pid: a container restarted in place runs as the same pid (often 1)
// under the same host name.
var heldLocks sync.Map

// canonical names a file by its folder's absolute, link-free path, so that
// two spellings of one output meet in heldLocks.
func canonical(path string) string {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return path
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return filepath.Join(dir, filepath.Base(path))
}
