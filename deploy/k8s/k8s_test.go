// Package k8s_test checks the Kubernetes manifests in this folder against the Kubernetes API
// types (k8s.io/api), so a misspelled or misplaced field fails here rather than on a cluster.
// It is a test-only package: nothing else in the module imports Kubernetes code.
package k8s_test

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// decodeJob decodes a Job as the API server's strict field validation does: YAML to JSON
// refusing duplicate keys (sigs.k8s.io/yaml), then case-sensitive JSON decoding refusing unknown
// and duplicate fields (sigs.k8s.io/json). encoding/json alone would accept "completionmode".
func decodeJob(t *testing.T, data []byte) (*batchv1.Job, error) {
	t.Helper()
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	var job batchv1.Job
	strict, err := kjson.UnmarshalStrict(js, &job, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, err
	}
	if len(strict) > 0 {
		return nil, errors.Join(strict...)
	}
	return &job, nil
}

// lockExitCode is probe's exit status when the output is locked by another writer (cmd/probe
// main.go's exitLocked; 75 is EX_TEMPFAIL: try again later).
const lockExitCode = 75

func TestExtractJob(t *testing.T) {
	data, err := os.ReadFile("extract-job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	job, err := decodeJob(t, data)
	if err != nil {
		t.Fatalf("extract-job.yaml: %v", err)
	}
	if job.APIVersion != "batch/v1" || job.Kind != "Job" {
		t.Fatalf("apiVersion %q kind %q", job.APIVersion, job.Kind)
	}
	spec := job.Spec
	if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion {
		t.Fatal("completionMode must be Indexed: the shard is JOB_COMPLETION_INDEX")
	}
	if spec.Completions == nil || spec.Parallelism == nil || *spec.Parallelism > *spec.Completions {
		t.Fatal("completions and parallelism must be set, parallelism at most completions")
	}
	pod := spec.Template.Spec
	// Issue 23 item 22: failures are counted per index, so a node drain that fails a few pods
	// cannot fail the whole Job, and a pod that meets its index's lock still held (by a pod being
	// replaced) is retried without counting: probe exits lockExitCode then. Both need Never.
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q: backoffLimitPerIndex and podFailurePolicy need Never", pod.RestartPolicy)
	}
	if spec.BackoffLimitPerIndex == nil || *spec.BackoffLimitPerIndex < 1 {
		t.Error("backoffLimitPerIndex must be set (at least 1): failures then count per index, not Job-wide")
	}
	ignored := false
	if spec.PodFailurePolicy != nil {
		for _, r := range spec.PodFailurePolicy.Rules {
			if r.Action == batchv1.PodFailurePolicyActionIgnore && r.OnExitCodes != nil &&
				r.OnExitCodes.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && slices.Contains(r.OnExitCodes.Values, lockExitCode) {
				ignored = true
			}
		}
	}
	if !ignored {
		t.Errorf("podFailurePolicy must Ignore exit code %d (the shard's lock is held by another pod)", lockExitCode)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if n, err := strconv.Atoi(env["JOB_COMPLETIONS"]); err != nil || int32(n) != *spec.Completions {
		t.Errorf("JOB_COMPLETIONS=%q must equal completions %d: it is the shard count", env["JOB_COMPLETIONS"], *spec.Completions)
	}
	if len(c.Command) < 2 || c.Command[0] != "probe" || c.Command[1] != "extract" {
		t.Fatalf("command %q", c.Command)
	}
	for _, flag := range []string{"--resume", "--model", "--data", "--out"} {
		if !slices.Contains(c.Command, flag) {
			t.Errorf("command lacks %s: %q", flag, c.Command)
		}
	}
	if slices.Contains(c.Command, "--shard") {
		t.Error("--shard would override JOB_COMPLETION_INDEX: every pod would write the same part")
	}
	mounted := map[string]bool{}
	for _, v := range pod.Volumes {
		mounted[v.Name] = true
	}
	for _, m := range c.VolumeMounts {
		if !mounted[m.Name] {
			t.Errorf("volumeMount %q has no volume", m.Name)
		}
	}
	if _, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok {
		t.Error("no memory request")
	}
}

// The decoding is strict: a misspelled field, or a field in the wrong place, is an error.
func TestStrictDecodingCatchesMistakes(t *testing.T) {
	data, err := os.ReadFile("extract-job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to string }{
		{"completionMode: Indexed", "completionmode: Indexed"},
		{"restartPolicy: Never", "restartPolicy: Never\n      restartPolicy: OnFailure"},
		{"backoffLimitPerIndex: 3", "backofflimitPerIndex: 3"},
		{"operator: In", "operator: Inn, op: In"},
		{"        image:", "        images:"},
		{"      volumes:", "        volumes:"}, // under the container instead of the pod
		{"value: \"16\"}", "value: 16}"},       // a number where the API wants a string
	} {
		bad := strings.Replace(string(data), c.from, c.to, 1)
		if bad == string(data) {
			t.Fatalf("%q not in the manifest", c.from)
		}
		if _, err := decodeJob(t, []byte(bad)); err == nil {
			t.Errorf("%q accepted", c.to)
		}
	}
}
