// The catalogue of hostile safetensors files. Each case is a hand-made file,
// the error kind it must raise and a piece of the message that says what is
// wrong. Adding a regression means adding a row.
//
// Every case runs twice: through parse_header() on the bytes, and through
// open() on the same bytes written to disk; both must agree.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "safetensors_bytes.h"
#include "test_util.h"

namespace llmerge {
namespace {

using testing::le64;
using testing::safetensors_bytes;

struct CorruptCase {
  std::string name;   // gtest parameter name
  std::string bytes;  // the whole file
  ErrorKind kind;
  std::string message;  // substring the message must contain
  std::string tensor;   // the tensor the error must name; empty if none
};

// A header with one F32 tensor "w" of the given shape and offsets, plus data.
std::string one_tensor(const std::string& dtype, const std::string& shape,
                       const std::string& offsets, std::string_view data) {
  return safetensors_bytes(R"({"w":{"dtype":")" + dtype + R"(","shape":)" + shape +
                               R"(,"data_offsets":)" + offsets + "}}",
                           data);
}

std::string entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}";
}

std::vector<CorruptCase> catalogue() {
  const std::string f32x1_a = entry("F32", "[1]", "[0,4]");
  const std::string f32x1_b = entry("F32", "[1]", "[4,8]");
  std::vector<CorruptCase> c;

  // ---- length field ----
  c.push_back({"ShorterThanEightBytes", std::string("\x02\x00\x00", 3), ErrorKind::format,
               "the file is 3 bytes, too short", ""});
  c.push_back({"EmptyFile", "", ErrorKind::format, "the file is 0 bytes", ""});
  c.push_back({"HeaderLengthOverCap", le64(100'000'001) + "{}", ErrorKind::format,
               "header length 100,000,001 is over the 100,000,000-byte limit", ""});
  c.push_back({"HeaderLengthPastFileEnd", le64(50'000'000) + std::string(92, ' '),
               ErrorKind::format,
               "header length says 50,000,000 bytes but only 92 bytes follow the 8-byte length "
               "(truncated download?)",
               ""});
  c.push_back({"GitLfsPointer",
               "version https://git-lfs.github.com/spec/v1\noid sha256:0123abcd\nsize 9000\n",
               ErrorKind::format, "Git LFS pointer file, not the weights", ""});
  c.push_back({"HeaderLengthZero", le64(0) + "abcd", ErrorKind::format, "header length is 0", ""});

  // ---- header text ----
  c.push_back({"NonUtf8Header", safetensors_bytes("{\"w\xff\":{}}"), ErrorKind::format,
               "not valid UTF-8 (byte 0xff at header byte 3)", ""});
  c.push_back({"OverlongUtf8Header", safetensors_bytes("{\"\xc0\xaf\":{}}"), ErrorKind::format,
               "not valid UTF-8 (byte 0xc0 at header byte 2)", ""});
  c.push_back({"SurrogateUtf8Header", safetensors_bytes("{\"\xed\xa0\x80\":{}}"), ErrorKind::format,
               "not valid UTF-8 (byte 0xed", ""});
  c.push_back({"HeaderNotJson", safetensors_bytes(R"({"w":{"dtype":"F32",)"), ErrorKind::format,
               "the header is not valid JSON", ""});
  c.push_back({"HeaderPaddedWithNul", safetensors_bytes(std::string("{}\0\0\0\0\0\0", 8)),
               ErrorKind::format, "padded with 0x00 instead of spaces", ""});
  // A JSON parser that stops at NUL would see only the first object.
  c.push_back({"NulHidesSecondObject",
               safetensors_bytes(std::string(R"({"__metadata__":{}})") + '\0' +
                                 R"({"__metadata__":{"x":"y"}})"),
               ErrorKind::format, "NUL byte at header byte 19", ""});
  c.push_back({"TwoJsonValues", safetensors_bytes("{} {}"), ErrorKind::format,
               "the header is not valid JSON", ""});
  c.push_back({"HeaderIsArray", safetensors_bytes("[1, 2]"), ErrorKind::format,
               "the header is a JSON array, not an object", ""});
  c.push_back({"HeaderIsNegativeNumber", safetensors_bytes("-1"), ErrorKind::format,
               "the header is a number, not a JSON object", ""});
  c.push_back({"HeaderIsNumber", safetensors_bytes("42"), ErrorKind::format,
               "the header is a number, not a JSON object", ""});

  // ---- tensor entries ----
  c.push_back({"UnknownDtype", one_tensor("F12", "[1]", "[0,4]", "abcd"), ErrorKind::format,
               "tensor 'w' has unknown dtype 'F12' (safetensors knows BOOL, F4, F6_E2M3", "w"});
  c.push_back({"LowercaseDtype", one_tensor("bf16", "[1]", "[0,2]", "ab"), ErrorKind::format,
               "unknown dtype 'bf16'", "w"});
  c.push_back({"DtypeNotString",
               safetensors_bytes(R"({"w":{"dtype":16,"shape":[1],"data_offsets":[0,2]}})", "ab"),
               ErrorKind::format, "'dtype' is a number, not a string", "w"});
  c.push_back({"EntryNotObject", safetensors_bytes(R"({"w":[1,2]})"), ErrorKind::format,
               "tensor 'w' is an array, not an object", "w"});
  c.push_back({"MissingDataOffsets", safetensors_bytes(R"({"w":{"dtype":"U8","shape":[1]}})", "a"),
               ErrorKind::format, "tensor 'w' has no 'data_offsets'", "w"});
  c.push_back({"UnknownEntryField",
               safetensors_bytes(
                   R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"offset":0}})", "a"),
               ErrorKind::format, "tensor 'w' has an unknown field 'offset'", "w"});
  c.push_back({"ShapeSizeMismatch", one_tensor("F32", "[2,2]", "[0,12]", std::string(12, 'x')),
               ErrorKind::format,
               "is F32 [2, 2], which takes 16 bytes, but its data_offsets [0, 12] span 12 bytes",
               "w"});
  c.push_back({"ShapeProductOverflows",
               one_tensor("F32", "[4294967296,4294967296,16]", "[0,0]", ""), ErrorKind::format,
               "shape [4294967296, 4294967296, 16] whose element count overflows 64 bits", "w"});
  // The product is exactly 2^64, which wraps to 0 in unchecked arithmetic.
  c.push_back({"ShapeProductWrapsToZero", one_tensor("U8", "[4294967296,4294967296]", "[0,0]", ""),
               ErrorKind::format, "element count overflows 64 bits", "w"});
  c.push_back({"SizeInBitsOverflows", one_tensor("F32", "[2305843009213693952]", "[0,0]", ""),
               ErrorKind::format, "size in bits overflows 64 bits", "w"});
  c.push_back({"NegativeShape", one_tensor("F32", "[-1,4]", "[0,16]", std::string(16, 'x')),
               ErrorKind::format, "shape must hold non-negative integers, but it holds -1", "w"});
  c.push_back({"FractionalShape", one_tensor("F32", "[2.0]", "[0,8]", std::string(8, 'x')),
               ErrorKind::format, "it holds 2.0 (not a 64-bit integer)", "w"});
  c.push_back({"ShapeBeyondU64", one_tensor("U8", "[18446744073709551616]", "[0,0]", ""),
               ErrorKind::format, "it holds 18446744073709551616 (not a 64-bit integer)", "w"});
  c.push_back({"DimensionBeyondI64", one_tensor("U8", "[9223372036854775808,0]", "[0,0]", ""),
               ErrorKind::format, "dimension 9,223,372,036,854,775,808 is too large", "w"});
  c.push_back({"UnterminatedHugeString", safetensors_bytes("{\"" + std::string(100'000, 'n')),
               ErrorKind::format, "the header is not valid JSON", ""});
  c.push_back({"ShapeNotArray", one_tensor("U8", "4", "[0,4]", "abcd"), ErrorKind::format,
               "'shape' is a number, not an array of integers", "w"});
  c.push_back({"NestedShape", one_tensor("U8", "[[4]]", "[0,4]", "abcd"), ErrorKind::format,
               "shape must hold non-negative integers, but it holds an array", "w"});
  c.push_back(
      {"NonIntegerOffset", one_tensor("U8", "[1]", "[0,1.5]", "a"), ErrorKind::format,
       "data_offsets must hold non-negative integers, but it holds 1.5 (not a 64-bit integer)",
       "w"});
  c.push_back({"StringOffset", one_tensor("U8", "[1]", R"(["0",1])", "a"), ErrorKind::format,
               "data_offsets must hold non-negative integers, but it holds a string", "w"});
  c.push_back({"NegativeOffset", one_tensor("U8", "[1]", "[-1,0]", "a"), ErrorKind::format,
               "it holds -1 (a negative number)", "w"});
  c.push_back({"ThreeOffsets", one_tensor("U8", "[1]", "[0,1,2]", "a"), ErrorKind::format,
               "more than two data_offsets", "w"});
  c.push_back({"OneOffset", one_tensor("U8", "[1]", "[1]", "a"), ErrorKind::format,
               "tensor 'w' has 1 data_offsets; it needs exactly two", "w"});
  c.push_back({"EndBeforeBegin", one_tensor("U8", "[4]", "[8,4]", std::string(8, 'x')),
               ErrorKind::format, "data_offsets [8, 4]: END is before BEGIN", "w"});
  c.push_back({"SubByteNotWholeBytesF4", one_tensor("F4", "[3]", "[0,2]", "ab"), ErrorKind::format,
               "3 elements of 4 bits is 12 bits, not a whole number of bytes", "w"});
  c.push_back({"SubByteNotWholeBytesF6", one_tensor("F6_E2M3", "[5]", "[0,4]", "abcd"),
               ErrorKind::format, "30 bits, not a whole number of bytes", "w"});

  // ---- duplicates ----
  c.push_back(
      {"DuplicateTensorName",
       safetensors_bytes(R"({"a":)" + f32x1_a + R"(,"a":)" + f32x1_b + "}", std::string(8, 'x')),
       ErrorKind::format, "tensor 'a' appears twice in the header", "a"});
  c.push_back({"DuplicateFieldInEntry",
               safetensors_bytes(
                   R"({"w":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}})", "a"),
               ErrorKind::format, "tensor 'w' has field 'dtype' twice", "w"});
  c.push_back({"DuplicateMetadataKey",
               safetensors_bytes(R"({"__metadata__":{"format":"pt","format":"mlx"}})"),
               ErrorKind::format, "__metadata__ has key 'format' twice", ""});
  c.push_back({"DuplicateMetadataObject",
               safetensors_bytes(R"({"__metadata__":{},"__metadata__":{}})"), ErrorKind::format,
               "'__metadata__' appears twice", ""});

  // ---- metadata ----
  c.push_back({"NonStringMetadataValue", safetensors_bytes(R"({"__metadata__":{"n":1}})"),
               ErrorKind::format, "__metadata__ value for key 'n' is a number, not a string", ""});
  c.push_back({"NegativeMetadataValue", safetensors_bytes(R"({"__metadata__":{"n":-1}})"),
               ErrorKind::format, "value for key 'n' is a number, not a string", ""});
  c.push_back({"ObjectMetadataValue", safetensors_bytes(R"({"__metadata__":{"n":{"x":"y"}}})"),
               ErrorKind::format, "value for key 'n' is an object, not a string", ""});
  c.push_back({"MetadataNotObject", safetensors_bytes(R"({"__metadata__":"mlx"})"),
               ErrorKind::format, "__metadata__ is a string; it must be an object", ""});

  // ---- layout of the data buffer ----
  c.push_back(
      {"GapBetweenTensors",
       safetensors_bytes(R"({"a":)" + f32x1_a + R"(,"b":)" + entry("F32", "[1]", "[8,12]") + "}",
                         std::string(12, 'x')),
       ErrorKind::format, "4 unused bytes after tensor 'a'", "b"});
  c.push_back(
      {"GapAtStart",
       safetensors_bytes(R"({"a":)" + entry("F32", "[1]", "[4,8]") + "}", std::string(8, 'x')),
       ErrorKind::format, "4 unused bytes at the start of the data buffer", "a"});
  c.push_back({"OverlappingTensors",
               safetensors_bytes(R"({"a":)" + entry("F32", "[2]", "[0,8]") + R"(,"b":)" +
                                     entry("F32", "[2]", "[4,12]") + "}",
                                 std::string(12, 'x')),
               ErrorKind::format, "tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a'", "b"});
  c.push_back({"AliasedTensors",
               safetensors_bytes(R"({"a":)" + f32x1_a + R"(,"b":)" + f32x1_a + "}", "abcd"),
               ErrorKind::format, "overlaps tensor 'a'", "b"});
  c.push_back({"TrailingBytes", safetensors_bytes(R"({"a":)" + f32x1_a + "}", std::string(6, 'x')),
               ErrorKind::format, "2 unexpected bytes after the end of the last tensor, 'a'", ""});
  c.push_back({"TrailingBytesWithoutTensors", safetensors_bytes("{}", "xx"), ErrorKind::format,
               "2 unexpected bytes after the header, which lists no tensors", ""});
  {
    const std::string header =
        R"({"a":)" + f32x1_a + R"(,"b":)" + entry("F32", "[4]", "[4,20]") + "}";
    const std::string bytes = safetensors_bytes(header, std::string(12, 'x'));
    c.push_back({"TensorPastEndOfFile", bytes, ErrorKind::format,
                 "tensor 'b' ends at byte " + std::to_string(8 + header.size() + 20) +
                     " but the file has " + std::to_string(bytes.size()) +
                     " bytes (truncated download?)",
                 "b"});
  }
  return c;
}

// Print the case name, not 136 bytes of struct.
void PrintTo(const CorruptCase& c, std::ostream* os) {
  *os << c.name;
}

class ReaderCatalogue : public ::testing::TestWithParam<CorruptCase> {};

void expect_matches(const Error& e, const CorruptCase& c, const std::string& file) {
  EXPECT_EQ(error_kind_name(e.kind()), error_kind_name(c.kind)) << e.what();
  EXPECT_NE(e.message().find(c.message), std::string::npos)
      << "message: " << e.message() << "\nexpected to contain: " << c.message;
  // Hostile input must not blow up the message (names and tokens are cut).
  EXPECT_LT(e.message().size(), 1000u) << e.message().substr(0, 200);
  EXPECT_EQ(e.context().file, file);
  EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
  EXPECT_EQ(e.context().tensor, c.tensor);
  if (!c.tensor.empty()) {
    EXPECT_NE(e.message().find("'" + c.tensor + "'"), std::string::npos) << e.message();
  }
}

TEST_P(ReaderCatalogue, ParseHeaderRejectsWithItsOwnError) {
  const CorruptCase& c = GetParam();
  try {
    SafetensorsFile::parse_header(c.bytes, c.bytes.size(), "case.safetensors");
    FAIL() << "accepted a corrupt file";
  } catch (const Error& e) {
    expect_matches(e, c, "case.safetensors");
  }
}

TEST_P(ReaderCatalogue, OpenRejectsWithItsOwnError) {
  const CorruptCase& c = GetParam();
  testing::TempDir dir;
  const auto path = dir / (c.name + ".safetensors");
  testing::write_text(path, c.bytes);
  try {
    SafetensorsFile::open(path);
    FAIL() << "accepted a corrupt file";
  } catch (const Error& e) {
    expect_matches(e, c, path.string());
  }
}

INSTANTIATE_TEST_SUITE_P(Corrupt, ReaderCatalogue, ::testing::ValuesIn(catalogue()),
                         [](const ::testing::TestParamInfo<CorruptCase>& param) {
                           return param.param.name;
                         });

}  // namespace
}  // namespace llmerge
