package hub

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Files a model folder needs; the weights are the first of weightFiles found.
var (
	requiredFiles = []string{"config.json", "preprocessor_config.json"}
	weightFiles   = []string{"model.safetensors", "pytorch_model.bin"}
)

// Resolve returns a folder holding the model: model itself when it is an
// existing folder, else, for a hub id "org/name[@revision]", the cache's
// snapshot folder after fetching what is missing (unless offline).
func Resolve(ctx context.Context, model string, opt Options) (dir string, err error) {
	if fi, err := os.Stat(model); err == nil {
		if !fi.IsDir() {
			return "", fmt.Errorf("hub: model %s is a file; want a folder with config.json or a hub id org/name: %w", model, ErrBadModel)
		}
		return model, nil
	}
	repo, rev, ok := ParseRepoID(model)
	if !ok {
		return "", fmt.Errorf("hub: model %q is neither an existing folder nor a hub id like org/name[@revision]: %w", model, ErrBadModel)
	}
	if rev != "" {
		opt.Revision = rev
	}
	opt = opt.withDefaults()
	c := &repoCache{
		opt:  opt,
		repo: repo,
		root: filepath.Join(opt.CacheDir, "models--"+strings.ReplaceAll(repo, "/", "--")),
	}

	// A commit already in the cache needs no network: it cannot change.
	if commitPattern.MatchString(opt.Revision) || opt.Offline {
		dir, err := c.fromCache(opt.Revision)
		if err == nil || opt.Offline {
			return dir, err
		}
	}
	dir, err = c.fetchAll(ctx, opt.Revision)
	var unreachable *unreachableError
	if errors.As(err, &unreachable) {
		// Like huggingface_hub: with no connection, fall back to the cache.
		if cached, cerr := c.fromCache(opt.Revision); cerr == nil {
			return cached, nil
		}
		return "", fmt.Errorf("hub: %s@%s: cannot reach %s (%v) and the cache at %s lacks the files: %w",
			repo, opt.Revision, opt.Endpoint, unreachable.err, c.root, ErrNotCached)
	}
	return dir, err
}

// repoCache is one repository's folder in the hub cache.
type repoCache struct {
	opt  Options
	repo string
	root string // <cache>/models--org--name
}

func (c *repoCache) refPath(rev string) string {
	return filepath.Join(c.root, "refs", filepath.FromSlash(rev))
}

func (c *repoCache) snapshot(commit string) string {
	return filepath.Join(c.root, "snapshots", commit)
}

// fromCache finds a complete snapshot for rev without the network.
func (c *repoCache) fromCache(rev string) (string, error) {
	commit := rev
	if !commitPattern.MatchString(rev) {
		b, err := os.ReadFile(c.refPath(rev))
		if err != nil {
			return "", c.notCached(rev, fmt.Sprintf("no record of revision %q (%s)", rev, c.refPath(rev)))
		}
		commit = strings.TrimSpace(string(b))
		if !commitPattern.MatchString(commit) {
			return "", fmt.Errorf("hub: %s: %s holds %q, not a commit hash", c.repo, c.refPath(rev), commit)
		}
	}
	dir := c.snapshot(commit)
	for _, f := range requiredFiles {
		if !isFile(filepath.Join(dir, f)) {
			return "", c.notCached(rev, f+" is missing from "+dir)
		}
	}
	for _, f := range weightFiles {
		if isFile(filepath.Join(dir, f)) {
			return dir, nil
		}
	}
	return "", c.notCached(rev, "neither "+strings.Join(weightFiles, " nor ")+" is in "+dir)
}

func (c *repoCache) notCached(rev, what string) error {
	how := "connect to download it"
	if c.opt.Offline {
		how = "unset HF_HUB_OFFLINE to download it"
	}
	return fmt.Errorf("hub: %s@%s %w: %s; %s", c.repo, rev, ErrNotCached, what, how)
}

// isFile reports whether p (following symlinks) is a regular file, so a
// snapshot link whose blob was deleted counts as missing.
func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// fetchAll makes sure the snapshot of rev holds every needed file. After the
// first file, rev is pinned to the commit the hub reported, so all files come
// from one commit even if the branch moves meanwhile.
func (c *repoCache) fetchAll(ctx context.Context, rev string) (string, error) {
	commit := ""
	pinned := rev
	for _, f := range requiredFiles {
		got, err := c.fetch(ctx, pinned, f)
		if err != nil {
			return "", err
		}
		commit, pinned = got, got
	}
	var absent []string
	for _, f := range weightFiles {
		_, err := c.fetch(ctx, pinned, f)
		if err == nil {
			return c.snapshot(commit), nil
		}
		if !errors.Is(err, ErrEntryNotFound) {
			return "", err
		}
		absent = append(absent, f)
	}
	return "", fmt.Errorf("hub: %s@%s has no weights (%s): %w", c.repo, rev, strings.Join(absent, ", "), ErrEntryNotFound)
}

// fileURL is the resolve endpoint of a file; the revision is escaped whole,
// so "refs/pr/1" becomes "refs%2Fpr%2F1" as huggingface_hub sends it.
func (c *repoCache) fileURL(rev, file string) string {
	return c.opt.Endpoint + "/" + c.repo + "/resolve/" + url.PathEscape(rev) + "/" + file
}

// writeRef records which commit rev pointed to; a commit needs no ref.
func (c *repoCache) writeRef(rev, commit string) error {
	if rev == commit {
		return nil
	}
	p := c.refPath(rev)
	if b, err := os.ReadFile(p); err == nil && string(b) == commit {
		return nil // unchanged: a read-only cache keeps working
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("hub: %s: %w", c.repo, err)
	}
	if err := os.WriteFile(p, []byte(commit), 0o644); err != nil {
		return fmt.Errorf("hub: %s: writing ref: %w", c.repo, diskFull(err))
	}
	return nil
}

// markAbsent leaves huggingface_hub's marker of a file known to be absent.
func (c *repoCache) markAbsent(commit, file string) {
	p := filepath.Join(c.root, ".no_exist", commit, file)
	if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
	}
}
