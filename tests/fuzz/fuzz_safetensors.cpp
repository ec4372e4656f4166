// libFuzzer target: the safetensors header parser and reader.
//
// The input is a whole file. parse_header() must accept or raise Error; an
// accepted header must describe tensors that tile the data buffer inside the
// file. The same bytes are then written to a file and opened, and every
// tensor's bytes read back must equal the input's bytes at its offsets.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/safetensors.h"

using namespace llmerge;

namespace {

void check_layout(const SafetensorsFile& f, std::uint64_t size) {
  FUZZ_CHECK(f.data_offset() >= 8 && f.data_offset() <= size);
  std::uint64_t expected_begin = 0;
  for (const TensorInfo& t : f.tensors()) {
    FUZZ_CHECK(t.begin == expected_begin);  // exact tiling, in order
    FUZZ_CHECK(t.end >= t.begin);
    FUZZ_CHECK(t.end <= size - f.data_offset());
    FUZZ_CHECK(t.numel() >= 0);
    FUZZ_CHECK(f.find(t.name) == &t);
    expected_begin = t.end;
  }
  FUZZ_CHECK(f.data_offset() + expected_begin == size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  bool accepted = false;
  try {
    const SafetensorsFile f = SafetensorsFile::parse_header(bytes, size, "fuzz.safetensors");
    check_layout(f, size);
    accepted = true;
  } catch (const Error&) {
  }
  // A prefix too short for the header must be rejected, never read past.
  if (size > 8) {
    try {
      SafetensorsFile::parse_header(bytes.substr(0, size / 2), size, "half.safetensors");
    } catch (const Error&) {
    }
  }
  if (!accepted) return 0;

  const auto path = fuzz::scratch_dir() / "input.safetensors";
  fuzz::write_bytes(path, bytes);
  try {
    const SafetensorsFile f = SafetensorsFile::open(path);
    check_layout(f, size);
    std::vector<unsigned char> buf;
    for (const TensorInfo& t : f.tensors()) {
      buf.resize(t.nbytes());
      f.read(t, 0, buf.data(), buf.size());
      FUZZ_CHECK(buf.empty() ||
                 std::memcmp(buf.data(), data + f.data_offset() + t.begin, buf.size()) == 0);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "open() rejected what parse_header() accepted: %s\n", e.what());
    std::abort();
  }
  return 0;
}
