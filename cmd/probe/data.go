package main

import (
	"flag"

	"github.com/perceiverkit/perceiver/probe"
)

// dataUsage describes --data for every command that reads a data set.
const dataUsage = "data set: an image folder (class/xxx.jpg or flat), a .csv/.tsv manifest (path[,label][,split]), IDX files (MNIST format), " +
	"WebDataset shards (a .tar/.tar.gz, a folder of them, or a pattern such as 'shards/train-{000000..000146}.tar'), " +
	"or Hugging Face datasets Parquet (a .parquet file, a folder or a glob)"

// sourceFlags are the settings of the WebDataset and Parquet sources, shared by the commands
// that take --data.
type sourceFlags struct {
	labelField, imageColumn, labelColumn, idColumn string
}

func (f *sourceFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.labelField, "label-field", "label", "WebDataset: the json member's field holding the label, for samples without a cls member")
	fs.StringVar(&f.imageColumn, "image-column", "image", "Parquet: the image column (struct<bytes, path> or binary)")
	fs.StringVar(&f.labelColumn, "label-column", "", "Parquet: the integer label column (default label, when present; ClassLabel names from the file's huggingface metadata)")
	fs.StringVar(&f.idColumn, "id-column", "", "Parquet: the id column (default image.path when every row has a distinct one, else FILE:ROW)")
}

func (f *sourceFlags) open(path string) (probe.Source, error) {
	return probe.OpenSourceWith(path, probe.SourceOptions{
		LabelField:  f.labelField,
		ImageColumn: f.imageColumn,
		LabelColumn: f.labelColumn,
		IDColumn:    f.idColumn,
	})
}

// indexRange is 0, 1, …, n-1: the first n items of a source, for Source.Stream.
func indexRange(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
