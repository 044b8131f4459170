// Package hub turns a model argument into a local folder holding config.json,
// preprocessor_config.json and the weights.
//
// A model argument is either a folder (returned as is) or a Hugging Face hub id
// "org/name", optionally "org/name@revision" where the revision is a branch,
// tag, commit or a ref such as "refs/pr/1". Ids resolve through the same disk
// cache that Python's huggingface_hub uses, so files downloaded by either side
// are seen by the other:
//
//	<cache>/models--org--name/
//	    blobs/<etag>                     file contents, named by sha256 (LFS) or git sha1
//	    refs/<revision>                  the commit hash the revision pointed to
//	    snapshots/<commit>/<file>        relative symlink to ../../blobs/<etag>
//	    .no_exist/<commit>/<file>        empty marker: the file is absent at that commit
//
// Files missing from the cache are fetched from
// {endpoint}/{org/name}/resolve/{revision}/{file}: a HEAD request without
// automatic redirects gives the commit (X-Repo-Commit), the etag
// (X-Linked-Etag for LFS files, else ETag) and the size (X-Linked-Size, else
// Content-Length); relative redirects (renamed repositories) are followed, an
// absolute one is the CDN location of an LFS blob. The download goes to
// blobs/<etag>.incomplete, resumes with a Range request, is abandoned (kept for
// the next run, ErrStalled naming the file) when fewer than Options.MinRate bytes
// per second (default 1 KiB/s; a server trickling bytes) arrive over a window of
// Options.ReadTimeout (HF_HUB_DOWNLOAD_TIMEOUT, default 10 s), is checked against
// the etag (sha256 of the content for LFS, git's blob sha1 otherwise) and only
// then renamed into place. The weights are model.safetensors when the
// repository has it, else pytorch_model.bin; the hub reports absence as 404
// with X-Error-Code "EntryNotFound", distinct from "RepoNotFound" (an unknown
// or private repository, also sent as a bare 401) and "RevisionNotFound".
//
// Offline (HF_HUB_OFFLINE=1) nothing is requested and the cache must hold the
// files; when the endpoint cannot be reached at all, the cache is used too,
// as huggingface_hub does. Errors are one line, name the repository and file,
// and wrap one of the Err… values for errors.Is.
package hub
