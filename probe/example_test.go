package probe_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/perceiverkit/perceiver/internal/datasetfixture"
	"github.com/perceiverkit/perceiver/probe"
)

// Write embeddings of a tiny manifest, then read them back as a matrix.
func Example() {
	dir, _ := os.MkdirTemp("", "probe-example")
	defer os.RemoveAll(dir)
	manifest := filepath.Join(dir, "data.csv")
	os.WriteFile(manifest, []byte("path,label,split\ncat.png,cat,train\ndog.png,dog,test\n"), 0o644)

	src, err := probe.OpenSource(manifest)
	if err != nil {
		log.Fatal(err)
	}
	out := filepath.Join(dir, "emb.parquet")
	cols := []probe.Column{{Name: "logits", Dim: 2, Description: "decoder logits"}}
	w, err := probe.Create(out, cols, probe.WriterOptions{Metadata: map[string]string{"model": "example"}})
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < src.Len(); i++ {
		it := src.Item(i)
		if w.Done(it.ID) {
			continue
		}
		vec := []float32{float32(i), float32(-i)} // the model's output goes here
		if err := w.Write(it.Row([][]float32{vec})); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	r, err := probe.Open(out)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	t, err := r.Load("logits")
	if err != nil {
		log.Fatal(err)
	}
	x, dim, _ := t.Vector("logits")
	fmt.Println(r.NumRows(), r.Metadata()["model"], src.Classes())
	for i := range t.IDs {
		fmt.Println(t.IDs[i], t.Labels[i], t.LabelNames[i], t.Splits[i], x[i*dim:(i+1)*dim])
	}
	// Output:
	// 2 example [cat dog]
	// cat.png 0 cat train [0 0]
	// dog.png 1 dog test [1 -1]
}

func ExampleOpenSource() {
	dir, _ := os.MkdirTemp("", "probe-example")
	defer os.RemoveAll(dir)
	for _, f := range []string{"zebra/1.jpg", "ant/b.png", "ant/a.png"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	src, err := probe.OpenSource(dir)
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < src.Len(); i++ {
		it := src.Item(i)
		fmt.Println(it.Index, it.ID, it.Label, it.LabelName)
	}
	// Output:
	// 0 ant/a.png 0 ant
	// 1 ant/b.png 0 ant
	// 2 zebra/1.jpg 1 zebra
}

func ExampleLabelScheme() {
	dir, _ := os.MkdirTemp("", "probe-example")
	defer os.RemoveAll(dir)
	for _, f := range []string{"zebra/1.jpg", "ant/a.png", "ant/b.gif", "ant/c.ppm"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	src, err := probe.OpenSource(dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(probe.LabelScheme(src))
	n, why := probe.SkippedFiles(src)
	fmt.Println(n, why)
	// Output:
	// 2 classes (folder names) numbered in sorted order: 0=ant, 1=zebra
	// 2 2 files left out (1 .gif, not in torchvision's list; 1 .ppm, in torchvision's list but not decodable here: item numbers differ from torchvision's); listed: .bmp .jpeg .jpg .png .tif .tiff .webp
}

func ExampleParseShard() {
	s, err := probe.ParseShard("2/4")
	if err != nil {
		log.Fatal(err)
	}
	var mine []int
	for i := 0; i < 10; i++ {
		if s.Contains(i) {
			mine = append(mine, i)
		}
	}
	fmt.Println(mine, s.Count(10), probe.PartPath("out/emb.parquet", s))
	// Output: [1 5 9] 3 out/emb-part-2-of-4.parquet
}

func ExampleShardFromEnv() {
	env := map[string]string{"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "8"}
	s, ok, err := probe.ShardFromEnv(func(k string) string { return env[k] }, 0)
	fmt.Println(s, ok, err)
	// Output: 4/8 true <nil>
}

// Stream a store in batches, e.g. to fit a probe without loading it all.
func ExampleReader_Batches() {
	dir, _ := os.MkdirTemp("", "probe-example")
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "emb.parquet")
	w, _ := probe.Create(out, []probe.Column{{Name: "cross_mean", Dim: 3}}, probe.WriterOptions{})
	for i := 4; i >= 0; i-- { // any order: the file is sorted by index
		w.Write(probe.Row{Index: i, ID: fmt.Sprint("img", i), Vectors: [][]float32{{float32(i), 0, 1}}})
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	r, _ := probe.Open(out)
	defer r.Close()
	r.Batches(2, []string{"cross_mean"}, func(t *probe.Table) error {
		m, _ := t.Dense("cross_mean")
		rows, cols := m.Dims()
		fmt.Println(t.IDs, rows, cols, m.At(0, 0))
		return nil
	})
	// Output:
	// [img0 img1] 2 3 0
	// [img2 img3] 2 3 2
	// [img4] 1 3 4
}

// Read another tool's features: a NumPy array with one id per line in vit.ids.txt beside it (a
// clip-retrieval output folder reads the same way with ReadForeign).
func ExampleReadNPYFeatures() {
	f, err := probe.ReadNPYFeatures("../testdata/similarity/vit.npy")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(f.Name, f.DType, len(f.IDs), f.Dim, f.IDs[0] != "")
	// Output: vit float32 235 40 true
}

// Open WebDataset shards by a brace pattern and stream their images: opening lists the samples
// (ids, labels) from the tar headers; Stream reads each shard once, in order.
func ExampleOpenSourceWith_webDataset() {
	dir, _ := os.MkdirTemp("", "wds-example")
	defer os.RemoveAll(dir)
	for k := range 2 {
		sample := datasetfixture.Sample{Key: fmt.Sprintf("%06d", k), Members: []datasetfixture.Member{
			{Ext: "jpg", Data: []byte("JPEG bytes")}, {Ext: "cls", Data: []byte(fmt.Sprint(3 + k))},
		}}
		if err := datasetfixture.WriteTar(filepath.Join(dir, fmt.Sprintf("train-%06d.tar", k)), []datasetfixture.Sample{sample}, false); err != nil {
			log.Fatal(err)
		}
	}
	src, err := probe.OpenSourceWith(filepath.Join(dir, "train-{000000..000001}.tar"), probe.SourceOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(src.Len(), "samples;", probe.LabelScheme(src))
	for it, err := range src.Stream([]int{0, 1}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(it.ID, it.Label, len(it.Data), "bytes")
	}
	// Output:
	// 2 samples; integer labels from cls members, kept as given
	// 000000 3 10 bytes
	// 000001 4 10 bytes
}
