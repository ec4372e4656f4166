// Tensor element types and scalar conversions.
//
// DType lists every dtype of the reference safetensors parser
// (huggingface/safetensors, src/tensor.rs), in the same order ("increasing
// alignment"). Merging math supports the float types F16, BF16, F32 (and F64
// on input); the others are recognised so that a file containing them is
// read, inspected and passed through, never rejected as corrupt.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace llmerge {

enum class DType : std::uint8_t {
  BOOL,
  F4,
  F6_E2M3,
  F6_E3M2,
  U8,
  I8,
  F8_E5M2,
  F8_E4M3,
  F8_E8M0,
  F8_E4M3FNUZ,
  F8_E5M2FNUZ,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  C64,
  F64,
  I64,
  U64,
};

// The safetensors spelling, e.g. "BF16".
std::string_view dtype_name(DType t);
// Parses the safetensors spelling; nullopt for anything else.
std::optional<DType> dtype_from_name(std::string_view name);
// Size of one element in bits (4 for F4, 6 for F6_*, 8 for BOOL).
int dtype_bits(DType t);
// True for F16, BF16, F32, F64: the types the merge kernels read.
bool dtype_is_mergeable_float(DType t);

// Parses a mergekit/torch dtype name: "bfloat16", "float16", "float32",
// optionally prefixed "torch.", plus "bf16", "f16", "fp16", "f32", "fp32".
std::optional<DType> dtype_from_torch_name(std::string_view name);
// torch spelling for config.json "torch_dtype": "bfloat16", "float16", "float32".
std::string_view dtype_torch_name(DType t);

// ---- scalar conversions (the SIMD kernels have these as their scalar twins) ----

inline float f32_from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline std::uint32_t f32_to_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bf16_to_f32(std::uint16_t h) {
  return f32_from_bits(std::uint32_t{h} << 16);
}

// Round to nearest, ties to even. NaN stays NaN (quiet, sign kept); values that
// round past the largest bf16 become +/-Inf, as in torch's .to(torch.bfloat16).
inline std::uint16_t f32_to_bf16(float f) {
  std::uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

float f16_to_f32(std::uint16_t h);
// Round to nearest, ties to even, with subnormals and overflow to Inf (IEEE).
std::uint16_t f32_to_f16(float f);

}  // namespace llmerge
