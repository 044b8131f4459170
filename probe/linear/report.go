package linear

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/perceiverkit/perceiver/internal/outfile"
)

// Report is the content of report.json.
type Report struct {
	Config     Config         `json:"config"`
	Protocol   map[string]any `json:"protocol"`
	Meta       map[string]any `json:"meta,omitempty"`
	BestColumn string         `json:"best_column"` // highest test top-1 (ties: shallower)
	Results    []*Result      `json:"results"`
}

// protocol describes, in the report, what the numbers mean.
func protocol(cfg Config) map[string]any {
	sel := "validation split"
	if cfg.Folds >= 2 {
		sel = fmt.Sprintf("stratified %d-fold cross-validation on train+val", cfg.Folds)
	}
	p := map[string]any{
		"classifier":      "multinomial logistic regression, L2 on weights (intercept unpenalised), L-BFGS",
		"objective":       "sum cross-entropy + ||W||^2/(2C) (scikit-learn's lbfgs objective divided by C)",
		"standardisation": "mean / population std of the fitted rows (std 0 -> 1)",
		"C_selection":     sel + "; highest top-1, ties by lower log-loss then smaller C; refit on train+val; test scored once",
		"knn":             fmt.Sprintf("cosine on L2-normalised raw features, k=%s, weights exp(sim/T), T=%g, bank=train+val (k capped at the bank size)", joinInts(cfg.KNN.Ks), cfg.KNN.Temperature),
		"balanced_acc":    "mean per-class recall over the classes present in the split",
		"log_loss":        "mean natural-log cross-entropy",
		"macro_f1":        "mean F1 over classes present as true or predicted label",
	}
	if len(cfg.Shots) > 0 {
		p["few_shot"] = fmt.Sprintf("shots %v per class drawn from train, %d draws each; C chosen on val; mean ± sample sd of test accuracy", cfg.Shots, cfg.Seeds)
	}
	if cfg.Bootstrap > 0 {
		p["bootstrap"] = fmt.Sprintf("%d resamples of the test rows; 95%% percentile interval of top-1", cfg.Bootstrap)
	}
	return p
}

// BestResult returns the result with the highest test top-1 (ties: the earlier one).
func BestResult(results []*Result) *Result {
	var best *Result
	for _, r := range results {
		if best == nil || r.Test.Top1 > best.Test.Top1 {
			best = r
		}
	}
	return best
}

// ReportFiles are the paths WriteReport writes into dir, for checking before any work.
func ReportFiles(dir string) []string {
	var p []string
	for _, name := range []string{"report.json", "report.md", "accuracy-by-layer.png", "confusion.png"} {
		p = append(p, filepath.Join(dir, name))
	}
	return p
}

// WriteReport writes report.json, report.md, accuracy-by-layer.png and confusion.png (for the
// best column) into dir, creating it if needed. results are plotted in the order given.
func WriteReport(dir string, results []*Result, cfg Config, meta map[string]any) error {
	if len(results) == 0 {
		return fmt.Errorf("linear: report %s: no results", dir)
	}
	cfg = cfg.WithDefaults()
	if err := outfile.CheckAll(ReportFiles(dir)...); err != nil { // the whole set, before the first
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("linear: report: %w", err)
	}
	best := BestResult(results)
	rep := Report{Config: cfg, Protocol: protocol(cfg), Meta: meta, BestColumn: best.Column, Results: results}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("linear: report %s: %w", dir, err)
	}
	if err := outfile.WriteFile(filepath.Join(dir, "report.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("linear: report: %w", err)
	}
	if err := outfile.WriteFile(filepath.Join(dir, "report.md"), Markdown(results, cfg), 0o644); err != nil {
		return fmt.Errorf("linear: report: %w", err)
	}
	if err := PlotAccuracyByLayer(filepath.Join(dir, "accuracy-by-layer.png"), results); err != nil {
		return err
	}
	return PlotConfusion(filepath.Join(dir, "confusion.png"), best)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return strconv.FormatFloat(100*v, 'f', 2, 64)
}

func num(v float64, prec int) string {
	if math.IsNaN(v) {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// Markdown renders the tables of report.md.
func Markdown(results []*Result, cfg Config) []byte {
	cfg = cfg.WithDefaults()
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Linear probe report\n\n")
	for _, k := range []string{"classifier", "C_selection", "knn"} {
		fmt.Fprintf(&b, "- %s: %v\n", strings.ReplaceAll(k, "_", " "), protocol(cfg)[k])
	}
	fmt.Fprintf(&b, "- seed %d, Cs %v, max_iter %d, tol %g\n\n", cfg.Seed, cfg.Cs, cfg.MaxIter, cfg.Tol)
	fmt.Fprintf(&b, "## Accuracy by layer (percent, test split)\n\n")
	fmt.Fprintf(&b, "| column | dim | train/val/test | best C | val top-1 | test top-1 |")
	if cfg.Bootstrap > 0 {
		fmt.Fprintf(&b, " 95%% CI |")
	}
	fmt.Fprintf(&b, " balanced | top-5 | macro-F1 | log-loss |")
	if !cfg.NoKNN {
		for _, k := range cfg.KNN.Ks {
			fmt.Fprintf(&b, " kNN@%d top-1 | kNN@%d balanced |", k, k)
		}
		fmt.Fprintf(&b, " kNN@%d top-5 |", cfg.KNN.Ks[0])
	}
	fmt.Fprintf(&b, " iters | time |\n|---|---:|---|---:|---:|---:|")
	if cfg.Bootstrap > 0 {
		b.WriteString("---|")
	}
	b.WriteString("---:|---:|---:|---:|")
	if !cfg.NoKNN {
		b.WriteString(strings.Repeat("---:|", 2*len(cfg.KNN.Ks)+1))
	}
	b.WriteString("---:|---:|\n")
	for _, r := range results {
		val := math.NaN()
		for _, s := range r.ByC {
			if s.C == r.BestC {
				val = s.ValTop1
			}
		}
		fmt.Fprintf(&b, "| %s | %d | %d/%d/%d | %g | %s | **%s** |", r.Column, r.Dim, r.NTrain, r.NVal, r.NTest, r.BestC, pct(val), pct(r.Test.Top1))
		if cfg.Bootstrap > 0 {
			if ci := r.TestTop1CI95; ci != nil {
				fmt.Fprintf(&b, " %s–%s |", pct(ci[0]), pct(ci[1]))
			} else {
				b.WriteString(" – |")
			}
		}
		fmt.Fprintf(&b, " %s | %s | %s | %s |", pct(r.Test.BalancedAcc), pct(r.Test.Top5), pct(r.Test.MacroF1), num(r.Test.LogLoss, 4))
		if !cfg.NoKNN {
			for i := range cfg.KNN.Ks {
				k1, kb := math.NaN(), math.NaN()
				if i < len(r.KNNByK) {
					k1, kb = r.KNNByK[i].Metrics.Top1, r.KNNByK[i].Metrics.BalancedAcc
				}
				fmt.Fprintf(&b, " %s | %s |", pct(k1), pct(kb))
			}
			k5 := math.NaN()
			if r.KNN != nil {
				k5 = r.KNN.Top5
			}
			fmt.Fprintf(&b, " %s |", pct(k5))
		}
		fmt.Fprintf(&b, " %d | %.1fs |\n", r.Refit.Iterations, r.Durations.Total.Seconds())
	}
	if len(cfg.Shots) > 0 {
		fmt.Fprintf(&b, "\n## Few-shot (percent, test split; mean ± sd over %d draws)\n\n| column |", cfg.Seeds)
		for _, sh := range cfg.Shots {
			fmt.Fprintf(&b, " %d-shot top-1 | %d-shot balanced |", sh, sh)
		}
		fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---:|", 2*len(cfg.Shots)))
		for _, r := range results {
			fmt.Fprintf(&b, "| %s |", r.Column)
			for _, f := range r.FewShot {
				short := ""
				if f.MinPerClass < f.Shots {
					short = fmt.Sprintf(" (a class had %d)", f.MinPerClass)
				}
				fmt.Fprintf(&b, " %s ± %s%s | %s ± %s |", pct(f.Top1Mean), pct(float64(f.Top1SD)), short, pct(f.BalancedMean), pct(float64(f.BalancedSD)))
			}
			b.WriteString("\n")
		}
	}
	var unconverged []string
	for _, r := range results {
		for _, f := range append([]FitInfo{r.Refit}, fitsOf(r)...) {
			if f.Status != "GradientThreshold" && f.Status != "FunctionConvergence" {
				unconverged = append(unconverged, fmt.Sprintf("%s C=%g: %s after %d iterations (max |grad| %.2g)", r.Column, f.C, f.Status, f.Iterations, f.GradInf))
			}
		}
	}
	if len(unconverged) > 0 {
		fmt.Fprintf(&b, "\nFits that stopped before the gradient tolerance:\n\n")
		for _, u := range unconverged {
			fmt.Fprintf(&b, "- %s\n", u)
		}
	}
	fmt.Fprintf(&b, "\n## Validation top-1 by C (percent)\n\n| column |")
	cs := results[0].ByC
	for _, s := range cs {
		fmt.Fprintf(&b, " C=%g |", s.C)
	}
	fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---:|", len(cs)))
	for _, r := range results {
		fmt.Fprintf(&b, "| %s |", r.Column)
		for _, s := range r.ByC {
			fmt.Fprintf(&b, " %s |", pct(s.ValTop1))
		}
		b.WriteString("\n")
	}
	best := BestResult(results)
	fmt.Fprintf(&b, "\n## Best column: %s\n\nPer-class test accuracy (recall):\n\n| class | n | accuracy |\n|---|---:|---:|\n", best.Column)
	for c, acc := range best.Test.PerClassAcc {
		n := 0
		for _, v := range best.Test.Confusion[c] {
			n += v
		}
		fmt.Fprintf(&b, "| %s | %d | %s |\n", className(best, c), n, pct(acc))
	}
	if k := len(best.Test.Confusion); k <= 20 {
		fmt.Fprintf(&b, "\nConfusion matrix (rows true, columns predicted):\n\n| |")
		for c := range k {
			fmt.Fprintf(&b, " %s |", className(best, c))
		}
		fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---:|", k))
		for c, row := range best.Test.Confusion {
			fmt.Fprintf(&b, "| %s |", className(best, c))
			for _, v := range row {
				fmt.Fprintf(&b, " %d |", v)
			}
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}

func className(r *Result, c int) string {
	if c < len(r.Classes) {
		return r.Classes[c]
	}
	return strconv.Itoa(c)
}

func fitsOf(r *Result) []FitInfo {
	var out []FitInfo
	for _, s := range r.ByC {
		out = append(out, s.Fits...)
	}
	return out
}
