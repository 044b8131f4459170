package hub_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/perceiverkit/perceiver/core/hub"
)

func ExampleParseRepoID() {
	repo, rev, ok := hub.ParseRepoID("deepmind/vision-perceiver-fourier@refs/pr/1")
	fmt.Println(repo, rev, ok)
	_, _, ok = hub.ParseRepoID("./weights")
	fmt.Println(ok)
	// Output:
	// deepmind/vision-perceiver-fourier refs/pr/1 true
	// false
}

func ExampleIsRepoID() {
	fmt.Println(hub.IsRepoID("deepmind/vision-perceiver-fourier"))
	fmt.Println(hub.IsRepoID(os.TempDir())) // a folder
	// Output:
	// true
	// false
}

func ExampleOptionsFromEnv() {
	env := map[string]string{"HF_HOME": "/data/hf", "HF_HUB_OFFLINE": "1"}
	opt := hub.OptionsFromEnv(func(k string) string { return env[k] })
	fmt.Println(opt.Endpoint, opt.CacheDir, opt.Offline)
	// Output: https://huggingface.co /data/hf/hub true
}

func ExampleResolve() {
	// A folder is used as it is; a hub id resolves through the cache. Real
	// callers pass hub.OptionsFromEnv(os.Getenv) with Progress: os.Stderr.
	opt := hub.Options{CacheDir: os.TempDir(), Offline: true}
	dir, err := hub.Resolve(context.Background(), os.TempDir(), opt)
	fmt.Println(dir == os.TempDir(), err)

	_, err = hub.Resolve(context.Background(), "nobody/not-cached", opt)
	fmt.Println(errors.Is(err, hub.ErrNotCached))
	// Output:
	// true <nil>
	// true
}
