// safetensors files: a validating reader and the layout rules shared with the writer.
//
// Format (huggingface/safetensors README, "Format"):
//
//   [ 8 bytes  ] N, little-endian u64: length of the JSON header
//   [ N bytes  ] UTF-8 JSON object, may be padded with spaces (0x20):
//                  { "__metadata__": {string: string, ...},        (optional)
//                    "<name>": {"dtype": "BF16", "shape": [d0, d1, ...],
//                               "data_offsets": [BEGIN, END]}, ... }
//   [ the rest ] the data buffer; BEGIN/END are relative to its start.
//                Little-endian, C order, no alignment guaranteed (MLX does not pad).
//
// Parse equals validate: the only way to get a SafetensorsFile is open() or
// parse_header(), and both reject anything the reference Rust parser rejects
// (docs/formats.md §3), plus duplicate names, which serde silently
// merges. Tensor data is read with pread() into caller buffers, never mmap'd,
// so a file that shrinks while we read it gives an Error, not SIGBUS.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace llmerge {

// Same 100 MB cap as the reference parser's MAX_HEADER_SIZE.
inline constexpr std::uint64_t k_safetensors_header_max = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;  // empty for a 0-dim scalar
  std::uint64_t begin = 0;          // byte offsets relative to the data buffer
  std::uint64_t end = 0;

  std::int64_t numel() const;  // product of shape (1 for a scalar); fits: checked at parse
  std::uint64_t nbytes() const { return end - begin; }
};

// A file descriptor shared by copies of a SafetensorsFile; closed with the last copy.
class FileHandle;

class SafetensorsFile {
 public:
  // Opens and validates `path`. Throws Error(io) if it cannot be read and
  // Error(format) if it is not a valid safetensors file; the message names the
  // file and, where it applies, the tensor, and suggests a likely cause.
  static SafetensorsFile open(const std::filesystem::path& path);

  // Validates a header without a file: `prefix` holds the first bytes of the
  // file (at least 8 + N of them), `file_size` is the size of the whole file.
  // `display_name` is used in messages. The result cannot read() data.
  // Used by open(), by the fuzzer and by tests.
  static SafetensorsFile parse_header(std::string_view prefix, std::uint64_t file_size,
                                      const std::string& display_name);

  const std::filesystem::path& path() const { return path_; }
  // Tensors sorted by data offset (= file order).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr if absent.
  const TensorInfo* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::uint64_t header_size() const { return data_offset_ - 8; }  // N
  std::uint64_t data_offset() const { return data_offset_; }      // 8 + N
  std::uint64_t file_size() const { return file_size_; }

  // Copies bytes [offset, offset + len) of tensor `t`'s data into `dst`.
  // Thread-safe. Throws Error(io) naming the file and tensor if the read comes
  // up short (the file shrank or was replaced after open()).
  void read(const TensorInfo& t, std::uint64_t offset, void* dst, std::uint64_t len) const;

 private:
  SafetensorsFile() = default;

  std::filesystem::path path_;
  std::string display_name_;
  std::shared_ptr<FileHandle> file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t, std::less<>> by_name_;  // name -> index in tensors_
  std::map<std::string, std::string> metadata_;
  std::uint64_t data_offset_ = 0;
  std::uint64_t file_size_ = 0;
};

}  // namespace llmerge
