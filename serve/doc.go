// Package serve is the explorer behind `probe serve`: an HTTP handler that shows, for an image,
// the model's top-5, the attention maps over the image, the latents, and, with stored features,
// the layer-by-layer probe report and a PCA scatter. The page (assets/) is plain HTML, CSS and
// JavaScript embedded in the binary; it requests nothing from any other origin and works offline.
//
// # Routes
//
// Images are named by image=NAME (a file of the --images folder, slash-separated relative path)
// or upload=ID (an id returned by POST /api/upload). Every answer carries a Content-Security-
// Policy that allows this origin only, and errors under /api are JSON {"error": "..."}.
//
//	GET  /                        the page; /?image=NAME and /?upload=ID are deep links, 404 for
//	                              names that do not exist
//	GET  /static/app.js, style.css
//	GET  /api/info                {model, labels, latents, applications, input: [H, W],
//	                               kinds: [{name, title, help, per_class, steps, signed, costly}],
//	                               colormaps: [..],
//	                               images: bool, features: bool, max_upload}
//	GET  /api/images              {images: [{name, size}], truncated}: the folder, lexical order
//	GET  /api/thumb?image=        PNG, the original image within 128×128
//	GET  /api/analysis?image=     {image | upload, name, height, width, latents, applications,
//	                               top: [{index, label, prob}] (5), decoder: [L], rollout: [L],
//	                               seconds}
//	GET  /api/input.png?image=    PNG, the H×W image the model saw (cropped and resized)
//	GET  /api/map.png?image=&kind=K[&class=C][&step=J][&cmap=M]
//	                              PNG, the H×W map coloured over its own range, which the
//	                              headers X-Map-Min and X-Map-Max give (signed kinds: the range
//	                              symmetric about zero; X-Map-Signed says which); class defaults
//	                              to the top-1, step to all applications, cmap to viridis
//	                              (signed kinds: diverging)
//	GET  /api/latent.png?image=&latent=L[&cmap=M]   latent L's encoder cross-attention, same form
//	GET  /api/relevance?image=&kind=K[&class=C]       a relevance kind's (attnlrp, cp-lrp) per-latent
//	                              relevance [L] and conservation record, JSON (computes its map if needed)
//	GET  /api/colorbar.png?cmap=M 256×1 PNG of the colour map
//	POST /api/upload              multipart/form-data, field "file": answers as /api/analysis,
//	                              with the upload's id
//	GET  /api/features            {source, rows, columns: [{name, dim}], classes, status
//	                               ("running", "done", "error"), progress, results: [linear.Result],
//	                               best, seconds}: the probe report, filled in as columns finish
//	GET  /api/features/pca?column=  {column, rows, points: [[pc1, pc2, label]], explained: [2],
//	                               classes}: at most 2,000 rows, sampled at an even stride
//	GET  /api/sae                 features.json of `probe sae features` (Options.SAE): the
//	                               dictionary by frequency with each entry's top examples
//	GET  /api/sae/png?name=       a PNG of that folder (feature-NNNNN[-i].png, frequency.png,
//	                               l0_fvu.png); other names are refused
//	GET  /api/sae/active?image=   {features: [{index, latent, value}] (the 48 largest), total}:
//	                               the image's active entries, through SAE.Active
//
// # Maps
//
// Maps are row-major over the model's H×W input grid, as in package attention. The kinds are a
// registry (Register, Kinds): mean, decoder and rollout are built in; rollout takes the slider,
// step j meaning (d·Â_j⋯Â_1)·C, the rollout through the first j self-attention applications (j =
// 0 is the decoder map, j = J the full rollout of `probe attention`). A kind that depends on a
// class sets PerClass and receives Query.Class; one that needs more of the forward pass sets
// Trace and precomputes in Prepare. A latent's map is row ℓ of the encoder cross-attention C.
//
// The class-specific methods of package explain (ExplainMethods: chefer, grad-rollout,
// saliency, input-x-gradient, integrated-gradients, smoothgrad) are registered too, through
// ExplainKind: each runs on the analysis' normalised pixels for the class asked, and token-grid
// maps are drawn on the pixels with TokenGrid.ToPixels. They are Costly (a backward pass; 50 for
// integrated gradients, 25 for smoothgrad), and input-x-gradient and integrated-gradients are
// Signed. Occlusion is left out by default (729 forward passes at 224×224).
//
// # Limits
//
//   - Forward passes, and the maps of Costly kinds, run one at a time; Options.QueueLen more may
//     wait (default 8), after which requests get 503 with Retry-After (the mean job time times
//     the jobs ahead). Requests for an image being analysed join that analysis instead of
//     queueing, and requests for a costly map being computed (same image, kind, class and step)
//     join that computation; each costly map is computed once per analysis and kept with it.
//   - Analyses are kept in an LRU cache bounded by Options.Cache bytes (default 1 GiB; about
//     103 MB per image for the full-size model, which keeps C [512, 50,176]; the analysis
//     running also holds its 48 rollout products, 50 MB). The costly maps an analysis keeps
//     (200 kB each at 224×224) count in its bytes as they are added, so they too may evict. Uploads are kept preprocessed (at
//     most 64) so that an evicted analysis can be recomputed.
//   - Thumbnails and PCA run two at a time with 64 waiting, then 503.
//   - Uploads: at most Options.MaxUpload bytes (default 20 MB; 413 beyond), read from the
//     stream, never written to disk. Files and uploads decode under Options.Decode: headers
//     declaring more than MaxPixels pixels (default preprocess.DefaultMaxPixels) are refused
//     before decoding (413), as are files of the folder over 512 MB; data that is not an image
//     is a 415.
//
// # Security
//
// Names resolve through an os.Root on the folder: "..", absolute paths, and symlinks leading
// outside it (at the moment of the open) fail; names must also be clean, not hidden, and end in
// an image extension. Anything that fails is a plain 404. No route serves a directory listing or
// arbitrary files; unclean URL paths are 404, not redirects. With Options.LocalOnly, requests
// whose Host is not a loopback name get 421 (DNS rebinding); POSTs from another origin get 403.
// Handlers recover from panics (500), so a bad request never ends the process.
package serve
