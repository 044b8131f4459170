package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/sae"
)

// loadSAE reads DIR/sae.safetensors with K and the data source from DIR/report.json.
func loadSAE(dir string) (*sae.SAE, *saeReport, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		return nil, nil, err
	}
	var rep saeReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, "report.json"), err)
	}
	s, err := sae.Load(filepath.Join(dir, "sae.safetensors"), rep.K)
	if err != nil {
		return nil, nil, err
	}
	return s, &rep, nil
}

// saeDataFlags resolves the data of encode and features: the flags, or the training data named
// in the report.
func saeDataFlags(rep *saeReport, features, column, tokens string) (string, string, string) {
	if features == "" && tokens == "" {
		if rep.Tokens != "" {
			return "", "", rep.Tokens
		}
		return rep.Identity["data.features"], rep.Column, ""
	}
	if features != "" && column == "" {
		column = rep.Column
	}
	return features, column, tokens
}

func runSAEEncode(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sae encode", "usage: probe sae encode --sae DIR [--features F.parquet --column C | --tokens F.tokens/NAME] --out codes.parquet [--force]", stderr)
	dir := fs.String("sae", "", "folder written by probe sae train")
	features := fs.String("features", "", "Parquet file to encode (default: the training data)")
	allowMixed := allowMixedFlag(fs)
	column := fs.String("column", "", "its column (default: the trained one)")
	tokens := fs.String("tokens", "", "token store to encode (default: the training data)")
	out := fs.String("out", "", "output Parquet file: id, [latent,] indices, values, fvu_row")
	force := fs.Bool("force", false, "replace an existing --out")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *dir == "" || *out == "" {
		return badUsage(fs, "sae", "out")
	}
	s, rep, err := loadSAE(*dir)
	if err != nil {
		return err
	}
	f, c, t := saeDataFlags(rep, *features, *column, *tokens)
	in, err := openSAEInput(f, c, t, *allowMixed, stderr)
	if err != nil {
		return err
	}
	defer in.close()
	if in.data.Dim() != s.D {
		return fmt.Errorf("%s has %d channels, the autoencoder takes %d", in.desc, in.data.Dim(), s.D)
	}
	if *force {
		if err := outfile.CheckTarget(*out); err != nil {
			return err
		}
		os.Remove(*out)
	}
	var latents []int
	if in.tokens != nil {
		latents = in.tokens.Meta.Latents
	}
	meta := map[string]string{"sae": *dir, "k": strconv.Itoa(s.K), "data": in.desc}
	var fvu float64
	err = writeNewFile(*out, func(w io.Writer) error {
		var err error
		fvu, err = sae.WriteCodes(w, s, in.data, latents, meta)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d codes of %d entries (%s), fvu %.4f\n", *out, in.data.Units()*in.data.PerUnit(), s.K, in.desc, fvu)
	return nil
}
