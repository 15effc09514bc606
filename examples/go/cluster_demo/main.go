// Clustering from Go through cgo: fit on a synthetic union of 4 random 3-dimensional subspaces of R^24 →
// assign → metrics → save → load → same labels, with a failed call turned into a Go error.
//
// Build and run (repository root, after `cargo build --release`; the header is found through SRCDIR below):
//
//	cd examples/go && CGO_LDFLAGS="-L$PWD/../../target/release -Wl,-rpath,$PWD/../../target/release" \
//	  go run ./cluster_demo [WORK_DIR]
//
// Elsewhere, point CGO_CFLAGS at the directory holding rateclust.h and CGO_LDFLAGS at the library.
package main

// #cgo CFLAGS: -I${SRCDIR}/../../../include
// #cgo LDFLAGS: -lrateclust -lm
// #include <rateclust.h>
// #include <stdlib.h>
import "C"

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"unsafe"
)

// Error is a failed rateclust call: the C status code and the library's message.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("rateclust status %d: %s", e.Status, e.Msg) }

// check turns a status into an error. rateclust_last_error() is per OS thread, so the goroutine calling
// the library must stay on one thread (main locks it below).
func check(st C.rateclust_status) error {
	if st == C.RATECLUST_STATUS_OK {
		return nil
	}
	return &Error{Status: int(st), Msg: C.GoString(C.rateclust_last_error())}
}

// Clusterer owns a C rateclust_clusterer handle; call Close when done.
type Clusterer struct{ h *C.rateclust_clusterer }

func floats(x []float32) *C.float { return (*C.float)(unsafe.Pointer(&x[0])) }

// Fit clusters the rows of x (row-major, width dim). The library does not keep x after the call, so passing
// Go memory is allowed by the cgo pointer rules.
func Fit(x []float32, dim int, p *C.rateclust_fit_params) (*Clusterer, error) {
	var h *C.rateclust_clusterer
	if err := check(C.rateclust_fit(floats(x), C.size_t(len(x)/dim), C.size_t(dim), p,
		C.RATECLUST_DEVICE_KIND_CPU, nil, nil, &h)); err != nil {
		return nil, err
	}
	return &Clusterer{h}, nil
}

func Load(path string) (*Clusterer, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var h *C.rateclust_clusterer
	if err := check(C.rateclust_clusterer_load(cpath, &h)); err != nil {
		return nil, err
	}
	return &Clusterer{h}, nil
}

func (c *Clusterer) Save(path string) error {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	return check(C.rateclust_clusterer_save(c.h, cpath))
}

func (c *Clusterer) Assign(x []float32, dim int) ([]int64, []float32, error) {
	n := len(x) / dim
	labels, confidence := make([]int64, n), make([]float32, n)
	err := check(C.rateclust_assign(c.h, floats(x), C.size_t(n), C.size_t(dim), C.RATECLUST_DEVICE_KIND_CPU,
		(*C.int64_t)(unsafe.Pointer(&labels[0])), floats(confidence), nil, nil))
	return labels, confidence, err
}

func (c *Clusterer) Close() { C.rateclust_clusterer_free(c.h); c.h = nil }

func Metrics(pred, truth []int64) (acc, nmi, ari float64, err error) {
	var a, m, r C.double
	err = check(C.rateclust_metrics((*C.int64_t)(unsafe.Pointer(&pred[0])), (*C.int64_t)(unsafe.Pointer(&truth[0])),
		C.size_t(len(pred)), &a, &m, &r))
	return float64(a), float64(m), float64(r), err
}

const n, dim, k, rank = 800, 24, 4, 3

// unionOfSubspaces: points on subspace i % k (orthonormal bases by Gram–Schmidt) plus a little noise.
func unionOfSubspaces() ([]float32, []int64) {
	rng := rand.New(rand.NewSource(12345))
	bases := make([][][]float64, k)
	for j := range bases {
		for q := 0; q < rank; q++ {
			v := make([]float64, dim)
			for t := range v {
				v[t] = rng.NormFloat64()
			}
			for _, u := range bases[j] {
				dot := 0.0
				for t := range v {
					dot += v[t] * u[t]
				}
				for t := range v {
					v[t] -= dot * u[t]
				}
			}
			norm := 0.0
			for _, a := range v {
				norm += a * a
			}
			for t := range v {
				v[t] /= math.Sqrt(norm)
			}
			bases[j] = append(bases[j], v)
		}
	}
	x, truth := make([]float32, n*dim), make([]int64, n)
	for i := 0; i < n; i++ {
		j := i % k
		truth[i] = int64(j)
		row := x[i*dim : (i+1)*dim]
		for t := range row {
			row[t] = float32(0.02 * rng.NormFloat64())
		}
		for _, u := range bases[j] {
			a := rng.NormFloat64() / math.Sqrt(rank)
			for t := range row {
				row[t] += float32(a * u[t])
			}
		}
	}
	return x, truth
}

func run(work string) error {
	fmt.Printf("rateclust %s (ABI %d)\n", C.GoString(C.rateclust_version()), uint32(C.rateclust_abi_version()))
	x, truth := unionOfSubspaces()

	// Small head and few steps: this toy problem needs nothing like the CIFAR-10 defaults.
	p := C.rateclust_fit_default_params()
	p.k, p.hidden, p.zdim, p.batch, p.steps, p.warmup = k, 96, 24, 200, 120, 8
	p.lr, p.lr_cluster, p.spectral_sample = 1e-3, 1e-3, 400
	c, err := Fit(x, dim, &p)
	if err != nil {
		return err
	}
	defer c.Close()
	labels, _, err := c.Assign(x, dim)
	if err != nil {
		return err
	}
	acc, nmi, ari, err := Metrics(labels, truth)
	if err != nil {
		return err
	}
	fmt.Printf("metrics: acc %.4f nmi %.4f ari %.4f\n", acc, nmi, ari)

	path := filepath.Join(work, "rateclust_go_demo.safetensors")
	if err := c.Save(path); err != nil {
		return err
	}
	loaded, err := Load(path)
	os.Remove(path)
	if err != nil {
		return err
	}
	defer loaded.Close()
	again, _, err := loaded.Assign(x, dim)
	if err != nil {
		return err
	}
	for i := range again {
		if again[i] != labels[i] {
			return fmt.Errorf("the loaded clusterer labels point %d differently", i)
		}
	}
	fmt.Printf("save/load: same labels for all %d points\n", len(again))

	// A failed call is an *Error carrying the status and the library's message.
	if _, _, err := c.Assign(make([]float32, 10*(dim+1)), dim+1); err == nil {
		return fmt.Errorf("assign with the wrong dimension did not fail")
	} else if e, ok := err.(*Error); !ok || e.Status != C.RATECLUST_STATUS_INVALID_ARGUMENT {
		return fmt.Errorf("unexpected error: %v", err)
	} else {
		fmt.Printf("expected error: %v\n", err)
	}
	return nil
}

func main() {
	runtime.LockOSThread() // keeps rateclust_last_error() on the thread of the failed call
	work := os.TempDir()
	if len(os.Args) > 1 {
		work = os.Args[1]
	}
	if err := run(work); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	fmt.Println("ok")
}
