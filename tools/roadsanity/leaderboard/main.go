// Command leaderboard prints the README's "Evaluating the maps" table from the outputs of
// `probe faithfulness --metrics road` (report.json) and `probe sanity --data` (sanity.json): per
// model, every method's ROAD AUCs and its similarities after the last cascade step and under the
// random-logit test, each ± its standard error over the images.
//
// Usage: go run ./tools/roadsanity/leaderboard LABEL FAITHFULNESS_DIR SANITY_DIR [LABEL F_DIR S_DIR …]
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/perceiverkit/perceiver/faithfulness"
)

func main() {
	args := os.Args[1:]
	if len(args) == 0 || len(args)%3 != 0 {
		fmt.Fprintln(os.Stderr, "usage: leaderboard LABEL FAITHFULNESS_DIR SANITY_DIR [...]")
		os.Exit(2)
	}
	fmt.Println("| model | method | ROAD MoRF AUC ↓ | ROAD LeRF AUC ↑ | LeRF − MoRF ↑ | MPRT Spearman abs ↓ | MPRT Spearman ↓ | MPRT SSIM ↓ | random logit Spearman abs ↓ | random logit SSIM ↓ |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i := 0; i < len(args); i += 3 {
		if err := rows(args[i], args[i+1], args[i+2]); err != nil {
			fmt.Fprintln(os.Stderr, "leaderboard:", err)
			os.Exit(1)
		}
	}
}

func read(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func pm(v, se *float64) string {
	if v == nil {
		return "—"
	}
	if se == nil {
		return fmt.Sprintf("%.3f", *v)
	}
	return fmt.Sprintf("%.3f ± %.3f", *v, *se)
}

func rows(label, fdir, sdir string) error {
	var rep faithfulness.Report
	if err := read(filepath.Join(fdir, "report.json"), &rep); err != nil {
		return err
	}
	var san faithfulness.SanityReport
	if err := read(filepath.Join(sdir, "sanity.json"), &san); err != nil {
		return err
	}
	if rep.RoadSE == nil {
		return fmt.Errorf("%s: no ROAD (run with --metrics road)", fdir)
	}
	names := append([]string(nil), rep.Ranking...)
	if rep.RankBy != "road" { // list by ROAD score
		sort.SliceStable(names, func(i, j int) bool {
			return faithfulness.RoadScore(*rep.Methods[names[i]].Road) > faithfulness.RoadScore(*rep.Methods[names[j]].Road)
		})
	}
	last := san.Steps[len(san.Steps)-1]
	for _, n := range names {
		r, se := rep.Methods[n].Road, rep.RoadSE[n]
		score := faithfulness.RoadScore(*r)
		s, sse := last.Methods[n], last.SE[n]
		l, lse := san.RandomLogit.Methods[n], san.RandomLogit.SE[n]
		_, inSanity := last.Methods[n]
		mprt := []string{"n/a", "n/a", "n/a", "n/a", "n/a"}
		if inSanity {
			mprt = []string{pm(s.SpearmanAbs, sse.SpearmanAbs), pm(s.Spearman, sse.Spearman), pm(s.SSIM, sse.SSIM), pm(l.SpearmanAbs, lse.SpearmanAbs), pm(l.SSIM, lse.SSIM)}
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label, n,
			pm(&r.MoRF.AUCProb, &se.MoRF), pm(&r.LeRF.AUCProb, &se.LeRF), pm(&score, &se.Score),
			mprt[0], mprt[1], mprt[2], mprt[3], mprt[4])
	}
	return nil
}
