// libFuzzer target: model folders (config.json, model.safetensors.index.json,
// shards) through Model::open.
//
// The input is split at each "\n=====\n" into files of one folder:
//   part 0  config.json                    (absent if the part is empty)
//   part 1  model.safetensors.index.json   (absent if empty)
//   part 2+ shards: "model.safetensors" when there is no index part, else
//           "model-0000k-of-0000n.safetensors"
// Model::open must succeed or raise Error; an opened model's accessors must
// agree with each other, and every tensor must be readable.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/core.h>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/model.h"

using namespace llmerge;
namespace fs = std::filesystem;

namespace {

constexpr std::string_view k_separator = "\n=====\n";
constexpr std::size_t k_parts_max = 8;

std::vector<std::string_view> split(std::string_view input) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < k_parts_max) {
    const auto at = input.find(k_separator);
    if (at == std::string_view::npos) break;
    parts.push_back(input.substr(0, at));
    input.remove_prefix(at + k_separator.size());
  }
  parts.push_back(input);
  return parts;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parts = split(std::string_view(reinterpret_cast<const char*>(data), size));
  const fs::path dir = fuzz::scratch_dir() / "model";
  fs::remove_all(dir);
  fs::create_directories(dir);
  if (!parts[0].empty()) fuzz::write_bytes(dir / "config.json", parts[0]);
  const bool indexed = parts.size() > 1 && !parts[1].empty();
  if (indexed) fuzz::write_bytes(dir / "model.safetensors.index.json", parts[1]);
  const std::size_t shards = parts.size() > 2 ? parts.size() - 2 : 0;
  for (std::size_t s = 0; s < shards; ++s) {
    const std::string name = indexed
                                 ? fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards)
                                 : "model.safetensors";
    fuzz::write_bytes(dir / name, parts[s + 2]);
    if (!indexed) break;
  }

  try {
    const Model m = Model::open(dir, "fuzz/model");
    const auto names = m.tensor_names();
    FUZZ_CHECK(names.size() == m.tensor_count());
    std::uint64_t bytes = 0;
    for (const auto& name : names) {
      const TensorRef* ref = m.find(name);
      FUZZ_CHECK(ref && ref->info->name == name);
      unsigned char buf[64];
      const std::uint64_t n = std::min<std::uint64_t>(ref->info->nbytes(), sizeof buf);
      ref->file->read(*ref->info, 0, buf, n);
      bytes += ref->info->nbytes();
    }
    FUZZ_CHECK(bytes <= m.size_on_disk());
    (void)m.parameter_count();
    (void)m.dtype_counts();
    FUZZ_CHECK(m.layers().count >= 0);
    for (const char* key : {"model_type", "architectures", "vocab_size", "hidden_size"}) {
      (void)m.config_string(key);
      (void)m.config_int(key);
    }
  } catch (const Error&) {
  }
  return 0;
}
