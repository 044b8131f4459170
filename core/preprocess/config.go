package preprocess

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
)

// Size is a height and width in pixels. In JSON it is either an integer (a
// square, as transformers' get_size_dict reads it), a [height, width] list or an
// object {"height": h, "width": w}.
type Size struct {
	Height, Width int
}

// UnmarshalJSON accepts the spellings transformers accepts for a square or
// rectangular size. {"shortest_edge": n} is refused: PerceiverImageProcessor
// cannot resize to it either.
func (s *Size) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*s = Size{n, n}
		return nil
	}
	var list []int
	if err := json.Unmarshal(b, &list); err == nil {
		if len(list) != 2 {
			return fmt.Errorf("size list must be [height, width], got %d values", len(list))
		}
		*s = Size{list[0], list[1]}
		return nil
	}
	var m map[string]int
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("size must be an integer, [height, width] or {\"height\",\"width\"}: %s", b)
	}
	h, okH := m["height"]
	w, okW := m["width"]
	if !okH || !okW {
		return fmt.Errorf("size needs both \"height\" and \"width\" (PerceiverImageProcessor resizes to a fixed shape), got %s", b)
	}
	*s = Size{h, w}
	return nil
}

// MarshalJSON writes the {"height","width"} form that transformers writes.
func (s Size) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]int{"height": s.Height, "width": s.Width})
}

// Channels holds one value per RGB channel. In JSON it is a list of three
// numbers or a single number used for all three.
type Channels [3]float64

// UnmarshalJSON accepts a number or a list of three numbers.
func (c *Channels) UnmarshalJSON(b []byte) error {
	var v float64
	if err := json.Unmarshal(b, &v); err == nil {
		*c = Channels{v, v, v}
		return nil
	}
	var list []float64
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("expected a number or a list of 3 numbers: %s", b)
	}
	if len(list) != 3 {
		return fmt.Errorf("expected 3 values (R, G, B), got %d", len(list))
	}
	copy(c[:], list)
	return nil
}

// Resample is PIL's resampling filter code, as stored in preprocessor_config.json.
type Resample int

// PIL.Image.Resampling values. Nearest is not supported (Pillow uses a different
// code path for it); the others share Resample.c's two-pass convolution.
const (
	Nearest  Resample = 0
	Lanczos  Resample = 1
	Bilinear Resample = 2
	Bicubic  Resample = 3
	Box      Resample = 4
	Hamming  Resample = 5
)

func (r Resample) String() string {
	switch r {
	case Nearest:
		return "nearest"
	case Lanczos:
		return "lanczos"
	case Bilinear:
		return "bilinear"
	case Bicubic:
		return "bicubic"
	case Box:
		return "box"
	case Hamming:
		return "hamming"
	}
	return fmt.Sprintf("resample(%d)", int(r))
}

// Config mirrors preprocessor_config.json of a PerceiverImageProcessor, field
// for field. Fields absent from the file keep the processor's defaults.
type Config struct {
	DoCenterCrop  bool     `json:"do_center_crop"`
	CropSize      Size     `json:"crop_size"`
	DoResize      bool     `json:"do_resize"`
	Size          Size     `json:"size"`
	Resample      Resample `json:"resample"`
	DoRescale     bool     `json:"do_rescale"`
	RescaleFactor float64  `json:"rescale_factor"`
	DoNormalize   bool     `json:"do_normalize"`
	ImageMean     Channels `json:"image_mean"`
	ImageStd      Channels `json:"image_std"`

	// Informational; not used by the chain.
	FeatureExtractorType string `json:"feature_extractor_type,omitempty"`
	ImageProcessorType   string `json:"image_processor_type,omitempty"`
}

// DefaultConfig returns PerceiverImageProcessor's defaults, which are also the
// settings of deepmind/vision-perceiver-fourier: crop_size 256, size 224,
// bicubic, rescale 1/255, ImageNet mean and std.
func DefaultConfig() Config {
	return Config{
		DoCenterCrop:  true,
		CropSize:      Size{256, 256},
		DoResize:      true,
		Size:          Size{224, 224},
		Resample:      Bicubic,
		DoRescale:     true,
		RescaleFactor: 1.0 / 255,
		DoNormalize:   true,
		ImageMean:     Channels{0.485, 0.456, 0.406}, // IMAGENET_DEFAULT_MEAN
		ImageStd:      Channels{0.229, 0.224, 0.225}, // IMAGENET_DEFAULT_STD
	}
}

// LoadConfig reads a preprocessor_config.json, filling absent fields with
// DefaultConfig's values, and validates it.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("preprocessor config: %w", err)
	}
	c := DefaultConfig()
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("preprocessor config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("preprocessor config %s: %w", path, err)
	}
	return c, nil
}

// maxSide bounds configured sizes; far beyond any model input, it keeps
// coefficient tables and buffers small enough to allocate.
const maxSide = 1 << 14

// Validate reports the first setting the chain cannot honour.
func (c Config) Validate() error {
	if c.DoResize || c.DoCenterCrop {
		if c.Size.Height <= 0 || c.Size.Width <= 0 || c.Size.Height > maxSide || c.Size.Width > maxSide {
			return fmt.Errorf("size %dx%d out of range (1..%d)", c.Size.Height, c.Size.Width, maxSide)
		}
	}
	if c.DoCenterCrop && (c.CropSize.Height <= 0 || c.CropSize.Width <= 0) {
		return fmt.Errorf("crop_size %dx%d must be positive", c.CropSize.Height, c.CropSize.Width)
	}
	if c.DoResize {
		if _, err := c.Resample.filter(); err != nil {
			return err
		}
	}
	if c.DoRescale && (math.IsNaN(c.RescaleFactor) || math.IsInf(c.RescaleFactor, 0)) {
		return errors.New("rescale_factor must be finite")
	}
	if c.DoNormalize {
		for i, s := range c.ImageStd {
			if s == 0 || math.IsNaN(s) || math.IsInf(s, 0) || math.IsNaN(c.ImageMean[i]) || math.IsInf(c.ImageMean[i], 0) {
				return fmt.Errorf("image_mean/image_std channel %d: need finite values and std != 0 (got mean %v, std %v)", i, c.ImageMean[i], s)
			}
		}
	}
	return nil
}

// String describes the chain the settings make, for messages: e.g. "centre crop 256×256,
// resize 224×224 bicubic, rescale ×0.00392157, normalise mean [0.485 0.456 0.406] std
// [0.229 0.224 0.225]".
func (c Config) String() string {
	var steps []string
	if c.DoCenterCrop {
		steps = append(steps, fmt.Sprintf("centre crop %d×%d", c.CropSize.Height, c.CropSize.Width))
	}
	if c.DoResize {
		steps = append(steps, fmt.Sprintf("resize %d×%d %v", c.Size.Height, c.Size.Width, c.Resample))
	}
	if c.DoRescale {
		steps = append(steps, fmt.Sprintf("rescale ×%.6g", c.RescaleFactor))
	}
	if c.DoNormalize {
		steps = append(steps, fmt.Sprintf("normalise mean %v std %v", c.ImageMean[:], c.ImageStd[:]))
	}
	if len(steps) == 0 {
		return "no preprocessing"
	}
	return strings.Join(steps, ", ")
}
