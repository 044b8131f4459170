package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Config mirrors a Hugging Face Perceiver `config.json` field for field. Fields absent from the file
// take Hugging Face's PerceiverConfig defaults (see DefaultConfig). Fields the vision model does not
// use (dropout, initializer range, text and audio sizes) are kept so a config round-trips.
type Config struct {
	Architectures                   []string          `json:"architectures,omitempty"`
	ModelType                       string            `json:"model_type,omitempty"`
	NumLatents                      int               `json:"num_latents"`
	DLatents                        int               `json:"d_latents"`
	DModel                          int               `json:"d_model"`
	NumBlocks                       int               `json:"num_blocks"`
	NumSelfAttendsPerBlock          int               `json:"num_self_attends_per_block"`
	NumSelfAttentionHeads           int               `json:"num_self_attention_heads"`
	NumCrossAttentionHeads          int               `json:"num_cross_attention_heads"`
	QKChannels                      *int              `json:"qk_channels"`
	VChannels                       *int              `json:"v_channels"`
	CrossAttentionShapeForAttention string            `json:"cross_attention_shape_for_attention"`
	SelfAttentionWideningFactor     int               `json:"self_attention_widening_factor"`
	CrossAttentionWideningFactor    int               `json:"cross_attention_widening_factor"`
	HiddenAct                       string            `json:"hidden_act"`
	AttentionProbsDropoutProb       float64           `json:"attention_probs_dropout_prob"`
	InitializerRange                float64           `json:"initializer_range"`
	LayerNormEps                    float64           `json:"layer_norm_eps"`
	UseQueryResidual                bool              `json:"use_query_residual"`
	VocabSize                       int               `json:"vocab_size"`
	MaxPositionEmbeddings           int               `json:"max_position_embeddings"`
	ImageSize                       int               `json:"image_size"`
	TrainSize                       []int             `json:"train_size,omitempty"`
	NumFrames                       *int              `json:"num_frames,omitempty"`
	AudioSamplesPerFrame            *int              `json:"audio_samples_per_frame,omitempty"`
	SamplesPerPatch                 int               `json:"samples_per_patch"`
	OutputShape                     []int             `json:"output_shape,omitempty"`
	OutputNumChannels               *int              `json:"output_num_channels,omitempty"`
	TorchDtype                      string            `json:"torch_dtype,omitempty"`
	TransformersVersion             string            `json:"transformers_version,omitempty"`
	ID2Label                        map[string]string `json:"id2label,omitempty"`
	Label2ID                        map[string]int    `json:"label2id,omitempty"`
}

// DefaultConfig returns Hugging Face's PerceiverConfig defaults, which are those of
// deepmind/vision-perceiver-fourier except for the labels.
func DefaultConfig() Config {
	return Config{
		ModelType:                       "perceiver",
		NumLatents:                      256,
		DLatents:                        1280,
		DModel:                          768,
		NumBlocks:                       1,
		NumSelfAttendsPerBlock:          26,
		NumSelfAttentionHeads:           8,
		NumCrossAttentionHeads:          8,
		CrossAttentionShapeForAttention: "kv",
		SelfAttentionWideningFactor:     1,
		CrossAttentionWideningFactor:    1,
		HiddenAct:                       "gelu",
		AttentionProbsDropoutProb:       0.1,
		InitializerRange:                0.02,
		LayerNormEps:                    1e-12,
		UseQueryResidual:                true,
		VocabSize:                       262,
		MaxPositionEmbeddings:           2048,
		ImageSize:                       56,
		TrainSize:                       []int{368, 496},
		SamplesPerPatch:                 16,
	}
}

// FullSizeConfig returns the architecture of deepmind/vision-perceiver-fourier: 224² pixels with
// 64 Fourier bands (d_model 261), 512 latents of 1024 channels, 8 blocks of 6 self-attention
// layers with 8 heads, and 1000 ImageNet classes (named class_0 … class_999 here; the hub's
// config.json carries the real names).
func FullSizeConfig() Config {
	c, _ := FullSizeConfigFor("fourier")
	return c
}

// FullSizeConfigFor returns the architecture of the released model of a kind ("fourier",
// "learned" or "conv", the deepmind/vision-perceiver-* checkpoints): they share the latents, the
// latent stack and the decoder, and differ in the input stage and so in d_model (261, 512 = 256
// convolution channels + 256 projected positions, 322 = 64 convolution channels + 258 Fourier
// features on the 55×55 pooled grid).
func FullSizeConfigFor(kind string) (Config, error) {
	if kind == "flow" {
		return fullSizeFlowConfig(), nil
	}
	arch, ok := ArchKinds[kind]
	if !ok {
		return Config{}, fmt.Errorf("unknown architecture kind %q (want fourier, learned, conv or flow)", kind)
	}
	c := DefaultConfig()
	c.Architectures = []string{arch}
	c.NumLatents, c.DLatents, c.DModel = 512, 1024, map[string]int{"fourier": 261, "learned": 512, "conv": 322}[kind]
	c.ImageSize = 224
	c.NumBlocks, c.NumSelfAttendsPerBlock = 8, 6
	c.NumSelfAttentionHeads, c.NumCrossAttentionHeads = 8, 1
	c.ID2Label = make(map[string]string, 1000)
	for i := 0; i < 1000; i++ {
		c.ID2Label[strconv.Itoa(i)] = "class_" + strconv.Itoa(i)
	}
	return c, nil
}

// LoadConfig reads a config.json. Absent fields keep DefaultConfig's values.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c := DefaultConfig()
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	if err := checkModelType(&c); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// NumLabels is the number of classes, from id2label.
func (c *Config) NumLabels() int { return len(c.ID2Label) }

// Labels returns the class names indexed by class id.
func (c *Config) Labels() []string {
	out := make([]string, len(c.ID2Label))
	for k, v := range c.ID2Label {
		i, err := strconv.Atoi(k)
		if err == nil && i >= 0 && i < len(out) {
			out[i] = v
		}
	}
	return out
}

// The architectures this package builds, by their Hugging Face class names.
const (
	ArchFourier = "PerceiverForImageClassificationFourier"
	ArchLearned = "PerceiverForImageClassificationLearned"
	ArchConv    = "PerceiverForImageClassificationConvProcessing"
	ArchFlow    = "PerceiverForOpticalFlow"
)

// SupportedArchitectures lists the Hugging Face classes a config.json may name.
var SupportedArchitectures = []string{ArchFourier, ArchLearned, ArchConv, ArchFlow}

// ArchKinds maps a short name (probe bench --arch, file metadata) to its architecture.
var ArchKinds = map[string]string{"fourier": ArchFourier, "learned": ArchLearned, "conv": ArchConv, "flow": ArchFlow}

// Arch returns the architecture config.json names (its first architectures entry; the Fourier
// classifier when the list is empty, as in configs written before there was a choice), or an error
// naming an unsupported one and listing the supported classes.
func (c *Config) Arch() (string, error) {
	if len(c.Architectures) == 0 {
		return ArchFourier, nil
	}
	a := c.Architectures[0]
	if slices.Contains(SupportedArchitectures, a) {
		return a, nil
	}
	return "", fmt.Errorf("config: architectures names %q, which this toolkit does not build; supported: %s",
		a, strings.Join(SupportedArchitectures, ", "))
}

// NumSelfAttentionApplications is the number of self-attention layers applied in a forward pass.
func (c *Config) NumSelfAttentionApplications() int { return c.NumBlocks * c.NumSelfAttendsPerBlock }

// crossChannels returns the query/key and value widths of a cross-attention from queries of width
// qDim to inputs of width kvDim, as Hugging Face's PerceiverAttention derives them: explicit
// qk/v channels win; otherwise qk follows cross_attention_shape_for_attention and v follows qk.
func (c *Config) crossChannels(qk, v *int, qDim, kvDim int) (qkC, vC int) {
	switch {
	case qk != nil:
		qkC = *qk
	case c.CrossAttentionShapeForAttention == "q":
		qkC = qDim
	default:
		qkC = kvDim
	}
	vC = qkC
	if v != nil {
		vC = *v
	}
	return qkC, vC
}

func (c *Config) selfQKChannels() int {
	if c.QKChannels != nil {
		return *c.QKChannels
	}
	return c.DLatents
}

func (c *Config) selfVChannels() int {
	if c.VChannels != nil {
		return *c.VChannels
	}
	return c.selfQKChannels()
}

// Validate rejects configs this architecture cannot run, each reason spelled out.
func (c *Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	positive := []struct {
		name string
		v    int
	}{
		{"num_latents", c.NumLatents}, {"d_latents", c.DLatents}, {"d_model", c.DModel},
		{"num_blocks", c.NumBlocks}, {"num_self_attends_per_block", c.NumSelfAttendsPerBlock},
		{"num_self_attention_heads", c.NumSelfAttentionHeads},
		{"num_cross_attention_heads", c.NumCrossAttentionHeads},
		{"self_attention_widening_factor", c.SelfAttentionWideningFactor},
		{"cross_attention_widening_factor", c.CrossAttentionWideningFactor},
	}
	for _, p := range positive {
		if p.v < 1 {
			bad("%s is %d, must be at least 1", p.name, p.v)
		}
	}
	if c.QKChannels != nil && *c.QKChannels < 1 {
		bad("qk_channels is %d, must be at least 1", *c.QKChannels)
	}
	if c.VChannels != nil && *c.VChannels < 1 {
		bad("v_channels is %d, must be at least 1", *c.VChannels)
	}
	if len(errs) > 0 {
		return errors.New("config: " + strings.Join(errs, "; "))
	}
	if _, err := c.Arch(); err != nil {
		bad("%s", strings.TrimPrefix(err.Error(), "config: "))
	}
	if c.DLatents%c.NumSelfAttentionHeads != 0 {
		bad("d_latents %d is not divisible by num_self_attention_heads %d", c.DLatents, c.NumSelfAttentionHeads)
	}
	if c.DLatents%c.NumCrossAttentionHeads != 0 {
		bad("d_latents %d is not divisible by num_cross_attention_heads %d", c.DLatents, c.NumCrossAttentionHeads)
	}
	if s := c.CrossAttentionShapeForAttention; s != "q" && s != "kv" {
		bad("cross_attention_shape_for_attention %q must be \"q\" or \"kv\"", s)
	}
	qk, v := c.crossChannels(c.QKChannels, c.VChannels, c.DLatents, c.DModel)
	if qk%c.NumCrossAttentionHeads != 0 || v%c.NumCrossAttentionHeads != 0 {
		bad("cross-attention qk/v channels %d/%d are not divisible by num_cross_attention_heads %d", qk, v, c.NumCrossAttentionHeads)
	}
	if qk, v := c.selfQKChannels(), c.selfVChannels(); qk%c.NumSelfAttentionHeads != 0 || v%c.NumSelfAttentionHeads != 0 {
		bad("self-attention qk/v channels %d/%d are not divisible by num_self_attention_heads %d", qk, v, c.NumSelfAttentionHeads)
	}
	if c.HiddenAct != "gelu" {
		bad("hidden_act %q is not supported (only \"gelu\")", c.HiddenAct)
	}
	if arch, _ := c.Arch(); arch == ArchFlow {
		errs = append(errs, c.validateFlow()...)
	} else if len(c.ID2Label) == 0 {
		bad("id2label is empty: the classifier needs at least one label")
	}
	ids := make([]int, 0, len(c.ID2Label))
	for k := range c.ID2Label {
		i, err := strconv.Atoi(k)
		if err != nil {
			bad("id2label key %q is not an integer", k)
			continue
		}
		ids = append(ids, i)
	}
	sort.Ints(ids)
	for want, got := range ids {
		if want != got {
			bad("id2label keys must be 0…%d without gaps; %d is missing", len(c.ID2Label)-1, want)
			break
		}
	}
	if len(errs) > 0 {
		return errors.New("config: " + strings.Join(errs, "; "))
	}
	return nil
}
