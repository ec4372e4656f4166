#include "io/mlx_quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "test_util.h"

namespace llmerge {
namespace {

constexpr int k_all_bits[] = {2, 3, 4, 5, 6, 8};
constexpr int k_all_group_sizes[] = {32, 64, 128};

// Expects `fn` to throw Error of `kind` whose message contains `needle`.
template <typename Fn>
void expect_error(Fn&& fn, ErrorKind kind, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown, expected: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(e.message().find(needle), std::string::npos) << e.what();
  }
}

struct Quantized {
  std::vector<std::uint32_t> packed;
  std::vector<float> scales, biases;
  std::vector<float> dequantized;
};

// Quantises f32 rows and dequantises them back, through the public API.
Quantized round_trip_f32(const QuantParams& p, const std::vector<float>& w, std::int64_t rows,
                         QuantRounding rounding = QuantRounding::ties_to_even) {
  const std::int64_t cols = static_cast<std::int64_t>(w.size()) / rows;
  const QuantRowLayout layout = quant_row_layout(p, cols);
  Quantized q;
  q.packed.resize(rows * layout.words);
  q.scales.resize(rows * layout.groups);
  q.biases.resize(rows * layout.groups);
  q.dequantized.resize(w.size());
  quantize_rows(p, w.data(), DType::F32, rows, cols, q.packed.data(), q.scales.data(),
                q.biases.data(), rounding);
  dequantize_rows(p, q.packed.data(), q.scales.data(), q.biases.data(), DType::F32, rows, cols,
                  q.dequantized.data());
  return q;
}

std::vector<float> normal_values(std::size_t n, std::uint32_t seed, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v)
    x = dist(rng);
  return v;
}

std::vector<std::uint8_t> codes_of(const QuantParams& p, const Quantized& q, std::int64_t n) {
  std::vector<std::uint8_t> codes(n);
  unpack_codes(p.bits, q.packed.data(), n, codes.data());
  return codes;
}

// ---- parameters and layout ----

TEST(MlxQuant, ParamsRejectBitsOneAndSeven) {
  expect_error(
      [] {
        validate_quant_params({1, 64, QuantMode::affine});
      },
      ErrorKind::config, "bits must be 2, 3, 4, 5, 6 or 8, got 1");
  expect_error(
      [] {
        validate_quant_params({7, 64, QuantMode::affine});
      },
      ErrorKind::config, "got 7");
  for (int bits : k_all_bits)
    EXPECT_FALSE(quant_params_error({bits, 64, QuantMode::affine}));
}

TEST(MlxQuant, ParamsRejectGroupSizesOtherThan32To128) {
  for (int gs : {0, 16, 48, 256}) {
    const auto error = quant_params_error({4, gs, QuantMode::affine});
    ASSERT_TRUE(error) << gs;
    EXPECT_EQ(error->kind(), ErrorKind::config);
    EXPECT_NE(error->message().find("group_size must be 32, 64 or 128, got " + std::to_string(gs)),
              std::string::npos)
        << error->message();
  }
  for (int gs : k_all_group_sizes)
    EXPECT_FALSE(quant_params_error({4, gs, QuantMode::affine}));
}

TEST(MlxQuant, Mxfp4NeedsFourBitsAndGroup32) {
  EXPECT_FALSE(quant_params_error({4, 32, QuantMode::mxfp4}));
  expect_error(
      [] {
        validate_quant_params({4, 64, QuantMode::mxfp4});
      },
      ErrorKind::config,
      "mxfp4 quantization needs bits 4 and group_size 32, got bits 4 and group_size 64");
  expect_error(
      [] {
        validate_quant_params({8, 32, QuantMode::mxfp4});
      },
      ErrorKind::config, "got bits 8");
}

TEST(MlxQuant, ModeNamesParseAndOtherMlxModesAreNotSupportedYet) {
  EXPECT_EQ(parse_quant_mode("affine"), QuantMode::affine);
  EXPECT_EQ(parse_quant_mode("mxfp4"), QuantMode::mxfp4);
  EXPECT_EQ(quant_mode_name(QuantMode::mxfp4), "mxfp4");
  expect_error([] { parse_quant_mode("mxfp8"); }, ErrorKind::unsupported,
               "'mxfp8' is not supported yet");
  expect_error([] { parse_quant_mode("nvfp4"); }, ErrorKind::unsupported,
               "'nvfp4' is not supported yet");
  expect_error([] { parse_quant_mode("Affine"); }, ErrorKind::config,
               "unknown quantization mode 'Affine'");
}

TEST(MlxQuant, RowLayoutCountsWordsAndGroups) {
  const QuantRowLayout l4 = quant_row_layout({4, 64, QuantMode::affine}, 4096);
  EXPECT_EQ(l4.words, 512);
  EXPECT_EQ(l4.groups, 64);
  const QuantRowLayout l3 = quant_row_layout({3, 32, QuantMode::affine}, 96);
  EXPECT_EQ(l3.words, 9);
  EXPECT_EQ(l3.groups, 3);
  const QuantRowLayout from_words = quant_row_layout_from_words({3, 32, QuantMode::affine}, 12);
  EXPECT_EQ(from_words.cols, 128);
  EXPECT_EQ(from_words.groups, 4);
  expect_error(
      [] {
        quant_row_layout({4, 64, QuantMode::affine}, 100);
      },
      ErrorKind::shape, "100 elements is not a positive multiple of group_size 64");
  expect_error([] { quant_row_layout({4, 64, QuantMode::affine}, 0); }, ErrorKind::shape, "0");
  // 3-bit groups of 32 take 3 words; 4 words is not a whole number of groups.
  expect_error(
      [] {
        quant_row_layout_from_words({3, 32, QuantMode::affine}, 4);
      },
      ErrorKind::shape, "(3 words each)");
}

// ---- packing ----

TEST(MlxQuant, PackUnpackRoundTripsEveryBitWidth) {
  std::mt19937 rng(7);
  for (int bits : k_all_bits) {
    for (std::int64_t count : {1, 31, 32, 37, 256}) {
      std::vector<std::uint8_t> codes(count);
      for (auto& c : codes)
        c = static_cast<std::uint8_t>(rng() & ((1u << bits) - 1u));
      const std::int64_t words = (count * bits + 31) / 32;
      std::vector<std::uint32_t> packed(words + 1, 0xdeadbeefu);
      pack_codes(bits, codes.data(), count, packed.data());
      EXPECT_EQ(packed[words], 0xdeadbeefu) << "wrote past the last word";
      const int used = static_cast<int>(count * bits % 32);
      if (used != 0) {
        EXPECT_EQ(packed[words - 1] >> used, 0u) << "bits " << bits;
      }
      std::vector<std::uint8_t> back(count);
      unpack_codes(bits, packed.data(), count, back.data());
      EXPECT_EQ(back, codes) << "bits " << bits << " count " << count;
    }
  }
}

TEST(MlxQuant, FourBitPackingPutsElementZeroInTheLowNibble) {
  const std::uint8_t codes[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  std::uint32_t word = 0;
  pack_codes(4, codes, 8, &word);
  EXPECT_EQ(word, 0x76543210u);
  const std::uint8_t codes2[8] = {0xf, 0, 0, 0, 0, 0, 0, 0xa};
  pack_codes(4, codes2, 8, &word);
  EXPECT_EQ(word, 0xa000000fu);
}

TEST(MlxQuant, ThreeBitPackingStraddlesWordsAsMlxBytes) {
  // mlx packs 8 three-bit codes into 3 little-endian bytes. Codes 0..7 form the
  // 24-bit value 0o76543210 = 0xFAC688, i.e. bytes 88 C6 FA. 32 codes (0..7
  // four times) are 12 bytes: 88 C6 FA 88 | C6 FA 88 C6 | FA 88 C6 FA, which
  // read as little-endian uint32 words are:
  std::uint8_t codes[32];
  for (int i = 0; i < 32; ++i)
    codes[i] = static_cast<std::uint8_t>(i % 8);
  std::uint32_t words[3] = {};
  pack_codes(3, codes, 32, words);
  EXPECT_EQ(words[0], 0x88FAC688u);
  EXPECT_EQ(words[1], 0xC688FAC6u);
  EXPECT_EQ(words[2], 0xFAC688FAu);
  // Element 10 (code 2 = 0b010) sits at stream bits 30..32: bits 30-31 of
  // word 0 hold its low bits 0b10, bit 0 of word 1 its high bit 0.
  EXPECT_EQ(words[0] >> 30, 0b10u);
  EXPECT_EQ(words[1] & 1u, 0u);
  std::uint8_t back[32];
  unpack_codes(3, words, 32, back);
  EXPECT_EQ(back[10], 2);
  EXPECT_EQ(back[21], 5);  // bits 63..65: straddles words 1 and 2
}

// ---- dequantise ----

TEST(MlxQuant, DequantizeAppliesNegativeScaleAndBias) {
  const QuantParams p{4, 32, QuantMode::affine};
  std::uint8_t codes[32] = {};
  codes[0] = 0;
  codes[1] = 15;
  codes[2] = 6;
  std::uint32_t packed[4];
  pack_codes(4, codes, 32, packed);
  const float scale = -0.5f, bias = 3.0f;
  float out[32];
  dequantize_rows(p, packed, &scale, &bias, DType::F32, 1, 32, out);
  EXPECT_EQ(out[0], 3.0f);
  EXPECT_EQ(out[1], -4.5f);
  EXPECT_EQ(out[2], 0.0f);
  // bf16 scales: -0.5 and 3 are exact in bf16.
  const std::uint16_t scale16 = f32_to_bf16(scale), bias16 = f32_to_bf16(bias);
  dequantize_rows(p, packed, &scale16, &bias16, DType::BF16, 1, 32, out);
  EXPECT_EQ(out[1], -4.5f);
}

TEST(MlxQuant, DequantizeAsRoundsTheProductToTheScaleDtypeBeforeAddingBias) {
  // scale = 1 + 2^-10 (exact in f16), q = 3: q*scale = 3 + 1.5*2^-9 is a tie in
  // f16 and rounds to even, 3 + 2^-8. mlx then adds bias -3 in f16: 2^-8.
  // The float32 path keeps the exact 3*2^-10.
  const QuantParams p{2, 32, QuantMode::affine};
  std::uint8_t codes[32];
  std::fill(std::begin(codes), std::end(codes), 3);
  std::uint32_t packed[2];
  pack_codes(2, codes, 32, packed);
  const std::uint16_t scale = f32_to_f16(1.0f + 0x1p-10f), bias = f32_to_f16(-3.0f);
  float exact[32];
  dequantize_rows(p, packed, &scale, &bias, DType::F16, 1, 32, exact);
  EXPECT_EQ(exact[0], 3 * 0x1p-10f);
  std::uint16_t as_f16[32];
  dequantize_rows_as(p, packed, &scale, &bias, DType::F16, 1, 32, DType::F16, as_f16);
  EXPECT_EQ(f16_to_f32(as_f16[31]), 0x1p-8f);
  float as_f32[32];
  dequantize_rows_as(p, packed, &scale, &bias, DType::F16, 1, 32, DType::F32, as_f32);
  EXPECT_EQ(as_f32[5], 0x1p-8f);
}

TEST(MlxQuant, Mxfp4DequantizesE2M1TimesPowerOfTwo) {
  const QuantParams p{4, 32, QuantMode::mxfp4};
  std::uint8_t codes[64] = {};
  codes[0] = 0x7;   // +6
  codes[1] = 0x9;   // -0.5
  codes[2] = 0x8;   // -0
  codes[32] = 0x3;  // +1.5 in the second group
  codes[33] = 0x0;
  std::uint32_t packed[8];
  pack_codes(4, codes, 64, packed);
  const std::uint8_t scales[2] = {128, 255};  // 2^1, and 2^128 = +Inf as mlx computes it
  float out[64];
  dequantize_rows(p, packed, scales, nullptr, DType::U8, 1, 64, out);
  EXPECT_EQ(out[0], 12.0f);
  EXPECT_EQ(out[1], -1.0f);
  EXPECT_TRUE(out[2] == 0.0f && std::signbit(out[2]));
  EXPECT_EQ(out[32], INFINITY);
  EXPECT_TRUE(std::isnan(out[33]));  // 0 * Inf
  std::uint16_t bf16[64];
  dequantize_rows_as(p, packed, scales, nullptr, DType::F8_E8M0, 1, 64, DType::BF16, bf16);
  EXPECT_EQ(bf16_to_f32(bf16[0]), 12.0f);
  EXPECT_THROW(dequantize_rows(p, packed, scales, scales, DType::U8, 1, 64, out), Error);
}

// ---- quantise ----

TEST(MlxQuant, RoundTripErrorIsHalfAStepInsideTheGridAndOneStepAtTheClampedEdge) {
  for (int bits : k_all_bits) {
    for (int gs : k_all_group_sizes) {
      const QuantParams p{bits, gs, QuantMode::affine};
      const std::int64_t rows = 3, cols = 2 * gs;
      auto w = normal_values(rows * cols, static_cast<std::uint32_t>(bits * 1000 + gs), 0.3f);
      const Quantized q = round_trip_f32(p, w, rows);
      const float n_bins = static_cast<float>((1 << bits) - 1);
      for (std::int64_t i = 0; i < rows * cols; ++i) {
        const float s = q.scales[i / gs], b = q.biases[i / gs];
        const float lo = std::min(b, b + n_bins * s), hi = std::max(b, b + n_bins * s);
        const float tol = 1e-5f * std::abs(s) + 1e-6f * std::abs(w[i]);
        const float bound = (w[i] >= lo && w[i] <= hi) ? std::abs(s) / 2 : std::abs(s);
        ASSERT_LE(std::abs(w[i] - q.dequantized[i]), bound + tol)
            << "bits " << bits << " gs " << gs << " i " << i;
      }
    }
  }
}

TEST(MlxQuant, ClampingCanCostAFullStepAsInMlx) {
  // 2 bits: range [-1, 0.8] gives scale 0.6, snapped to 0.5 (q0 = -2), bias -1;
  // 0.8 wants code 3.6, is clamped to 3 and comes back as 0.5.
  std::vector<float> w(32, 0.0f);
  w[0] = -1.0f;
  w[1] = 0.8f;
  const Quantized q = round_trip_f32({2, 32, QuantMode::affine}, w, 1);
  EXPECT_EQ(q.scales[0], 0.5f);
  EXPECT_EQ(q.biases[0], -1.0f);
  EXPECT_EQ(q.dequantized[1], 0.5f);
  EXPECT_EQ(q.dequantized[0], -1.0f);
  EXPECT_EQ(q.dequantized[2], 0.0f);
}

TEST(MlxQuant, ZeroIsOnTheGridForGroupsStraddlingZero) {
  for (int bits : k_all_bits) {
    const QuantParams p{bits, 64, QuantMode::affine};
    auto w = normal_values(64 * 8, static_cast<std::uint32_t>(bits), 0.2f);
    for (std::size_t g = 0; g < 8; ++g)
      w[g * 64 + 5] = 0.0f;
    const Quantized q = round_trip_f32(p, w, 8);
    for (std::size_t g = 0; g < 8; ++g) {
      const float deq_zero = q.dequantized[g * 64 + 5];
      // Without snapping the error could be anything up to |scale|/2; with it,
      // only the f32 rounding of scale = edge / q0 remains.
      EXPECT_LE(std::abs(deq_zero), 4e-7f * std::abs(q.biases[g])) << "bits " << bits;
      EXPECT_LT(std::abs(deq_zero), 1e-3f * std::abs(q.scales[g]));
    }
  }
}

TEST(MlxQuant, ConstantGroupsComeBackExactly) {
  for (float c : {1.5f, -2.0f, 1e-3f, 3e4f}) {
    const std::vector<float> w(32, c);
    const Quantized q = round_trip_f32({4, 32, QuantMode::affine}, w, 1);
    EXPECT_EQ(q.biases[0], c);
    EXPECT_NEAR(q.scales[0], -1e-7f, 1e-12f) << c;  // |min| > |max| is false: negative
    for (float x : q.dequantized)
      ASSERT_EQ(x, c);
    for (auto code : codes_of({4, 32, QuantMode::affine}, q, 32))
      ASSERT_EQ(code, 0);
  }
}

TEST(MlxQuant, AllZeroGroupHasScaleMinusEpsAndBiasZero) {
  const std::vector<float> w(64, 0.0f);
  const Quantized q = round_trip_f32({3, 64, QuantMode::affine}, w, 1);
  EXPECT_EQ(q.scales[0], -static_cast<float>(1e-7));
  EXPECT_EQ(q.biases[0], 0.0f);
  for (float x : q.dequantized)
    ASSERT_EQ(x, 0.0f);
  // f16 stores -1e-7 as the subnormal -2 * 2^-24 (0x8002).
  const std::vector<std::uint16_t> w16(64, 0);
  std::uint32_t packed[6];
  std::uint16_t scale = 0, bias = 0xffff;
  quantize_rows({3, 64, QuantMode::affine}, w16.data(), DType::F16, 1, 64, packed, &scale, &bias);
  EXPECT_EQ(scale, 0x8002);
  EXPECT_EQ(bias, 0);
}

TEST(MlxQuant, PositiveGroupsGetANegativeScaleAndBiasAtTheMax) {
  std::vector<float> w(32);
  for (int i = 0; i < 32; ++i)
    w[i] = 1.0f + static_cast<float>(i) / 31.0f;  // [1, 2]
  const Quantized q = round_trip_f32({4, 32, QuantMode::affine}, w, 1);
  EXPECT_LT(q.scales[0], 0.0f);
  EXPECT_EQ(q.biases[0], 2.0f);
  EXPECT_EQ(q.dequantized[31], 2.0f);
  EXPECT_NEAR(q.dequantized[0], 1.0f, 1e-6f);
  EXPECT_EQ(codes_of({4, 32, QuantMode::affine}, q, 32)[0], 15);
}

TEST(MlxQuant, GpuFlavourRoundsTiesAwayAndStartsTheMaxAtZero) {
  // 2 bits over [0, 3]: scale -1, bias 3. 0.5 maps to (0.5 - 3) / -1 = 2.5: a
  // tie, code 2 with rint (CPU) but 3 with round (Metal/CUDA).
  std::vector<float> w(32, 0.0f);
  w[1] = 3.0f;
  w[2] = 0.5f;
  const QuantParams p{2, 32, QuantMode::affine};
  const Quantized cpu = round_trip_f32(p, w, 1, QuantRounding::ties_to_even);
  const Quantized gpu = round_trip_f32(p, w, 1, QuantRounding::half_away_from_zero);
  EXPECT_EQ(codes_of(p, cpu, 3)[2], 2);
  EXPECT_EQ(codes_of(p, gpu, 3)[2], 3);
  EXPECT_EQ(cpu.dequantized[2], 1.0f);
  EXPECT_EQ(gpu.dequantized[2], 0.0f);
  // All negative: the GPU range is [-2, 0], the CPU range [-2, -1].
  std::vector<float> neg(32, -1.0f);
  neg[0] = -2.0f;
  const Quantized neg_cpu = round_trip_f32(p, neg, 1, QuantRounding::ties_to_even);
  const Quantized neg_gpu = round_trip_f32(p, neg, 1, QuantRounding::half_away_from_zero);
  EXPECT_FLOAT_EQ(neg_cpu.scales[0], 1.0f / 3.0f);
  EXPECT_FLOAT_EQ(neg_gpu.scales[0], 2.0f / 3.0f);
  EXPECT_EQ(neg_gpu.biases[0], -2.0f);
}

TEST(MlxQuant, Bf16QuantizeRoundsScaleAndBiasToNearestEven) {
  const QuantParams p{4, 64, QuantMode::affine};
  const auto w32 = normal_values(4 * 64, 99);
  std::vector<std::uint16_t> w16(w32.size());
  std::vector<float> w_exact(w32.size());
  for (std::size_t i = 0; i < w32.size(); ++i) {
    w16[i] = f32_to_bf16(w32[i]);
    w_exact[i] = bf16_to_f32(w16[i]);
  }
  std::vector<std::uint32_t> packed16(4 * 8);  // 64 four-bit codes = 8 words a row
  std::vector<std::uint16_t> s16(4), b16(4);
  quantize_rows(p, w16.data(), DType::BF16, 4, 64, packed16.data(), s16.data(), b16.data());
  const Quantized q32 = round_trip_f32(p, w_exact, 4);
  // Same codes as quantising the same values in f32; scales/biases rounded.
  EXPECT_EQ(packed16, q32.packed);
  for (int g = 0; g < 4; ++g) {
    EXPECT_EQ(s16[g], f32_to_bf16(q32.scales[g]));
    EXPECT_EQ(b16[g], f32_to_bf16(q32.biases[g]));
  }
}

TEST(MlxQuant, QuantizeRejectsMxfp4AndNonFloatInput) {
  std::vector<float> w(32, 1.0f);
  std::uint32_t packed[4];
  float s, b;
  expect_error(
      [&] {
        quantize_rows({4, 32, QuantMode::mxfp4}, w.data(), DType::F32, 1, 32, packed, &s, &b);
      },
      ErrorKind::unsupported, "not supported yet");
  expect_error(
      [&] {
        quantize_rows({4, 32, QuantMode::affine}, w.data(), DType::I32, 1, 32, packed, &s, &b);
      },
      ErrorKind::internal, "unsupported dtype I32");
}

// ---- bit-exactness against real mlx (cases written by tests/mlx/check_quant.py) ----

std::vector<char> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Index of the first differing byte-element of size `elem`, or -1.
std::int64_t first_difference(const std::vector<char>& a, const void* b, std::size_t nbytes,
                              std::size_t elem) {
  if (a.size() != nbytes) return 0;
  for (std::size_t i = 0; i < nbytes; i += elem)
    if (std::memcmp(a.data() + i, static_cast<const char*>(b) + i, elem) != 0)
      return static_cast<std::int64_t>(i / elem);
  return -1;
}

TEST(MlxQuant, MatchesMlxBitForBit) {
  const char* dir_env = std::getenv("LLMERGE_MLX_CASES");
  if (dir_env == nullptr) GTEST_SKIP() << "set LLMERGE_MLX_CASES (tests/mlx/check_quant.py does)";
  const std::filesystem::path dir(dir_env);
  std::ifstream manifest(dir / "manifest.txt");
  ASSERT_TRUE(manifest) << "no manifest.txt in " << dir;
  int cases = 0, failed = 0, comparisons = 0;
  std::string line;
  while (std::getline(manifest, line)) {
    // name kind(quantize|dequantize) mode bits group_size dtype rows cols deq_dtype
    std::istringstream fields(line);
    std::string name, kind, mode, dtype_s, deq_dtype_s;
    QuantParams p;
    std::int64_t rows = 0, cols = 0;
    if (!(fields >> name >> kind >> mode >> p.bits >> p.group_size >> dtype_s >> rows >> cols >>
          deq_dtype_s))
      continue;
    p.mode = parse_quant_mode(mode);
    const DType dtype = *dtype_from_name(dtype_s), deq_dtype = *dtype_from_name(deq_dtype_s);
    const QuantRowLayout layout = quant_row_layout(p, cols);
    const auto file = [&](const char* suffix) { return read_bytes(dir / (name + suffix)); };
    const std::size_t scale_size = dtype_bits(dtype) / 8;
    ++cases;
    const auto check = [&](const char* what, const std::vector<char>& expected, const void* got,
                           std::size_t nbytes, std::size_t elem) {
      ++comparisons;
      const std::int64_t at = first_difference(expected, got, nbytes, elem);
      if (at >= 0) {
        ++failed;
        ADD_FAILURE() << name << ": " << what << " differs from mlx at element " << at;
      }
    };
    const auto wq = file(".wq.bin"), scales = file(".scales.bin");
    const auto biases = p.mode == QuantMode::affine ? file(".biases.bin") : std::vector<char>{};
    if (kind == "quantize") {
      const auto w = file(".w.bin");
      std::vector<std::uint32_t> packed(rows * layout.words);
      std::vector<char> s(rows * layout.groups * scale_size), b(s.size());
      quantize_rows(p, w.data(), dtype, rows, cols, packed.data(), s.data(), b.data());
      check("packed words", wq, packed.data(), packed.size() * 4, 4);
      check("scales", scales, s.data(), s.size(), scale_size);
      check("biases", biases, b.data(), b.size(), scale_size);
    }
    const auto* packed = reinterpret_cast<const std::uint32_t*>(wq.data());
    const void* bias_ptr = biases.empty() ? nullptr : biases.data();
    const std::size_t deq_size = dtype_bits(deq_dtype) / 8;
    std::vector<char> deq(rows * cols * deq_size);
    dequantize_rows_as(p, packed, scales.data(), bias_ptr, dtype, rows, cols, deq_dtype,
                       deq.data());
    check("dequantized (as mlx)", file(".deq.bin"), deq.data(), deq.size(), deq_size);
    const bool float_path_exact = p.mode == QuantMode::mxfp4 || dtype == DType::F32;
    if (float_path_exact) {  // elsewhere the f32 path is (deliberately) more precise than mlx
      std::vector<float> deq32(rows * cols);
      dequantize_rows(p, packed, scales.data(), bias_ptr, dtype, rows, cols, deq32.data());
      check("dequantized (f32)", file(".deq32.bin"), deq32.data(), deq32.size() * 4, 4);
    }
  }
  std::printf("[mlx] %d cases, %d comparisons, %d mismatches\n", cases, comparisons, failed);
  EXPECT_GT(cases, 0);
}

}  // namespace
}  // namespace llmerge
