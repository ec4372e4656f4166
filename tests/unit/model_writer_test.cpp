#include "output/model_writer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "test_util.h"

namespace llmerge {
namespace {

namespace fs = std::filesystem;
using testing::read_text;
using testing::TempDir;
using testing::write_text;

std::vector<std::uint8_t> pattern(std::uint64_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> out(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    out[i] = static_cast<std::uint8_t>(i * 31 + seed * 7 + (i >> 8));
  }
  return out;
}

// Writes every tensor whole, in order, with a pattern seeded by its index.
void write_all(ModelWriter& writer) {
  for (std::size_t t = 0; t < writer.tensors().size(); ++t) {
    const auto bytes = pattern(writer.tensors()[t].nbytes(), static_cast<std::uint8_t>(t));
    writer.write(t, 0, bytes.data(), bytes.size());
  }
}

// A deliberately minimal safetensors parser, independent of the project's reader.
struct ParsedShard {
  std::uint64_t header_len = 0;
  std::string header_text;
  nlohmann::ordered_json header;
  std::string file;
  std::string data(const std::string& name) const {
    const auto& offsets = header.at(name).at("data_offsets");
    const std::uint64_t b = offsets[0], e = offsets[1];
    return file.substr(8 + header_len + b, e - b);
  }
};

ParsedShard parse_shard(const fs::path& path) {
  ParsedShard p;
  p.file = read_text(path);
  EXPECT_GE(p.file.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    p.header_len |= std::uint64_t{static_cast<std::uint8_t>(p.file[i])} << (8 * i);
  }
  p.header_text = p.file.substr(8, p.header_len);
  p.header = nlohmann::ordered_json::parse(p.header_text);
  return p;
}

std::string as_string(const std::vector<std::uint8_t>& v) {
  return std::string(v.begin(), v.end());
}

std::vector<std::string> dir_listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<TensorSpec> mixed_tensors() {
  return {
      {"embed.weight", DType::BF16, {3, 5}},
      {"norm.weight", DType::F32, {7}},
      {"mask", DType::BOOL, {3}},
      {"ids", DType::U8, {5}},
      {"half", DType::F16, {1, 3}},
      {"double", DType::F64, {2, 2}},
      {"positions", DType::I64, {3}},
      {"scalar", DType::F32, {}},
      {"fp8", DType::F8_E4M3, {9}},
      {"packed", DType::F4, {6}},
      {"empty", DType::F32, {0, 4}},
  };
}

template <typename F>
ErrorKind kind_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.kind();
  }
  ADD_FAILURE() << "expected an llmerge::Error";
  return ErrorKind::internal;
}

TEST(ModelWriter, TensorNbytesHandlesScalarsEmptyAndSubByteTypes) {
  EXPECT_EQ((TensorSpec{"a", DType::BF16, {3, 5}}.nbytes()), 30u);
  EXPECT_EQ((TensorSpec{"a", DType::F32, {}}.nbytes()), 4u);
  EXPECT_EQ((TensorSpec{"a", DType::F64, {0, 9}}.nbytes()), 0u);
  EXPECT_EQ((TensorSpec{"a", DType::F4, {6}}.nbytes()), 3u);
  EXPECT_EQ((TensorSpec{"a", DType::F6_E2M3, {4}}.nbytes()), 3u);
  EXPECT_EQ(kind_of([] { (void)TensorSpec{"a", DType::F4, {3}}.nbytes(); }), ErrorKind::internal);
  EXPECT_EQ(kind_of([] { (void)TensorSpec{"a", DType::F32, {-1}}.nbytes(); }), ErrorKind::internal);
  EXPECT_EQ(
      kind_of([] {
        (void)TensorSpec{"a", DType::F64, {std::int64_t{1} << 40, std::int64_t{1} << 30}}.nbytes();
      }),
      ErrorKind::internal);
}

TEST(ModelWriter, RoundTripsEveryDtypeWithHeaderDataAndTiledOffsets) {
  TempDir tmp;
  const auto out = tmp / "out";
  const auto specs = mixed_tensors();
  {
    ModelWriter writer(out, specs);
    write_all(writer);
    writer.commit();
  }
  EXPECT_EQ(dir_listing(out), std::vector<std::string>{"model.safetensors"});
  const ParsedShard shard = parse_shard(out / "model.safetensors");

  // __metadata__ first, then tensors by element size (largest first), stable within a size.
  std::vector<std::string> keys;
  for (const auto& [key, value] : shard.header.items())
    keys.push_back(key);
  const std::vector<std::string> expected_keys = {
      "__metadata__", "double", "positions", "norm.weight", "scalar", "empty",
      "embed.weight", "half",   "mask",      "ids",         "fp8",    "packed"};
  EXPECT_EQ(keys, expected_keys);
  EXPECT_EQ(shard.header["__metadata__"], nlohmann::ordered_json({{"format", "pt"}}));

  std::uint64_t expected_begin = 0;
  for (std::size_t k = 1; k < keys.size(); ++k) {
    const auto it = std::find_if(specs.begin(), specs.end(),
                                 [&](const TensorSpec& s) { return s.name == keys[k]; });
    ASSERT_NE(it, specs.end());
    const auto t = static_cast<std::size_t>(it - specs.begin());
    const auto& entry = shard.header[keys[k]];
    EXPECT_EQ(entry["dtype"].get<std::string>(), std::string(dtype_name(it->dtype))) << keys[k];
    EXPECT_EQ(entry["shape"].get<std::vector<std::int64_t>>(), it->shape) << keys[k];
    EXPECT_EQ(entry["data_offsets"][0].get<std::uint64_t>(), expected_begin) << keys[k];
    expected_begin += it->nbytes();
    EXPECT_EQ(entry["data_offsets"][1].get<std::uint64_t>(), expected_begin) << keys[k];
    EXPECT_EQ(shard.data(keys[k]), as_string(pattern(it->nbytes(), static_cast<std::uint8_t>(t))))
        << keys[k];
  }
  EXPECT_EQ(shard.file.size(), 8 + shard.header_len + expected_begin);
}

TEST(ModelWriter, HeaderTextIsCompactDeterministicAndPaddedWithSpaces) {
  const auto plan = plan_shards({{"b", DType::F16, {3}}, {"a", DType::F32, {2}}}, 1000);
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F16","shape":[3],"data_offsets":[8,14]}})";
  std::string padded = json + std::string((8 - json.size() % 8) % 8, ' ');
  ASSERT_EQ(plan.headers.size(), 1u);
  ASSERT_EQ(plan.headers[0].size(), 8 + padded.size());
  EXPECT_EQ(plan.headers[0].substr(8), padded);
  EXPECT_EQ(static_cast<std::uint8_t>(plan.headers[0][0]), padded.size() & 0xff);
  EXPECT_EQ(plan.headers[0].substr(1, 7), std::string(7, '\0'));
  EXPECT_EQ(plan.file_sizes[0], 8 + padded.size() + 14);
  EXPECT_EQ(plan.entries[1].file_offset, 8 + padded.size());
  EXPECT_EQ(plan.entries[0].file_offset, 8 + padded.size() + 8);
  EXPECT_EQ(plan.total_size, 14u);
}

TEST(ModelWriter, EscapesTensorNamesInTheHeader) {
  TempDir tmp;
  const std::vector<TensorSpec> specs = {{"we\"ird\\name\n\xc3\xa9", DType::U8, {2}}};
  {
    ModelWriter writer(tmp / "out", specs);
    write_all(writer);
    writer.commit();
  }
  const ParsedShard shard = parse_shard(tmp / "out" / "model.safetensors");
  EXPECT_NE(shard.header_text.find(R"("we\"ird\\name\n)"), std::string::npos);
  EXPECT_EQ(shard.data(specs[0].name), as_string(pattern(2, 0)));
}

TEST(ModelWriter, HeaderIsEightByteAlignedAndEveryTensorIsNaturallyAligned) {
  // Name lengths 1..9 move the header length through every residue mod 8.
  for (std::size_t len = 1; len <= 9; ++len) {
    std::vector<TensorSpec> specs = {{std::string(len, 'u'), DType::U8, {3}},
                                     {"h", DType::BF16, {3}},
                                     {"f", DType::F32, {1}},
                                     {"d", DType::F64, {1}},
                                     {"c", DType::C64, {1}},
                                     {"i", DType::I32, {3}}};
    const auto plan = plan_shards(specs, k_shard_size_default);
    const std::string& header = plan.headers[0];
    EXPECT_EQ(header.size() % 8, 0u) << len;
    const std::size_t last = header.find_last_not_of(' ');
    EXPECT_EQ(header[last], '}') << len;
    EXPECT_LT(header.size() - 1 - last, 8u) << "padding is at most 7 spaces";
    for (std::size_t t = 0; t < specs.size(); ++t) {
      const auto align = static_cast<std::uint64_t>(dtype_bits(specs[t].dtype) / 8);
      EXPECT_EQ(plan.entries[t].file_offset % align, 0u) << specs[t].name << " len " << len;
    }
  }
}

TEST(ModelWriter, OutputIsByteIdenticalForAnyChunkOrderAndThreadCount) {
  TempDir tmp;
  std::vector<TensorSpec> specs;
  for (int i = 0; i < 6; ++i) {
    specs.push_back(
        {"layer." + std::to_string(i) + ".w", i % 2 ? DType::F32 : DType::BF16, {17, 13 + i}});
  }
  ModelWriterOptions options;
  options.shard_size_max = 2000;  // several shards, so the index is compared too

  {
    ModelWriter writer(tmp / "a", specs, options);
    write_all(writer);
    writer.commit();
  }
  {
    ModelWriter writer(tmp / "b", specs, options);
    struct Chunk {
      std::size_t tensor;
      std::uint64_t offset, len;
    };
    std::vector<Chunk> chunks;
    for (std::size_t t = 0; t < specs.size(); ++t) {
      for (std::uint64_t o = 0; o < specs[t].nbytes(); o += 37) {
        chunks.push_back({t, o, std::min<std::uint64_t>(37, specs[t].nbytes() - o)});
      }
    }
    std::reverse(chunks.begin(), chunks.end());
    std::vector<std::thread> threads;
    for (std::size_t th = 0; th < 4; ++th) {
      threads.emplace_back([&, th] {
        for (std::size_t c = th; c < chunks.size(); c += 4) {
          const auto bytes = pattern(specs[chunks[c].tensor].nbytes(),
                                     static_cast<std::uint8_t>(chunks[c].tensor));
          writer.write(chunks[c].tensor, chunks[c].offset, bytes.data() + chunks[c].offset,
                       chunks[c].len);
        }
      });
    }
    for (auto& t : threads)
      t.join();
    writer.commit();
  }
  const auto names = dir_listing(tmp / "a");
  EXPECT_GT(names.size(), 2u);
  ASSERT_EQ(names, dir_listing(tmp / "b"));
  for (const auto& name : names) {
    EXPECT_EQ(read_text(tmp / "a" / name), read_text(tmp / "b" / name)) << name;
  }
}

TEST(ModelWriter, ConcurrentWritesToDistinctRangesOfOneTensorAllLand) {
  TempDir tmp;
  const std::vector<TensorSpec> specs = {{"big", DType::F32, {1 << 18}}};
  const auto bytes = pattern(specs[0].nbytes(), 3);
  {
    ModelWriter writer(tmp / "out", specs);
    constexpr std::uint64_t k_chunk = 4096 + 12;
    std::vector<std::thread> threads;
    for (std::uint64_t th = 0; th < 8; ++th) {
      threads.emplace_back([&, th] {
        for (std::uint64_t o = th * k_chunk; o < bytes.size(); o += 8 * k_chunk) {
          writer.write(0, o, bytes.data() + o, std::min<std::uint64_t>(k_chunk, bytes.size() - o));
        }
      });
    }
    for (auto& t : threads)
      t.join();
    writer.commit();
  }
  EXPECT_EQ(parse_shard(tmp / "out" / "model.safetensors").data("big"), as_string(bytes));
}

std::vector<std::size_t> shard_of_each(const ShardPlan& plan) {
  std::vector<std::size_t> out;
  for (const auto& e : plan.entries)
    out.push_back(e.shard);
  return out;
}

TEST(ModelWriter, TensorLargerThanTheLimitGetsAShardOfItsOwn) {
  // U8 tensors: bytes == elements.
  const auto plan = plan_shards({{"a", DType::U8, {40}},
                                 {"big", DType::U8, {200}},
                                 {"c", DType::U8, {40}},
                                 {"d", DType::U8, {50}}},
                                100);
  EXPECT_EQ(shard_of_each(plan), (std::vector<std::size_t>{0, 1, 2, 2}));
  EXPECT_EQ(plan.files.size(), 3u);
  const auto first = plan_shards({{"big", DType::U8, {200}}, {"c", DType::U8, {40}}}, 100);
  EXPECT_EQ(shard_of_each(first), (std::vector<std::size_t>{0, 1}));
}

TEST(ModelWriter, ExactFitStaysInTheSameShard) {
  EXPECT_EQ(shard_of_each(plan_shards({{"a", DType::U8, {60}}, {"b", DType::U8, {40}}}, 100)),
            (std::vector<std::size_t>{0, 0}));
  EXPECT_EQ(shard_of_each(plan_shards({{"a", DType::U8, {60}}, {"b", DType::U8, {41}}}, 100)),
            (std::vector<std::size_t>{0, 1}));
  // The limit counts tensor bytes only, not headers.
  EXPECT_EQ(shard_of_each(plan_shards({{"a", DType::F32, {25}}}, 100)),
            (std::vector<std::size_t>{0}));
}

TEST(ModelWriter, ThreeShardsGetNumberedFilesAndAnIndexWrittenLast) {
  TempDir tmp;
  const std::vector<TensorSpec> specs = {{"z.first", DType::F32, {20}},    // 80 bytes
                                         {"a.second", DType::BF16, {30}},  // 60
                                         {"m.third", DType::F32, {10}},    // 40 -> fits with 60
                                         {"b.fourth", DType::U8, {1}}};    // 1 -> new shard
  ModelWriterOptions options;
  options.shard_size_max = 100;
  {
    ModelWriter writer(tmp / "out", specs, options);
    EXPECT_EQ(writer.shard_plan().files,
              (std::vector<std::string>{"model-00001-of-00003.safetensors",
                                        "model-00002-of-00003.safetensors",
                                        "model-00003-of-00003.safetensors"}));
    write_all(writer);
    writer.commit();
  }
  EXPECT_EQ(dir_listing(tmp / "out"),
            (std::vector<std::string>{
                "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                "model-00003-of-00003.safetensors", "model.safetensors.index.json"}));
  const std::string expected_index = R"({
  "metadata": {
    "total_size": 181
  },
  "weight_map": {
    "a.second": "model-00002-of-00003.safetensors",
    "b.fourth": "model-00003-of-00003.safetensors",
    "m.third": "model-00002-of-00003.safetensors",
    "z.first": "model-00001-of-00003.safetensors"
  }
}
)";
  EXPECT_EQ(read_text(tmp / "out" / "model.safetensors.index.json"), expected_index);
  const ParsedShard second = parse_shard(tmp / "out" / "model-00002-of-00003.safetensors");
  EXPECT_EQ(second.header.size(), 3u);  // metadata + 2 tensors
  EXPECT_EQ(second.header.begin().key(), "__metadata__");
  EXPECT_EQ(std::next(second.header.begin()).key(), "m.third");  // F32 before BF16
  EXPECT_EQ(second.data("a.second"), as_string(pattern(60, 1)));
  EXPECT_EQ(second.data("m.third"), as_string(pattern(40, 2)));
}

TEST(ModelWriter, SingleShardHasNoIndexAndKeepsSideFiles) {
  TempDir tmp;
  const fs::path source = tmp / "tokenizer.json";
  write_text(source, R"({"vocab":{}})");
  {
    ModelWriter writer(tmp / "out", {{"w", DType::F32, {4}}});
    write_all(writer);
    writer.write_file("config.json", "{\"a\": 1}\n");
    writer.write_file("sub/README.md", "hello");
    writer.copy_file(source, "tokenizer.json");
    writer.commit();
  }
  EXPECT_EQ(dir_listing(tmp / "out"), (std::vector<std::string>{"config.json", "model.safetensors",
                                                                "sub", "tokenizer.json"}));
  EXPECT_EQ(read_text(tmp / "out" / "config.json"), "{\"a\": 1}\n");
  EXPECT_EQ(read_text(tmp / "out" / "sub" / "README.md"), "hello");
  EXPECT_EQ(read_text(tmp / "out" / "tokenizer.json"), R"({"vocab":{}})");
}

TEST(ModelWriter, SideFileNamesEscapingTheFolderOrShadowingShardsAreRejected) {
  TempDir tmp;
  ModelWriter writer(tmp / "out", {{"w", DType::F32, {4}}});
  for (const char* bad :
       {"../evil", "/etc/passwd", "a/../../b", "", "model.safetensors", "dir/", "./x"}) {
    EXPECT_EQ(kind_of([&] { writer.write_file(bad, "x"); }), ErrorKind::internal) << bad;
  }
  EXPECT_EQ(kind_of([&] { writer.copy_file(tmp / "missing", "x.json"); }), ErrorKind::io);
  EXPECT_FALSE(fs::exists(tmp / "evil"));
}

TEST(ModelWriter, ParseShardSizeAcceptsDocumentedForms) {
  const std::pair<const char*, std::uint64_t> cases[] = {
      {"5B", 5'000'000'000},
      {"5b", 5'000'000'000},
      {"5GB", 5'000'000'000},
      {"5gb", 5'000'000'000},
      {"1.5GB", 1'500'000'000},
      {"500MB", 500'000'000},
      {"500M", 500'000'000},
      {"100KB", 100'000},
      {"100k", 100'000},
      {"2GiB", 2ull << 30},
      {"512MiB", 512ull << 20},
      {"64kib", 64ull << 10},
      {"1.5KiB", 1536},
      {"2TB", 2'000'000'000'000},
      {"1000000", 1'000'000},
      {"1", 1},
      {" 3 GB ", 3'000'000'000},
      {"0.5KB", 500},
      {"1.0000000GB", 1'000'000'000},
      {"18446744073709551615", 18446744073709551615ull},
  };
  for (const auto& [text, bytes] : cases)
    EXPECT_EQ(parse_shard_size(text), bytes) << text;
}

TEST(ModelWriter, ParseShardSizeRejectsZeroNegativeGarbageAndOverflow) {
  for (const char* bad : {"",
                          "0",
                          "0GB",
                          "0.0001",
                          "-5GB",
                          "+5GB",
                          "GB",
                          "5XB",
                          "5 G B",
                          "5GBs",
                          "1e9",
                          ".5GB",
                          "5.GB",
                          "5..5GB",
                          "18446744073709551616",
                          "99999999999TB",
                          "20000000000B",
                          "1.1234567GB",
                          "5 GiB extra",
                          "0x10"}) {
    try {
      parse_shard_size(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::config) << bad;
      EXPECT_NE(e.message().find("GiB"), std::string::npos) << "message lists accepted forms";
    }
  }
}

TEST(ModelWriter, DestroyingWithoutCommitRemovesTempAndLeavesTargetUntouched) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  write_text(out / "model.safetensors", "precious");  // a previous output
  ModelWriterOptions options;
  options.force = true;
  fs::path temp_dir;
  const auto failing_merge = [&] {
    ModelWriter writer(out, {{"a", DType::F32, {8}}, {"b", DType::F32, {8}}}, options);
    temp_dir = writer.temp_dir();
    EXPECT_TRUE(fs::is_directory(temp_dir));
    const auto bytes = pattern(32, 0);
    writer.write(0, 0, bytes.data(), 16);
    throw std::runtime_error("kernel failed mid-write");
  };
  EXPECT_THROW(failing_merge(), std::runtime_error);
  EXPECT_FALSE(temp_dir.empty());
  EXPECT_FALSE(fs::exists(temp_dir));
  EXPECT_EQ(dir_listing(out), std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(read_text(out / "model.safetensors"), "precious");
  EXPECT_EQ(dir_listing(tmp.path()), std::vector<std::string>{"out"});
}

TEST(ModelWriter, TempDirIsASiblingAndAStaleOneIsReplaced) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  const fs::path stale = tmp / ("out.llmerge-tmp-" + std::to_string(getpid()));
  write_text(stale / "junk.bin", "junk");
  ModelWriter writer(out / "", {{"a", DType::U8, {1}}});
  EXPECT_EQ(writer.temp_dir(), stale);
  EXPECT_EQ(dir_listing(stale), std::vector<std::string>{"model.safetensors"});
}

TEST(ModelWriter, NonEmptyTargetIsRefusedWithoutForce) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  write_text(out / "old.txt", "old");
  try {
    ModelWriter writer(out, {{"a", DType::U8, {1}}});
    ADD_FAILURE() << "non-empty output accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::io);
    EXPECT_NE(e.message().find("exists and is not empty; use --force"), std::string::npos);
  }
  EXPECT_EQ(dir_listing(tmp.path()), std::vector<std::string>{"out"});
  EXPECT_EQ(read_text(out / "old.txt"), "old");
}

TEST(ModelWriter, NonEmptyTargetIsReplacedWithForce) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  write_text(out / "model-00001-of-00002.safetensors", "old");  // a previous output
  write_text(out / "model-00002-of-00002.safetensors", "old");
  write_text(out / "model.safetensors.index.json", "{}");
  write_text(out / "README.md", "old");
  ModelWriterOptions options;
  options.force = true;
  {
    ModelWriter writer(out, {{"a", DType::U8, {2}}}, options);
    write_all(writer);
    writer.commit();
  }
  EXPECT_EQ(dir_listing(out), std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(parse_shard(out / "model.safetensors").data("a"), as_string(pattern(2, 0)));
  EXPECT_EQ(dir_listing(tmp.path()), std::vector<std::string>{"out"});  // no temp or old left
}

TEST(ModelWriter, EmptyTargetDirectoryIsReplacedAndMissingParentsAreCreated) {
  TempDir tmp;
  fs::create_directories(tmp / "empty");
  for (const fs::path& out : {tmp / "empty", tmp / "new" / "deeper" / "out"}) {
    {
      ModelWriter writer(out, {{"a", DType::U8, {2}}});
      write_all(writer);
      writer.commit();
    }
    EXPECT_EQ(dir_listing(out), std::vector<std::string>{"model.safetensors"}) << out;
  }
}

TEST(ModelWriter, TargetThatIsAFileIsRefused) {
  TempDir tmp;
  write_text(tmp / "out", "a file");
  ModelWriterOptions options;
  options.force = true;
  EXPECT_EQ(kind_of([&] {
              ModelWriter writer(tmp / "out", {{"a", DType::U8, {1}}}, options);
            }),
            ErrorKind::io);
  EXPECT_EQ(read_text(tmp / "out"), "a file");
  EXPECT_EQ(dir_listing(tmp.path()), std::vector<std::string>{"out"});
}

TEST(ModelWriter, CommitWithAMissingByteRangeNamesTheTensor) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  ModelWriter writer(out, {{"done", DType::F32, {4}}, {"partial", DType::F32, {4}}});
  const auto bytes = pattern(16, 0);
  writer.write(0, 0, bytes.data(), 16);
  writer.write(1, 0, bytes.data(), 8);
  writer.write(1, 12, bytes.data() + 12, 4);  // bytes [8, 12) never arrive
  try {
    writer.commit();
    ADD_FAILURE() << "incomplete tensor committed";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::internal);
    EXPECT_EQ(e.context().tensor, "partial");
    EXPECT_NE(e.message().find("'partial' has 12 of 16 bytes"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out));
  // The missing range can still be supplied and the commit retried.
  writer.write(1, 8, bytes.data() + 8, 4);
  writer.commit();
  EXPECT_EQ(parse_shard(out / "model.safetensors").data("partial"), as_string(bytes));
}

TEST(ModelWriter, WritesOutsideATensorAndBadTensorListsAreInternalErrors) {
  TempDir tmp;
  ModelWriter writer(tmp / "out", {{"a", DType::F32, {4}}});
  const auto bytes = pattern(32, 0);
  EXPECT_EQ(kind_of([&] { writer.write(0, 8, bytes.data(), 9); }), ErrorKind::internal);
  EXPECT_EQ(kind_of([&] { writer.write(1, 0, bytes.data(), 1); }), ErrorKind::internal);
  EXPECT_EQ(kind_of([&] { writer.write(0, ~std::uint64_t{0}, bytes.data(), 2); }),
            ErrorKind::internal);
  EXPECT_EQ(kind_of([&] {
              ModelWriter dup(tmp / "dup", {{"a", DType::F32, {1}}, {"a", DType::F16, {1}}});
            }),
            ErrorKind::internal);
  EXPECT_FALSE(fs::exists(tmp / "dup"));
  EXPECT_EQ(kind_of([&] {
              plan_shards({{"__metadata__", DType::F32, {1}}}, 100);
            }),
            ErrorKind::internal);
}

}  // namespace
}  // namespace llmerge
