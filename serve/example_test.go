package serve_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/explain"
	"github.com/perceiverkit/perceiver/serve"
)

// Serve a model and a folder of images, then ask for an image's top-5 as the page does.
func ExampleNew() {
	m, err := core.Load("../testdata/tiny")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	s, err := serve.New(m, serve.Options{Images: "../testdata/tiny", ModelName: "tiny"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewServer(s) // probe serve listens on 127.0.0.1 instead
	defer ts.Close()

	resp, err := http.Get(ts.URL + "/api/analysis?image=chelsea.png")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		Top []struct {
			Label string
			Prob  float64
		}
		Latents, Applications int
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("top-1: %s (%.2f)\n", a.Top[0].Label, a.Top[0].Prob)
	fmt.Println("latents:", a.Latents, "applications:", a.Applications)
	// Output:
	// top-1: class_1 (0.58)
	// latents: 8 applications: 4
}

// Add a map kind. A package that defines kinds for every server calls serve.Register(kind) from
// its init; here the kind is given to one server through Options.Kinds. It weighs each latent's
// cross-attention by the decoder's attention, keeping the two latents the decoder attends to most.
func ExampleKind() {
	top2 := serve.Kind{
		Name:  "top2",
		Title: "top-2 latents",
		Help:  "the cross-attention of the two latents the decoder attends to most",
		Map: func(dst []float32, a *serve.Analysis, _ serve.Query) error {
			w := make([]float32, a.Latents)
			for _, l := range attention.TopLatents(a.Decoder, 2) {
				w[l] = a.Decoder[l]
			}
			attention.WeightedMap(dst, w, a.Cross, a.Latents, a.H*a.W)
			return nil
		},
	}
	m, err := core.Load("../testdata/tiny")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	s, err := serve.New(m, serve.Options{Images: "../testdata/tiny", Kinds: append(serve.Kinds(), top2)})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewServer(s)
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/api/map.png?image=chelsea.png&kind=top2&cmap=hot")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Content-Type"))
	// Output: 200 OK image/png
}

// Offer occlusion, which the explorer leaves out by default, as a class-specific kind: with
// 4×4 windows at stride 4 it costs one forward pass per window of the tiny model's 12×16 input.
func ExampleExplainKind() {
	opt := explain.DefaultOptions()
	opt.Window, opt.Stride = 4, 4
	occlusion, err := serve.ExplainKind("occlusion", opt)
	if err != nil {
		log.Fatal(err)
	}
	m, err := core.Load("../testdata/tiny")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	s, err := serve.New(m, serve.Options{Images: "../testdata/tiny", Kinds: append(serve.Kinds(), occlusion)})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewServer(s)
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/api/map.png?image=chelsea.png&kind=occlusion&class=2")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "signed:", resp.Header.Get("X-Map-Signed"))
	// Output: 200 OK signed: true
}
