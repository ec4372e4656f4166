// libFuzzer target: MLX quantisation metadata and the row arithmetic that
// trusts it (src/io/mlx_quant.h).
//
// The input supplies a mode name, bits, group_size and a word count, as a
// config.json "quantization" block and a weight's last dimension would.
// Everything must be accepted or rejected with Error; accepted parameters
// must give consistent layouts, and a small row must survive pack/unpack and
// dequantise without touching memory outside its buffers.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/mlx_quant.h"

using namespace llmerge;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  QuantParams params;
  try {
    params.mode = parse_quant_mode(in.ConsumeRandomLengthString(32));
  } catch (const Error&) {
    params.mode = in.ConsumeBool() ? QuantMode::affine : QuantMode::mxfp4;
  }
  params.bits = in.ConsumeIntegral<int>();
  params.group_size = in.ConsumeIntegral<int>();
  const auto words = in.ConsumeIntegral<std::int64_t>();
  const auto cols = in.ConsumeIntegral<std::int64_t>();

  const bool valid = !quant_params_error(params).has_value();
  try {
    validate_quant_params(params);
    FUZZ_CHECK(valid);
  } catch (const Error&) {
    FUZZ_CHECK(!valid);
  }
  if (!valid) return 0;

  QuantRowLayout layout;
  try {
    layout = quant_row_layout_from_words(params, words);
    FUZZ_CHECK(layout.words == words && layout.cols > 0);
    FUZZ_CHECK(layout.cols % params.group_size == 0);
    FUZZ_CHECK(layout.groups * params.group_size == layout.cols);
    const QuantRowLayout again = quant_row_layout(params, layout.cols);
    FUZZ_CHECK(again.words == layout.words && again.groups == layout.groups);
  } catch (const Error&) {
  }
  try {
    const QuantRowLayout l = quant_row_layout(params, cols);
    FUZZ_CHECK(l.cols == cols && l.words > 0 && l.groups > 0);
    FUZZ_CHECK(l.words * 32 == l.cols * params.bits);
  } catch (const Error&) {
  }

  // One small row through the packing and dequantising code.
  const std::int64_t row_cols = params.group_size * (1 + in.ConsumeIntegralInRange<int>(0, 3));
  const QuantRowLayout row = quant_row_layout(params, row_cols);
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(row_cols));
  for (auto& c : codes)
    c = static_cast<std::uint8_t>(in.ConsumeIntegral<std::uint8_t>() & ((1u << params.bits) - 1));
  std::vector<std::uint32_t> packed(static_cast<std::size_t>(row.words));
  pack_codes(params.bits, codes.data(), row_cols, packed.data());
  std::vector<std::uint8_t> back(codes.size());
  unpack_codes(params.bits, packed.data(), row_cols, back.data());
  FUZZ_CHECK(back == codes);

  std::vector<float> out(static_cast<std::size_t>(row_cols));
  if (params.mode == QuantMode::affine) {
    std::vector<float> scales(static_cast<std::size_t>(row.groups));
    std::vector<float> biases(scales.size());
    for (std::size_t g = 0; g < scales.size(); ++g) {
      scales[g] = in.ConsumeFloatingPoint<float>();
      biases[g] = in.ConsumeFloatingPoint<float>();
    }
    dequantize_rows(params, packed.data(), scales.data(), biases.data(), DType::F32, 1, row_cols,
                    out.data());
  } else {
    std::vector<std::uint8_t> scales(static_cast<std::size_t>(row.groups));
    for (auto& s : scales)
      s = in.ConsumeIntegral<std::uint8_t>();
    dequantize_rows(params, packed.data(), scales.data(), nullptr, DType::U8, 1, row_cols,
                    out.data());
  }
  return 0;
}
