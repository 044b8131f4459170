package main

import (
	"flag"
	"fmt"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
)

// modelFlags are the flags every command that runs the model shares.
type modelFlags struct {
	model     string
	exif      bool
	maxPixels int64
}

func (f *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.model, "model", "", "model folder (config.json, preprocessor_config.json, model.safetensors or pytorch_model.bin)")
	fs.BoolVar(&f.exif, "exif-orientation", false, "rotate images as their EXIF orientation says (Hugging Face does not; off for parity)")
	fs.Int64Var(&f.maxPixels, "max-pixels", preprocess.DefaultMaxPixels, "refuse images with more pixels than this, before decoding (decompression bombs); negative: no limit")
}

func (f *modelFlags) decodeOptions() preprocess.Options {
	return preprocess.Options{MaxPixels: f.maxPixels, ApplyEXIFOrientation: f.exif}
}

// open loads the model the flags name.
func (f *modelFlags) open() (*core.Model, error) {
	if f.model == "" {
		return nil, fmt.Errorf("--model is required")
	}
	return core.Load(f.model)
}
