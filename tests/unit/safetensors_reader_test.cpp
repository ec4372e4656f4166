// Valid safetensors files the reader must accept, and the behaviour of read().
// Hostile files are in tests/corrupt/reader_catalogue_test.cpp.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "safetensors_bytes.h"
#include "test_util.h"

namespace llmerge {
namespace {

using testing::safetensors_bytes;

std::string entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}";
}

std::string counting_bytes(std::size_t n) {
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    out[i] = static_cast<char>(i * 7 + 1);
  return out;
}

SafetensorsFile parse(const std::string& bytes) {
  return SafetensorsFile::parse_header(bytes, bytes.size(), "t.safetensors");
}

TEST(SafetensorsReader, AcceptsUnpaddedHeader) {
  const std::string header = R"({"w":)" + entry("BF16", "[2,3]", "[0,12]") + "}";
  const auto f = parse(safetensors_bytes(header, counting_bytes(12)));
  ASSERT_EQ(f.tensors().size(), 1u);
  const TensorInfo& t = f.tensors()[0];
  EXPECT_EQ(t.name, "w");
  EXPECT_EQ(t.dtype, DType::BF16);
  EXPECT_EQ(t.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 12u);
  EXPECT_EQ(f.header_size(), header.size());
  EXPECT_EQ(f.data_offset(), 8 + header.size());
  EXPECT_EQ(f.file_size(), 8 + header.size() + 12);
  EXPECT_TRUE(f.metadata().empty());
}

TEST(SafetensorsReader, AcceptsHeaderPaddedWithSpacesOnBothSides) {
  const std::string header =
      std::string("   ") + R"({"w":)" + entry("U8", "[4]", "[0,4]") + "}" + "     ";
  const auto f = parse(safetensors_bytes(header, "abcd"));
  ASSERT_EQ(f.tensors().size(), 1u);
  EXPECT_EQ(f.tensors()[0].nbytes(), 4u);
  EXPECT_EQ(f.data_offset(), 8 + header.size());
}

TEST(SafetensorsReader, ReadsMlxAndPtFormatMetadata) {
  for (const std::string format : {"mlx", "pt"}) {
    const auto f = parse(safetensors_bytes(R"({"__metadata__":{"format":")" + format +
                                               R"(","note":"a \"b\""},"w":)" +
                                               entry("U8", "[1]", "[0,1]") + "}",
                                           "a"));
    EXPECT_EQ(f.metadata().size(), 2u);
    EXPECT_EQ(f.metadata().at("format"), format);
    EXPECT_EQ(f.metadata().at("note"), "a \"b\"");
    // __metadata__ is not a tensor.
    ASSERT_EQ(f.tensors().size(), 1u);
    EXPECT_EQ(f.find("__metadata__"), nullptr);
  }
}

// mx.save_safetensors without metadata (mlx-lm's LoRA adapters) writes
// null; the reference parser reads it as no metadata.
TEST(SafetensorsReader, NullMetadataIsNoMetadataAsMlxWritesIt) {
  const auto f = parse(
      safetensors_bytes(R"({"__metadata__":null,"w":)" + entry("U8", "[1]", "[0,1]") + "}", "a"));
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_EQ(f.tensors().size(), 1u);
}

TEST(SafetensorsReader, AcceptsHeaderWithOnlyMetadataAndNoData) {
  const auto f = parse(safetensors_bytes(R"({"__metadata__":{}})"));
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_TRUE(f.metadata().empty());
}

TEST(SafetensorsReader, AcceptsZeroDimScalar) {
  const auto f = parse(safetensors_bytes(R"({"s":)" + entry("F32", "[]", "[0,4]") + "}", "abcd"));
  const TensorInfo* t = f.find("s");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->shape.empty());
  EXPECT_EQ(t->numel(), 1);
  EXPECT_EQ(t->nbytes(), 4u);
}

TEST(SafetensorsReader, AcceptsEmptyTensorBetweenOthers) {
  const std::string header = R"({"a":)" + entry("F32", "[1]", "[0,4]") + R"(,"b":)" +
                             entry("F32", "[1]", "[4,8]") + R"(,"e":)" +
                             entry("BF16", "[0,4]", "[4,4]") + "}";
  const auto f = parse(safetensors_bytes(header, counting_bytes(8)));
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[1].name, "e");
  EXPECT_EQ(f.tensors()[1].numel(), 0);
  EXPECT_EQ(f.tensors()[1].nbytes(), 0u);
  EXPECT_EQ(f.tensors()[2].name, "b");
}

// MLX writes the header keys sorted but the data in hash-map order.
TEST(SafetensorsReader, SortsTensorsByOffsetNotHeaderOrder) {
  const std::string header = R"({"a":)" + entry("U8", "[2]", "[6,8]") + R"(,"m":)" +
                             entry("U8", "[4]", "[2,6]") + R"(,"z":)" +
                             entry("U8", "[2]", "[0,2]") + "}";
  const auto f = parse(safetensors_bytes(header, counting_bytes(8)));
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[0].name, "z");
  EXPECT_EQ(f.tensors()[1].name, "m");
  EXPECT_EQ(f.tensors()[2].name, "a");
  ASSERT_NE(f.find("m"), nullptr);
  EXPECT_EQ(f.find("m")->begin, 2u);
  EXPECT_EQ(f.find("a")->end, 8u);
  EXPECT_EQ(f.find("missing"), nullptr);
  EXPECT_EQ(f.find("m "), nullptr);
}

TEST(SafetensorsReader, RecognisesEveryDtype) {
  for (int i = 0; i <= static_cast<int>(DType::U64); ++i) {
    const auto dt = static_cast<DType>(i);
    // 8 elements is a whole number of bytes for every dtype, 4- and 6-bit included.
    const std::uint64_t bytes = 8 * static_cast<std::uint64_t>(dtype_bits(dt)) / 8;
    const std::string header =
        R"({"t":)" +
        entry(std::string(dtype_name(dt)), "[8]", "[0," + std::to_string(bytes) + "]") + "}";
    const auto f = parse(safetensors_bytes(header, counting_bytes(bytes)));
    ASSERT_EQ(f.tensors().size(), 1u) << dtype_name(dt);
    EXPECT_EQ(f.tensors()[0].dtype, dt) << dtype_name(dt);
    EXPECT_EQ(f.tensors()[0].nbytes(), bytes) << dtype_name(dt);
  }
}

TEST(SafetensorsReader, ReportsTruncationWithThousandsSeparators) {
  // 2,359,296,000 F32 = 9,437,184,000 bytes in a file of 8,000,000,000 bytes.
  std::string header = R"({"model.layers.7.mlp.up_proj.weight":)" +
                       entry("F32", "[2359296000]", "[0,9437184000]") + "}";
  header.resize(992, ' ');  // the data buffer starts at byte 1,000
  const std::string bytes = safetensors_bytes(header);
  try {
    SafetensorsFile::parse_header(bytes, 8'000'000'000, "model-00002-of-00004.safetensors");
    FAIL() << "accepted a tensor past the end of the file";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::format);
    EXPECT_EQ(e.context().tensor, "model.layers.7.mlp.up_proj.weight");
    EXPECT_STREQ(e.what(),
                 "model-00002-of-00004.safetensors: tensor 'model.layers.7.mlp.up_proj.weight' "
                 "ends at byte 9,437,185,000 but the file has 8,000,000,000 bytes (truncated "
                 "download?)");
  }
}

TEST(SafetensorsReader, EscapesControlCharactersInNames) {
  const std::string bytes =
      safetensors_bytes(R"({"a\u001b[31m":)" + entry("F99", "[1]", "[0,1]") + "}", "x");
  try {
    parse(bytes);
    FAIL() << "accepted an unknown dtype";
  } catch (const Error& e) {
    EXPECT_EQ(e.context().tensor, "a\x1b[31m");
    EXPECT_NE(e.message().find("tensor 'a\\x1b[31m'"), std::string::npos) << e.message();
    EXPECT_EQ(e.message().find('\x1b'), std::string::npos);
  }
}

TEST(SafetensorsReader, ParseHeaderRejectsPrefixShorterThanHeaderAsInternal) {
  const std::string bytes = safetensors_bytes(R"({"w":)" + entry("U8", "[1]", "[0,1]") + "}", "a");
  try {
    SafetensorsFile::parse_header(std::string_view(bytes).substr(0, 12), bytes.size(), "p");
    FAIL() << "parsed a header it did not have";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::internal);
  }
}

class SafetensorsReaderFile : public ::testing::Test {
 protected:
  // Odd header length: the data section, and every tensor in it, is unaligned.
  void SetUp() override {
    header_ = R"({"__metadata__":{"format":"mlx"},"a":)" + entry("U8", "[3]", "[0,3]") +
              R"(,"b":)" + entry("F64", "[2]", "[3,19]") + R"(,"c":)" +
              entry("I16", "[2,4]", "[19,35]") + "}";
    if (header_.size() % 2 == 0) header_ += ' ';
    data_ = counting_bytes(35);
    const double values[2] = {1.5, -2.25};
    std::memcpy(data_.data() + 3, values, sizeof values);
    path_ = dir_ / "model.safetensors";
    testing::write_text(path_, safetensors_bytes(header_, data_));
  }

  testing::TempDir dir_;
  std::filesystem::path path_;
  std::string header_;
  std::string data_;
};

TEST_F(SafetensorsReaderFile, OpenMatchesParseHeader) {
  const auto f = SafetensorsFile::open(path_);
  EXPECT_EQ(f.path(), path_);
  EXPECT_EQ(f.header_size() % 2, 1u);
  EXPECT_EQ(f.file_size(), 8 + header_.size() + 35);
  EXPECT_EQ(f.metadata().at("format"), "mlx");
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[2].name, "c");
  EXPECT_EQ(f.tensors()[2].shape, (std::vector<std::int64_t>{2, 4}));
}

TEST_F(SafetensorsReaderFile, ReadsUnalignedTensorData) {
  const auto f = SafetensorsFile::open(path_);
  double values[2] = {0, 0};
  f.read(*f.find("b"), 0, values, sizeof values);
  EXPECT_EQ(values[0], 1.5);
  EXPECT_EQ(values[1], -2.25);
}

TEST_F(SafetensorsReaderFile, ReadReturnsBytesAtAnOffsetInsideTheTensor) {
  const auto f = SafetensorsFile::open(path_);
  std::string got(7, '\0');
  f.read(*f.find("c"), 5, got.data(), got.size());
  EXPECT_EQ(got, data_.substr(19 + 5, 7));
  // Zero-length reads at the very end are fine.
  f.read(*f.find("c"), 16, nullptr, 0);
}

TEST_F(SafetensorsReaderFile, ReadPastTheTensorIsInternal) {
  const auto f = SafetensorsFile::open(path_);
  std::string got(8, '\0');
  try {
    f.read(*f.find("a"), 1, got.data(), 3);
    FAIL() << "read past the end of tensor 'a'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::internal);
    EXPECT_EQ(e.context().tensor, "a");
  }
  // offset + len wraps around 2^64.
  EXPECT_THROW(f.read(*f.find("a"), 2, got.data(), ~std::uint64_t{0}), Error);
}

TEST_F(SafetensorsReaderFile, ReadOnAParsedHeaderIsInternal) {
  const std::string bytes = testing::read_text(path_);
  const auto f = SafetensorsFile::parse_header(bytes, bytes.size(), "p");
  char c = 0;
  try {
    f.read(*f.find("a"), 0, &c, 1);
    FAIL() << "read without a file";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::internal);
  }
}

TEST_F(SafetensorsReaderFile, ReadThrowsIoWhenTheFileShrinksAfterOpen) {
  const auto f = SafetensorsFile::open(path_);
  std::filesystem::resize_file(path_, f.data_offset() + 10);
  std::string got(16, '\0');
  try {
    f.read(*f.find("c"), 0, got.data(), 16);
    FAIL() << "read past the end of a truncated file";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::io);
    EXPECT_EQ(e.context().tensor, "c");
    EXPECT_NE(e.message().find("tensor 'c'"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("truncated or replaced"), std::string::npos) << e.message();
    EXPECT_NE(std::string(e.what()).find(path_.string()), std::string::npos);
  }
  // Bytes still in the file read fine.
  f.read(*f.find("a"), 0, got.data(), 3);
  EXPECT_EQ(got.substr(0, 3), data_.substr(0, 3));
}

TEST_F(SafetensorsReaderFile, CopiesKeepTheFileOpen) {
  std::string got(16, '\0');
  {
    const auto original = SafetensorsFile::open(path_);
    const SafetensorsFile copy = original;
    std::filesystem::remove(path_);  // the open descriptor still reads it
    copy.read(*copy.find("c"), 0, got.data(), 16);
  }
  EXPECT_EQ(got, data_.substr(19, 16));
}

TEST_F(SafetensorsReaderFile, ConcurrentReadsEachGetTheirOwnBytes) {
  const auto f = SafetensorsFile::open(path_);
  std::array<std::string, 3> got;
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      const TensorInfo& t = f.tensors()[i];
      std::string buf(t.nbytes(), '\0');
      for (int rep = 0; rep < 200; ++rep) {
        f.read(t, 0, buf.data(), buf.size());
        if (buf != data_.substr(t.begin, t.nbytes())) return;
      }
      got[i] = buf;
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(got[0], data_.substr(0, 3));
  EXPECT_EQ(got[1], data_.substr(3, 16));
  EXPECT_EQ(got[2], data_.substr(19, 16));
}

TEST(SafetensorsReader, OpenReportsAMissingFileAsIo) {
  testing::TempDir dir;
  const auto path = dir / "absent.safetensors";
  try {
    SafetensorsFile::open(path);
    FAIL() << "opened a missing file";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::io);
    EXPECT_EQ(e.context().file, path.string());
    EXPECT_NE(e.message().find("No such file"), std::string::npos) << e.message();
  }
}

TEST(SafetensorsReader, OpenReportsADirectoryAsIo) {
  testing::TempDir dir;
  try {
    SafetensorsFile::open(dir.path());
    FAIL() << "opened a directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::io);
    EXPECT_NE(e.message().find("is a directory"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace llmerge
