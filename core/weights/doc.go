// Package weights reads named float32 tensors from Hugging Face model folders
// (model.safetensors or PyTorch's zip-pickle pytorch_model.bin) and writes
// safetensors files.
//
// Conventions:
//   - Every Tensor is float32 in memory, row-major and contiguous; Shape lists
//     dimensions outermost first, so a Linear weight is [out, in] exactly as
//     PyTorch stores it. A 0-d (scalar) tensor has an empty Shape and Len 1.
//   - DType records how the values were stored ("F32", "F16", "BF16", "F64",
//     in safetensors spelling); F16, BF16 and F64 are converted to float32, and
//     so are integer and boolean buffers ("I64", "I32", "I16", "I8", "U8",
//     "BOOL", such as BatchNorm's num_batches_tracked), exactly up to 2²⁴ in
//     magnitude.
//   - Files are memory-mapped read-only. Little-endian float32 data that is
//     contiguous and 4-byte aligned is aliased, not copied: Data then points
//     into the mapping, must not be written, and is invalid after File.Close.
//     Everything else (strided views, other dtypes, big-endian, unaligned or
//     compressed entries) is gathered into a fresh slice. Stored .bin entries
//     are checked against their zip CRC-32 on open.
//   - A File is read-only once opened and safe for concurrent use. It has no
//     finalizer: aliased Data would dangle if the mapping were released
//     behind the caller's back, so call Close when done with every tensor.
//   - PyTorch pickles are interpreted, never executed: only an allow-list of
//     globals (collections.OrderedDict, torch._utils._rebuild_tensor_v2,
//     torch._utils._rebuild_parameter and torch storage types) is accepted.
//   - Errors are one line naming the file and, where there is one, the tensor
//     ("FILE: tensor NAME: ..."). They wrap ErrMalformed, ErrUnsupportedDType
//     or ErrUnlistedGlobal, or the underlying I/O error, for errors.Is.
package weights
