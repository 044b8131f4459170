package hub

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultEndpoint is the Hugging Face hub.
const DefaultEndpoint = "https://huggingface.co"

// Options says where and how Resolve finds models. Empty fields take
// huggingface_hub's defaults (not the environment: see OptionsFromEnv).
type Options struct {
	Endpoint string    // hub address; "" means DefaultEndpoint
	Token    string    // sent as "Authorization: Bearer"; "" sends none
	CacheDir string    // the hub cache folder; "" means ~/.cache/huggingface/hub
	Offline  bool      // never use the network
	Revision string    // used when the id has no @revision; "" means "main"
	Progress io.Writer // download progress bars; nil draws none, and non-terminals stay silent
	Client   *http.Client
	// ReadTimeout ends a download that receives no byte for this long (a stalled server or
	// connection), naming the file; the partial file is kept for the next run to resume. 0 means
	// DefaultReadTimeout.
	ReadTimeout time.Duration
	// MinRate ends a download that receives fewer than this many bytes per second over a window
	// of ReadTimeout (a server trickling a byte at a time never trips the idle timeout), naming
	// the file; the partial file is kept. 0 means DefaultMinRate; negative means none.
	MinRate float64
}

// OptionsFromEnv reads huggingface_hub's environment variables through getenv
// (usually os.Getenv): HF_ENDPOINT; HF_TOKEN, else HUGGING_FACE_HUB_TOKEN,
// else the token file saved by `huggingface-cli login` (HF_TOKEN_PATH, else
// $HF_HOME/token); HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else
// $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub; HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set to
// 1, ON, YES or TRUE (any case); HF_HUB_DOWNLOAD_TIMEOUT (seconds) as ReadTimeout.
func OptionsFromEnv(getenv func(string) string) Options {
	expand := func(p string) string {
		if p == "~" || strings.HasPrefix(p, "~/") {
			home := getenv("HOME")
			if home == "" {
				home, _ = os.UserHomeDir()
			}
			p = home + p[1:]
		}
		return os.Expand(p, getenv)
	}
	first := func(names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return ""
	}

	hfHome := first("HF_HOME")
	if hfHome == "" {
		cache := first("XDG_CACHE_HOME")
		if cache == "" {
			cache = "~/.cache"
		}
		hfHome = filepath.Join(cache, "huggingface")
	}
	hfHome = expand(hfHome)

	var o Options
	o.Endpoint = strings.TrimRight(first("HF_ENDPOINT"), "/")
	if o.Endpoint == "" {
		o.Endpoint = DefaultEndpoint
	}
	o.CacheDir = first("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(hfHome, "hub")
	}
	o.CacheDir = expand(o.CacheDir)
	o.Token = strings.TrimSpace(first("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"))
	if o.Token == "" {
		path := first("HF_TOKEN_PATH")
		if path == "" {
			path = filepath.Join(hfHome, "token")
		}
		if b, err := os.ReadFile(expand(path)); err == nil {
			o.Token = strings.TrimSpace(string(b))
		}
	}
	o.Offline = isTrue(getenv("HF_HUB_OFFLINE")) || isTrue(getenv("TRANSFORMERS_OFFLINE"))
	if s, err := strconv.ParseFloat(strings.TrimSpace(getenv("HF_HUB_DOWNLOAD_TIMEOUT")), 64); err == nil && s > 0 && s < 1e6 {
		o.ReadTimeout = time.Duration(s * float64(time.Second))
	}
	return o
}

func isTrue(v string) bool {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

// withDefaults fills the empty fields of o.
func (o Options) withDefaults() Options {
	if o.Endpoint == "" {
		o.Endpoint = DefaultEndpoint
	}
	o.Endpoint = strings.TrimRight(o.Endpoint, "/")
	if o.CacheDir == "" {
		o.CacheDir = OptionsFromEnv(func(k string) string {
			if k == "HOME" {
				return os.Getenv("HOME")
			}
			return ""
		}).CacheDir
	}
	if o.Revision == "" {
		o.Revision = "main"
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.MinRate == 0 {
		o.MinRate = DefaultMinRate
	}
	return o
}

// DefaultReadTimeout is how long a download may receive nothing before it is abandoned (and
// left to resume): huggingface_hub's default HF_HUB_DOWNLOAD_TIMEOUT.
const DefaultReadTimeout = 10 * time.Second

// DefaultMinRate is the slowest download kept going, in bytes per second: far below any real
// link, far above a server that trickles bytes to hold a connection.
const DefaultMinRate = 1024

// repoPart is one side of "org/name", as the hub allows it: word characters,
// '-' and '.', not starting or ending with '-' or '.'.
var repoPart = regexp.MustCompile(`^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$`)

// revisionPattern admits branch, tag and commit names, including "refs/pr/1".
var revisionPattern = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_./-]*$`)

// commitPattern is a full git commit hash.
var commitPattern = regexp.MustCompile(`^[0-9a-f]{40}$`)

// ParseRepoID splits "org/name" or "org/name@revision" and reports whether s
// has that form; revision is "" when s names none. It does not look at the
// file system.
func ParseRepoID(s string) (repo, revision string, ok bool) {
	repo = s
	if i := strings.IndexByte(s, '@'); i >= 0 {
		repo, revision = s[:i], s[i+1:]
		if !revisionPattern.MatchString(revision) || strings.Contains(revision, "..") ||
			strings.Contains(revision, "//") || strings.HasSuffix(revision, "/") {
			return "", "", false
		}
	}
	org, name, found := strings.Cut(repo, "/")
	if !found || len(repo) > 96 || !repoPart.MatchString(org) || !repoPart.MatchString(name) ||
		strings.Contains(repo, "--") || strings.Contains(repo, "..") {
		return "", "", false
	}
	return repo, revision, true
}

// IsRepoID reports whether s is a hub id ("org/name" or "org/name@rev") and
// not an existing local folder, which takes precedence.
func IsRepoID(s string) bool {
	if _, _, ok := ParseRepoID(s); !ok {
		return false
	}
	if fi, err := os.Stat(s); err == nil && fi.IsDir() {
		return false
	}
	return true
}
