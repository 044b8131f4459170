package serve

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"
	"unicode"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/core/preprocess"
)

// assets are the page: plain HTML, CSS and JavaScript, no build step and no external request.
//
//go:embed assets
var assets embed.FS

// staticFiles are the files under /static/ with their types; nothing else is served there.
var staticFiles = map[string]string{
	"app.js":    "text/javascript; charset=utf-8",
	"style.css": "text/css; charset=utf-8",
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// A deep link must name an image that exists: anything else is a 404, not an empty page.
	if q.Has("image") || q.Has("upload") {
		if _, err := s.parseSource(r); err != nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "404: no such image\n")
			return
		}
	}
	page, _ := assets.ReadFile("assets/index.html")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(page)
}

func (s *Server) handleStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	typ, ok := staticFiles[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	data, _ := assets.ReadFile("assets/" + name)
	w.Header().Set("Content-Type", typ)
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(data)
}

// infoJSON is GET /api/info.
type infoJSON struct {
	Model        string     `json:"model"`
	Labels       int        `json:"labels"`
	Latents      int        `json:"latents"`
	Applications int        `json:"applications"`
	Input        [2]int     `json:"input"` // [H, W] the model sees
	Kinds        []kindInfo `json:"kinds"`
	Colormaps    []string   `json:"colormaps"`
	Images       bool       `json:"images"`
	Features     bool       `json:"features"`
	SAE          bool       `json:"sae"`
	MaxUpload    int64      `json:"max_upload"`
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	cfg := &s.model.Config
	prep := s.model.Preprocessor
	info := infoJSON{
		Model: s.opt.ModelName, Labels: cfg.NumLabels(), Latents: cfg.NumLatents,
		Applications: cfg.NumSelfAttentionApplications(), Input: [2]int{prep.Size.Height, prep.Size.Width},
		Colormaps: colormapNames(), Images: s.images != nil, Features: s.feat != nil, SAE: s.opt.SAE != nil, MaxUpload: s.opt.MaxUpload,
	}
	for _, k := range s.kinds {
		info.Kinds = append(info.Kinds, kindInfo{Name: k.Name, Title: k.Title, Help: k.Help, PerClass: k.PerClass, Steps: k.Steps, Signed: k.Signed, Costly: k.Costly, Relevance: k.Relevance})
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) handleImages(w http.ResponseWriter, r *http.Request) {
	if s.images == nil {
		writeJSON(w, http.StatusOK, map[string]any{"images": []imageEntry{}, "truncated": false})
		return
	}
	list, more, err := s.images.list(maxListed)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if list == nil {
		list = []imageEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"images": list, "truncated": more})
}

func writePNG(w http.ResponseWriter, data []byte) {
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

// handleThumb serves a thumbnail of the original image, decoded under the same limits as an
// analysis, at most two at a time.
func (s *Server) handleThumb(w http.ResponseWriter, r *http.Request) {
	src, err := s.parseSource(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if src.upload != nil {
		writePNG(w, src.upload.thumb)
		return
	}
	if data, ok := s.thumbC.get(src.key); ok {
		writePNG(w, data)
		return
	}
	data, err := s.thumbs.do(src.key, func() ([]byte, error) {
		var data []byte
		// Shared by every request for this thumbnail: one client leaving must not cancel it.
		err := s.aux.do(context.WithoutCancel(r.Context()), func() error {
			f, err := s.images.openImage(src.name)
			if err != nil {
				return err
			}
			defer f.Close()
			img, err := preprocess.Decode(f, src.name, s.opt.Decode)
			if err != nil {
				return err
			}
			data = thumbnailPNG(img, thumbSide)
			return nil
		})
		if err == nil {
			s.thumbC.put(src.key, data, int64(len(data)))
		}
		return data, err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writePNG(w, data)
}

// analysisJSON is GET /api/analysis and the answer to POST /api/upload.
type analysisJSON struct {
	Image        string       `json:"image,omitempty"`  // the folder's name for it
	Upload       string       `json:"upload,omitempty"` // or the upload's id
	Name         string       `json:"name"`
	Height       int          `json:"height"`
	Width        int          `json:"width"`
	Latents      int          `json:"latents"`
	Applications int          `json:"applications"`
	Top          []prediction `json:"top"`
	Decoder      []float32    `json:"decoder"` // [L] the decoder query's attention over latents
	Rollout      []float32    `json:"rollout"` // [L] d·R through all applications
	Seconds      float64      `json:"seconds"` // time of the forward pass and reductions
}

func (s *Server) analysisResponse(src *source, a *Analysis) analysisJSON {
	out := analysisJSON{
		Name: src.name, Height: a.H, Width: a.W, Latents: a.Latents, Applications: a.Applications,
		Top: top(a.Probs, s.labels, 5), Decoder: a.Decoder, Rollout: a.RolloutWeights[a.Applications],
		Seconds: a.Elapsed.Seconds(),
	}
	if src.upload != nil {
		out.Upload = src.upload.id
	} else {
		out.Image = src.name
	}
	return out
}

// sourceAnalysis resolves the request's image and returns its analysis.
func (s *Server) sourceAnalysis(w http.ResponseWriter, r *http.Request) (*source, *Analysis, bool) {
	src, err := s.parseSource(r)
	if err != nil {
		s.fail(w, r, err)
		return nil, nil, false
	}
	a, err := s.analysis(r.Context(), src)
	if err != nil {
		s.fail(w, r, err)
		return nil, nil, false
	}
	return src, a, true
}

func (s *Server) handleAnalysis(w http.ResponseWriter, r *http.Request) {
	src, a, ok := s.sourceAnalysis(w, r)
	if ok {
		writeJSON(w, http.StatusOK, s.analysisResponse(src, a))
	}
}

// handleInput serves the cropped and resized image the model saw, one pixel per input position.
func (s *Server) handleInput(w http.ResponseWriter, r *http.Request) {
	_, a, ok := s.sourceAnalysis(w, r)
	if ok {
		writePNG(w, encodePNG(rgbImage(a.Image)))
	}
}

// intParam reads an optional integer parameter in [lo, hi].
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("%s=%q: want a whole number in [%d, %d]", name, v, lo, hi)
	}
	return n, nil
}

// writeMap answers a map as a PNG with its value range in X-Map-Min and X-Map-Max and whether
// it is signed in X-Map-Signed. A signed map is drawn over a range symmetric about zero, by
// default in the diverging colour map, so that zero is its centre whatever the map.
func (s *Server) writeMap(w http.ResponseWriter, r *http.Request, m []float32, a *Analysis, signed bool) {
	name := r.URL.Query().Get("cmap")
	if name == "" && signed {
		name = divergingName
	}
	cm, ok := colormapByName(name)
	if !ok {
		s.fail(w, r, badRequest("cmap=%q: want one of %s", name, strings.Join(colormapNames(), ", ")))
		return
	}
	data, lo, hi := heatmapPNG(m, a.H, a.W, cm, signed)
	w.Header().Set("X-Map-Min", formatFloat(lo))
	w.Header().Set("X-Map-Max", formatFloat(hi))
	w.Header().Set("X-Map-Signed", strconv.FormatBool(signed))
	writePNG(w, data)
}

func (s *Server) handleMap(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("kind")
	var kind *Kind
	for i := range s.kinds {
		if s.kinds[i].Name == name {
			kind = &s.kinds[i]
		}
	}
	if kind == nil {
		names := make([]string, len(s.kinds))
		for i, k := range s.kinds {
			names[i] = k.Name
		}
		s.fail(w, r, badRequest("kind=%q: want one of %s", name, strings.Join(names, ", ")))
		return
	}
	src, a, ok := s.sourceAnalysis(w, r)
	if !ok {
		return
	}
	topClass := top(a.Probs, nil, 1)[0].Index
	var q Query
	var err error
	if q.Class, err = intParam(r, "class", topClass, 0, len(a.Probs)-1); err != nil {
		s.fail(w, r, err)
		return
	}
	if q.Step, err = intParam(r, "step", a.Applications, 0, a.Applications); err != nil {
		s.fail(w, r, err)
		return
	}
	var m []float32
	if kind.Costly {
		m, err = s.costlyMap(r.Context(), src, a, kind, q)
	} else {
		m = make([]float32, a.H*a.W)
		err = kind.Map(m, a, q)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeMap(w, r, m, a, kind.Signed)
}

// handleLatent serves one latent's row of the encoder cross-attention.
func (s *Server) handleLatent(w http.ResponseWriter, r *http.Request) {
	_, a, ok := s.sourceAnalysis(w, r)
	if !ok {
		return
	}
	l, err := intParam(r, "latent", -1, 0, a.Latents-1)
	if err == nil && l < 0 {
		err = badRequest("latent: required, in [0, %d]", a.Latents-1)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	m := make([]float32, a.H*a.W)
	attention.LatentMap(m, a.Cross, l, a.H*a.W)
	s.writeMap(w, r, m, a, false)
}

func (s *Server) handleColorbar(w http.ResponseWriter, r *http.Request) {
	cm, ok := colormapByName(r.URL.Query().Get("cmap"))
	if !ok {
		s.fail(w, r, badRequest("cmap: want one of %s", strings.Join(colormapNames(), ", ")))
		return
	}
	writePNG(w, colorbarPNG(cm))
}

// handleUpload reads the multipart field "file" (at most MaxUpload bytes, streamed, never to
// disk), decodes and preprocesses it in the analysis queue under the decoding limits, runs the
// analysis and answers it as GET /api/analysis would, with the upload's id.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	// The body may hold a little multipart framing around the file.
	r.Body = http.MaxBytesReader(w, r.Body, s.opt.MaxUpload+64<<10)
	data, filename, err := readUploadFile(r, s.opt.MaxUpload)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id := uploadID(data)
	u, ok := s.uploads.get(id)
	if !ok {
		u = &upload{id: id, name: filename}
		err = s.queue.do(r.Context(), func() error {
			img, err := preprocess.Decode(bytes.NewReader(data), "upload", s.opt.Decode)
			if err != nil {
				return err
			}
			if u.prep, err = s.model.Preprocessor.Process(img); err != nil {
				return &httpError{http.StatusUnprocessableEntity, "upload: " + err.Error()}
			}
			u.thumb = thumbnailPNG(img, thumbSide)
			return nil
		})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.uploads.put(id, u, int64(len(u.prep.Pixels)*4+len(u.prep.Resized.Pix)+len(u.thumb)))
	}
	src := &source{key: "upload:" + id, name: u.name, upload: u}
	a, err := s.analysis(r.Context(), src)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.analysisResponse(src, a))
}

// readUploadFile returns the content and sanitised base name of the multipart field "file".
func readUploadFile(r *http.Request, limit int64) ([]byte, string, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, "", badRequest("upload: want a multipart/form-data body with a field \"file\"")
	}
	for {
		part, err := mr.NextPart()
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, "", uploadTooLarge(limit)
			}
			return nil, "", badRequest("upload: no field \"file\" in the form")
		}
		if part.FormName() != "file" {
			part.Close()
			continue
		}
		data, err := io.ReadAll(io.LimitReader(part, limit+1))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig) || int64(len(data)) > limit:
			return nil, "", uploadTooLarge(limit)
		case err != nil:
			return nil, "", badRequest("upload: reading the file: %v", err)
		case len(data) == 0:
			return nil, "", badRequest("upload: the file is empty")
		}
		return data, cleanFilename(part), nil
	}
}

func uploadTooLarge(limit int64) error {
	return &httpError{http.StatusRequestEntityTooLarge, "upload: the file is larger than " + strconv.FormatInt(limit>>20, 10) + " MB"}
}

// cleanFilename keeps the base name of an upload for display: printable, at most 100 runes.
func cleanFilename(p *multipart.Part) string {
	name := path.Base(strings.ReplaceAll(p.FileName(), "\\", "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, name)
	if rs := []rune(name); len(rs) > 100 {
		name = string(rs[:100])
	}
	if name == "" || name == "." || name == "/" {
		name = "upload"
	}
	return name
}
