package hub

import "errors"

// Causes wrapped by the errors of Resolve; test them with errors.Is.
var (
	// ErrRepoNotFound: the hub knows no such repository, or it is private and
	// no valid HF_TOKEN was sent.
	ErrRepoNotFound = errors.New("repository not found")
	// ErrAccessDenied: the repository is gated or the token lacks access.
	ErrAccessDenied = errors.New("access denied")
	// ErrRevisionNotFound: the repository has no such branch, tag or commit.
	ErrRevisionNotFound = errors.New("revision not found")
	// ErrEntryNotFound: the repository has no such file at that revision.
	ErrEntryNotFound = errors.New("file not found")
	// ErrNotCached: offline (or the hub is unreachable) and the cache lacks a file.
	ErrNotCached = errors.New("not in the cache")
	// ErrChecksum: the downloaded bytes do not match the hub's etag.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrDiskFull: the cache's disk has no room for the file.
	ErrDiskFull = errors.New("disk full")
	// ErrBadModel: the argument is neither a folder nor a hub id.
	ErrBadModel = errors.New("not a folder or hub id")
)

// ErrStalled: a download received nothing for Options.ReadTimeout; the bytes received are kept
// and the next run resumes from them.
var ErrStalled = errors.New("download stalled")
