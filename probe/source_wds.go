package probe

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// WebDataset sources read tar shards as the webdataset library groups them:
// a member's key is its path up to the first dot of its base name and its
// extension the rest (lower-cased); consecutive members with one key form a
// sample, and a repeated extension starts a new one. Members without a dot
// and top-level __…__ files are not sample members (webdataset drops them
// too; they are counted here). The sample's image is the first of
// wdsImageExts it holds; its label comes from its cls member (an integer as
// text), else from a field of its json member (SourceOptions.LabelField).
//
// Opening lists every shard's member headers (a plain tar is walked by
// seeking over member data; a .tar.gz is decompressed), reading only the
// cls and json members. Stream then reads the image members of the shards
// it needs, each once, sequentially; nothing is unpacked to disk.

// wdsImageExts are the image extensions in webdataset's order of preference.
var wdsImageExts = []string{"jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"}

// wdsSmallMember bounds a cls or json member, which the listing reads whole.
const wdsSmallMember = 1 << 20

func isTarName(base string) bool {
	return strings.HasSuffix(base, ".tar") || strings.HasSuffix(base, ".tar.gz") || strings.HasSuffix(base, ".tgz")
}

// shardStem is a shard's base name without its tar extension.
func shardStem(p string) string {
	b := filepath.Base(p)
	for _, ext := range []string{".tar.gz", ".tgz", ".tar"} {
		if strings.HasSuffix(strings.ToLower(b), ext) {
			return b[:len(b)-len(ext)]
		}
	}
	return b
}

type wdsShard struct {
	path  string
	first int // index of the shard's first item
	n     int // items in the shard
}

type wdsItem struct {
	key      string
	shard    int32
	ext      uint8 // index into wdsImageExts
	hasLabel bool
	label    int64
	name     int32 // index into classes, -1 without a name
}

type wdsSource struct {
	name    string
	opt     SourceOptions
	shards  []wdsShard
	items   []wdsItem
	prefix  bool // ids carry the shard's stem: keys repeat across shards
	classes []string
	// labelFrom says where labels came from: "cls", "json", "cls and json" or "".
	labelFrom string
	digest    []byte
	noImage   []string // "shard:key" of samples without an image (all of them)
	clsOnly   int      // of which had a cls member
	noExt     []string // members without an extension
}

func (s *wdsSource) Len() int          { return len(s.items) }
func (s *wdsSource) Classes() []string { return slices.Clone(s.classes) }
func (s *wdsSource) Name() string {
	return fmt.Sprintf("webdataset %s (%d shards)", s.name, len(s.shards))
}
func (s *wdsSource) containerDigest() []byte { return s.digest }

func (s *wdsSource) fileShards(n int) (func(int) int, bool) {
	return func(i int) int { return int(s.items[i].shard) }, len(s.shards) >= n
}

func (s *wdsSource) Item(i int) Item {
	checkItem(i, len(s.items))
	w := &s.items[i]
	it := Item{Index: i, ID: w.key}
	if s.prefix {
		it.ID = shardStem(s.shards[w.shard].path) + "/" + w.key
	}
	if w.hasLabel {
		it.Label, it.HasLabel = w.label, true
		if w.name >= 0 {
			it.LabelName = s.classes[w.name]
		}
	}
	return it
}

func (s *wdsSource) labelScheme() string {
	switch {
	case s.labelFrom == "":
		return "no labels (no cls or json " + strconv.Quote(s.opt.LabelField) + " in the samples)"
	case s.classes != nil:
		return namedScheme("label names (json "+strconv.Quote(s.opt.LabelField)+")", s.classes)
	case s.labelFrom == "json":
		return "integer labels from json " + strconv.Quote(s.opt.LabelField) + ", kept as given"
	}
	return "integer labels from " + s.labelFrom + " members, kept as given"
}

func (s *wdsSource) skipped() (int, string) {
	n := len(s.noImage) + len(s.noExt)
	if n == 0 {
		return 0, ""
	}
	var parts []string
	if len(s.noImage) > 0 {
		parts = append(parts, fmt.Sprintf("%d samples without an image (%s) left out, %d of them with a cls member: %s",
			len(s.noImage), strings.Join(wdsImageExts, " "), s.clsOnly, firstFew(s.noImage)))
	}
	if len(s.noExt) > 0 {
		parts = append(parts, fmt.Sprintf("%d members without an extension left out (as webdataset does): %s", len(s.noExt), firstFew(s.noExt)))
	}
	return n, strings.Join(parts, "; ")
}

func firstFew(names []string) string {
	const shown = 3
	if len(names) <= shown {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:shown], ", ") + ", …"
}

// tarStream walks the members of one shard, plain or gzipped (by its magic
// bytes, whatever its name), and checks that a plain tar holds all of
// every member's data and its end-of-archive blocks: archive/tar reads a
// tar cut at a member boundary as complete, and seeks past missing data.
type tarStream struct {
	path string
	f    *os.File
	size int64
	pos  *offsetReader // nil for gzip
	gz   *gzip.Reader
	tr   *tar.Reader
	end  int64 // plain tar: end of the last member's padded data
	last string
}

// offsetReader tracks the offset of a file read through archive/tar, and
// lets it seek over member data.
type offsetReader struct {
	f   *os.File
	off int64
}

func (r *offsetReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.off += int64(n)
	return n, err
}

func (r *offsetReader) Seek(offset int64, whence int) (int64, error) {
	n, err := r.f.Seek(offset, whence)
	if err == nil {
		r.off = n
	}
	return n, err
}

func openTarStream(p string) (*tarStream, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("data source: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data source: %w", err)
	}
	t := &tarStream{path: p, f: f, size: st.Size()}
	var magic [2]byte
	n, _ := io.ReadFull(f, magic[:])
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if n == 2 && magic == [2]byte{0x1f, 0x8b} {
		gz, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: gzip: %w", p, err)
		}
		t.gz, t.tr = gz, tar.NewReader(gz)
	} else {
		t.pos = &offsetReader{f: f}
		t.tr = tar.NewReader(t.pos)
	}
	return t, nil
}

func (t *tarStream) Close() error {
	if t.gz != nil {
		t.gz.Close()
	}
	return t.f.Close()
}

// next returns the next regular member, or io.EOF at a complete end.
func (t *tarStream) next() (*tar.Header, error) {
	for {
		hdr, err := t.tr.Next()
		if err == io.EOF {
			if t.pos != nil && t.end+512 > t.size {
				return nil, t.truncated(fmt.Sprintf("no end-of-archive blocks after %d bytes", t.end))
			}
			return nil, io.EOF
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, t.truncated(err.Error())
			}
			return nil, fmt.Errorf("%s: bad tar after member %q: %w", t.path, t.last, err)
		}
		t.last = hdr.Name
		if t.pos != nil {
			start := t.pos.off
			t.end = start + (hdr.Size+511)/512*512
			if start+hdr.Size > t.size {
				return nil, t.truncated(fmt.Sprintf("member %q needs %d bytes from offset %d, the file ends at %d", hdr.Name, hdr.Size, start, t.size))
			}
		}
		if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA {
			return hdr, nil
		}
	}
}

func (t *tarStream) truncated(why string) error {
	after := ""
	if t.last != "" {
		after = fmt.Sprintf(" (last member read: %q)", t.last)
	}
	return fmt.Errorf("%s: truncated tar: %s%s", t.path, why, after)
}

// readMember reads the current member whole.
func (t *tarStream) readMember(hdr *tar.Header) ([]byte, error) {
	b := make([]byte, hdr.Size)
	if _, err := io.ReadFull(t.tr, b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, t.truncated(fmt.Sprintf("member %q ends early", hdr.Name))
		}
		return nil, fmt.Errorf("%s: member %q: %w", t.path, hdr.Name, err)
	}
	return b, nil
}

// wdsSplit is webdataset's base_plus_ext: the key (folder and base name up
// to its first dot) and the lower-cased extension; ok is false for members
// webdataset does not group (no dot, or a top-level __…__ meta file).
func wdsSplit(name string) (key, ext string, ok bool) {
	dir, base := path.Split(name)
	if dir == "" && strings.HasPrefix(base, "__") && strings.HasSuffix(base, "__") {
		return "", "", false
	}
	i := strings.IndexByte(base, '.')
	if i < 0 {
		return "", "", false
	}
	return dir + base[:i], strings.ToLower(base[i+1:]), true
}

// wdsSample is one group of members being read.
type wdsSample struct {
	key   string
	exts  []string
	sizes []int64
	cls   []byte
	json  []byte
	image int    // index into wdsImageExts of the best image so far, -1 none
	data  []byte // Stream: the chosen image's data
	err   error  // Stream: why the image was not read
}

func (g *wdsSample) has(ext string) bool { return slices.Contains(g.exts, ext) }

// walkSamples calls fn with each sample of a shard in order, and with each
// member webdataset does not group (image -2); fn returning false stops
// the walk. want, when not nil, says for a key which image extension's data
// to read (an index into wdsImageExts); cls and json members are read when
// readSmall is set. onMember sees every regular member's header.
func walkSamples(t *tarStream, readSmall bool, onMember func(*tar.Header), want func(key string) (ext int, ok bool), maxImage int64, fn func(*wdsSample) (bool, error)) error {
	var cur *wdsSample
	flush := func() (bool, error) {
		if cur == nil {
			return true, nil
		}
		g := cur
		cur = nil
		return fn(g)
	}
	for {
		hdr, err := t.next()
		if err == io.EOF {
			_, err := flush()
			return err
		}
		if err != nil {
			return err
		}
		if onMember != nil {
			onMember(hdr)
		}
		key, ext, ok := wdsSplit(hdr.Name)
		if !ok { // reported (image -2), and not part of any sample
			if _, err := fn(&wdsSample{key: hdr.Name, image: -2}); err != nil {
				return err
			}
			continue
		}
		if cur == nil || cur.key != key || cur.has(ext) {
			if more, err := flush(); err != nil || !more {
				return err
			}
			cur = &wdsSample{key: key, image: -1}
		}
		cur.exts = append(cur.exts, ext)
		cur.sizes = append(cur.sizes, hdr.Size)
		if k := slices.Index(wdsImageExts, ext); k >= 0 && (cur.image < 0 || k < cur.image) {
			cur.image = k
		}
		switch {
		case readSmall && (ext == "cls" || ext == "json"):
			if hdr.Size > wdsSmallMember {
				return fmt.Errorf("%s: member %q is %d bytes, more than a %s member should hold (%d)", t.path, hdr.Name, hdr.Size, ext, wdsSmallMember)
			}
			b, err := t.readMember(hdr)
			if err != nil {
				return err
			}
			if ext == "cls" {
				cur.cls = b
			} else {
				cur.json = b
			}
		case want != nil:
			if k, ok := want(key); ok && k >= 0 && wdsImageExts[k] == ext {
				if hdr.Size > maxImage {
					cur.err = fmt.Errorf("%s: member %q is %d bytes, over the image limit of %d bytes: skipped", t.path, hdr.Name, hdr.Size, maxImage)
				} else if cur.data, err = t.readMember(hdr); err != nil {
					return err
				}
			}
		}
	}
}

func openWDS(name string, paths []string, opt SourceOptions) (Source, error) {
	s := &wdsSource{name: name, opt: opt}
	h := sha256.New()
	var b []byte
	hashStr := func(x string) {
		b = binary.LittleEndian.AppendUint64(b[:0], uint64(len(x)))
		h.Write(b)
		h.Write([]byte(x))
	}
	var nameLabels []string // per item: the json label when it is a name (nil until one is)
	labelKinds := map[string]bool{}
	for si, p := range paths {
		t, err := openTarStream(p)
		if err != nil {
			return nil, err
		}
		hashStr(filepath.Base(p))
		b = binary.LittleEndian.AppendUint64(b[:0], uint64(t.size))
		h.Write(b)
		sh := wdsShard{path: p, first: len(s.items)}
		seen := map[string]string{}
		err = walkSamples(t, true, func(hdr *tar.Header) {
			hashStr(hdr.Name)
			b = binary.LittleEndian.AppendUint64(b[:0], uint64(hdr.Size))
			h.Write(b)
		}, nil, 0, func(g *wdsSample) (bool, error) {
			where := filepath.Base(p) + ":" + g.key
			if g.image == -2 {
				s.noExt = append(s.noExt, where)
				return true, nil
			}
			if first, dup := seen[g.key]; dup {
				return false, fmt.Errorf("%s: key %q occurs twice (members %s and %s): its members must be adjacent, each extension once", p, g.key, first, strings.Join(g.exts, ","))
			}
			seen[g.key] = strings.Join(g.exts, ",")
			if g.image < 0 {
				s.noImage = append(s.noImage, where)
				if g.cls != nil {
					s.clsOnly++
				}
				return true, nil
			}
			it := wdsItem{key: g.key, shard: int32(si), ext: uint8(g.image), name: -1}
			nameLabel := ""
			switch {
			case g.cls != nil:
				v, err := strconv.ParseInt(strings.TrimSpace(string(g.cls)), 10, 64)
				if err != nil {
					return false, fmt.Errorf("%s: %s.cls holds %q, not an integer label", p, g.key, truncate(string(g.cls), 40))
				}
				it.label, it.hasLabel = v, true
				labelKinds["cls"] = true
			case g.json != nil:
				var fields map[string]json.RawMessage
				if err := json.Unmarshal(g.json, &fields); err != nil {
					return false, fmt.Errorf("%s: %s.json: %v", p, g.key, err)
				}
				raw, ok := fields[opt.LabelField]
				if !ok || string(raw) == "null" {
					break
				}
				var num json.Number
				dec := json.NewDecoder(bytes.NewReader(raw))
				dec.UseNumber()
				var v any
				if err := dec.Decode(&v); err != nil {
					return false, fmt.Errorf("%s: %s.json: field %q: %v", p, g.key, opt.LabelField, err)
				}
				switch x := v.(type) {
				case json.Number:
					num = x
					n, err := strconv.ParseInt(num.String(), 10, 64)
					if err != nil {
						return false, fmt.Errorf("%s: %s.json: field %q is %s, not an integer label", p, g.key, opt.LabelField, num)
					}
					it.label, it.hasLabel = n, true
					labelKinds["json"] = true
				case string:
					nameLabel = x
					it.hasLabel = true
					labelKinds["json names"] = true
				default:
					return false, fmt.Errorf("%s: %s.json: field %q is %s, want an integer or a class name", p, g.key, opt.LabelField, truncate(string(raw), 40))
				}
			}
			if nameLabel != "" && nameLabels == nil {
				nameLabels = make([]string, len(s.items), cap(s.items))
			}
			if nameLabels != nil {
				nameLabels = append(nameLabels, nameLabel)
			}
			s.items = append(s.items, it)
			return true, nil
		})
		t.Close()
		if err != nil {
			return nil, err
		}
		sh.n = len(s.items) - sh.first
		s.shards = append(s.shards, sh)
	}
	if len(s.items) == 0 {
		why := ""
		if n, w := s.skipped(); n > 0 {
			why = ": " + w
		}
		return nil, fmt.Errorf("%s: no samples with an image (%s)%s", name, strings.Join(wdsImageExts, " "), why)
	}
	if labelKinds["json names"] {
		if labelKinds["cls"] || labelKinds["json"] {
			return nil, fmt.Errorf("%s: labels mix integers (cls or json) with names (json %q); use one kind throughout", name, opt.LabelField)
		}
		set := map[string]bool{}
		for _, n := range nameLabels {
			if n != "" {
				set[n] = true
			}
		}
		for n := range set {
			s.classes = append(s.classes, n)
		}
		slices.Sort(s.classes)
		for i, n := range nameLabels {
			if n != "" {
				k, _ := slices.BinarySearch(s.classes, n)
				s.items[i].label, s.items[i].name = int64(k), int32(k)
			}
		}
	}
	var from []string
	if labelKinds["cls"] {
		from = append(from, "cls")
	}
	if labelKinds["json"] || labelKinds["json names"] {
		from = append(from, "json")
	}
	s.labelFrom = strings.Join(from, " and ")
	// Keys that repeat across shards, found by sorting item numbers by key (4 bytes per item, not
	// a map of every key).
	order := make([]int32, len(s.items))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(s.items[a].key, s.items[b].key) })
	repeat := ""
	for k := 1; k < len(order) && repeat == ""; k++ {
		a, b := &s.items[order[k-1]], &s.items[order[k]]
		if a.key == b.key { // within a shard keys are unique (checked above)
			repeat = fmt.Sprintf("%q in %s and %s", a.key, filepath.Base(paths[min(a.shard, b.shard)]), filepath.Base(paths[max(a.shard, b.shard)]))
		}
	}
	order = nil
	s.prefix = repeat != ""
	if s.prefix {
		stems := map[string]string{}
		for _, sh := range s.shards {
			st := shardStem(sh.path)
			if prev, dup := stems[st]; dup {
				return nil, fmt.Errorf("%s: keys repeat across shards (%s) and two shards share the base name %q (%s, %s): ids would not be unique", name, repeat, st, prev, sh.path)
			}
			stems[st] = sh.path
		}
	}
	s.digest = h.Sum(nil)
	return s, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Stream reads the shards holding the wanted items, each once, in order.
func (s *wdsSource) Stream(indices []int) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		for k := 0; k < len(indices); {
			if indices[k] < 0 || indices[k] >= len(s.items) || (k > 0 && indices[k] <= indices[k-1]) {
				panic(itemPanic{indices[k], len(s.items)})
			}
			si := s.items[indices[k]].shard
			sh := s.shards[si]
			end := k
			for end < len(indices) && int(s.items[indices[end]].shard) == int(si) {
				end++
			}
			if !s.streamShard(sh, indices[k:end], yield) {
				return
			}
			k = end
		}
	}
}

// streamShard yields the wanted items of one shard; false when the caller
// stopped or an error was yielded.
func (s *wdsSource) streamShard(sh wdsShard, wanted []int, yield func(Item, error) bool) bool {
	t, err := openTarStream(sh.path)
	if err != nil {
		yield(Item{}, err)
		return false
	}
	defer t.Close()
	next := sh.first // the listed item the next sample with an image must be
	w := 0           // position in wanted
	stopped := false
	changed := func(why string) error {
		return fmt.Errorf("%s: changed since it was listed (%s); open the source again", sh.path, why)
	}
	isWanted := func(key string) (int, bool) {
		if next < sh.first+sh.n && s.items[next].key == key && w < len(wanted) && wanted[w] == next {
			return int(s.items[next].ext), true
		}
		return -1, false
	}
	err = walkSamples(t, false, nil, isWanted, s.opt.MaxImageBytes, func(g *wdsSample) (bool, error) {
		if g.image < 0 {
			return true, nil // left out when listed
		}
		if next >= sh.first+sh.n || s.items[next].key != g.key {
			return false, changed(fmt.Sprintf("sample %q where the listing has %s", g.key, s.describeListed(next, sh)))
		}
		i := next
		next++
		if w >= len(wanted) || wanted[w] != i {
			return true, nil
		}
		w++
		it := s.Item(i)
		switch {
		case g.err != nil:
			it.Err = g.err
		case g.data == nil:
			return false, changed(fmt.Sprintf("sample %q has no %s member", g.key, wdsImageExts[s.items[i].ext]))
		default:
			it.Data = g.data
		}
		if !yield(it, nil) {
			stopped = true
			return false, nil
		}
		return w < len(wanted), nil
	})
	if stopped {
		return false
	}
	if err == nil && w < len(wanted) {
		err = changed(fmt.Sprintf("it ends before sample %q", s.items[wanted[w]].key))
	}
	if err != nil {
		yield(Item{}, err)
		return false
	}
	return true
}

func (s *wdsSource) describeListed(i int, sh wdsShard) string {
	if i >= sh.first+sh.n {
		return "no more samples"
	}
	return strconv.Quote(s.items[i].key)
}

// isBracePattern reports whether p holds a brace expression, {a..b} or
// {x,y}.
func isBracePattern(p string) bool {
	i := strings.IndexByte(p, '{')
	if i < 0 {
		return false
	}
	j := strings.IndexByte(p[i:], '}')
	return j > 0 && strings.ContainsAny(p[i:i+j], ".,")
}

// maxBraceNames bounds a brace expansion.
const maxBraceNames = 10_000_000

// expandBraces expands brace expressions as webdataset's braceexpand does:
// {000..146} counts with the bounds' width when either has a leading zero,
// {a,b} lists alternatives; several expressions multiply, left to right.
func expandBraces(p string) ([]string, error) {
	i := strings.IndexByte(p, '{')
	if i < 0 {
		return []string{p}, nil
	}
	j := strings.IndexByte(p[i:], '}')
	if j < 0 {
		return nil, fmt.Errorf("%s: unbalanced brace", p)
	}
	j += i
	inner := p[i+1 : j]
	var alts []string
	if lo, hi, ok := strings.Cut(inner, ".."); ok && !strings.Contains(inner, ",") {
		a, err1 := strconv.Atoi(lo)
		z, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a < 0 || z < 0 {
			return nil, fmt.Errorf("%s: brace range {%s} needs two non-negative integers", p, inner)
		}
		width := 0
		if (len(lo) > 1 && lo[0] == '0') || (len(hi) > 1 && hi[0] == '0') {
			width = max(len(lo), len(hi))
		}
		step := 1
		if z < a {
			step = -1
		}
		if d := (z-a)*step + 1; d > maxBraceNames {
			return nil, fmt.Errorf("%s: brace range {%s} names %d files, more than %d", p, inner, d, maxBraceNames)
		}
		for v := a; ; v += step {
			alts = append(alts, fmt.Sprintf("%0*d", width, v))
			if v == z {
				break
			}
		}
	} else {
		alts = strings.Split(inner, ",")
	}
	rest, err := expandBraces(p[j+1:])
	if err != nil {
		return nil, err
	}
	if len(alts)*len(rest) > maxBraceNames {
		return nil, fmt.Errorf("%s: names more than %d files", p, maxBraceNames)
	}
	out := make([]string, 0, len(alts)*len(rest))
	for _, a := range alts {
		for _, r := range rest {
			out = append(out, p[:i]+a+r)
		}
	}
	return out, nil
}
