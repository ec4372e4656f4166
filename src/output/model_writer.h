// Writes a model folder: sharded safetensors plus side files, atomically.
//
// The tensor list is known up front, so the writer lays out every shard and
// every tensor's offset at construction. Data then arrives in chunks, for any
// tensor, in any order, from several threads at once (pwrite). commit()
// checks that every byte was written, fsyncs, writes the index last and
// renames the temporary sibling directory into place. If commit() is never
// reached (an error, an exception, SIGINT) the destructor removes the
// temporary directory: the target is never half-written.
//
// Two writers never target the same folder at once: the constructor takes an
// exclusive flock() on "<out_dir>.llmerge-lock" (created next to out_dir,
// holding the owner's pid for messages) and refuses with Error(io) naming
// that pid if another process -- or another ModelWriter -- holds it. The lock
// is released and the file removed when the writer is destroyed. The kernel
// drops the lock of a process that dies, so a lock file left by a crash is
// stale and simply taken over.
//
// Layout rules (deterministic: the same tensor list gives the same bytes):
//  - Tensors are packed into shards greedily, in the order given: a new shard
//    starts when the current one is non-empty and adding the next tensor would
//    pass shard_size_max (mergekit's rule). A tensor larger than the limit
//    gets a shard of its own.
//  - Inside a shard, tensors are ordered by dtype size, largest first, then by
//    the given order, so every tensor is naturally aligned (as the reference
//    writer does), and the header is padded with spaces to a multiple of 8.
//  - Header metadata is {"format":"pt"} (or "mlx", see plan_shards).
//  - One shard is "model.safetensors"; more are
//    "model-00001-of-0000N.safetensors" plus "model.safetensors.index.json"
//    with metadata.total_size and weight_map.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace llmerge {

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;

  std::uint64_t nbytes() const;
};

// mergekit's default --out-shard-size, 5B = 5e9 bytes.
inline constexpr std::uint64_t k_shard_size_default = 5'000'000'000;

// Parses a shard size: "5B" (billions of bytes, mergekit's spelling), "5GB",
// "500MB", "100KB" (powers of 1000), "2GiB", "512MiB", "64KiB" (powers of 1024),
// or a plain byte count "1000000". Throws Error(config) on anything else or 0.
std::uint64_t parse_shard_size(std::string_view text);

struct ModelWriterOptions {
  std::uint64_t shard_size_max = k_shard_size_default;
  // Allow replacing an existing non-empty output directory -- only one that
  // is a previous llmerge (or mergekit) output: config.json, the weights,
  // and nothing but the files llmerge writes (is_output_file_name).
  bool force = false;
  std::string format = "pt";  // header __metadata__ "format" (see plan_shards)
  // The name of the one file when the output is not sharded, instead of
  // model.safetensors (LoRA adapters: adapter_model.safetensors). It must be
  // one of is_output_file_name's; the output must fit one shard.
  std::string single_file_name;
  // Told about things worth a user's attention that are not errors: stale
  // temporary folders of killed runs, removed when the lock is taken.
  std::function<void(const std::string&)> note;
};

// The names llmerge writes into an output folder: shards, the index,
// config.json, README.md, mergekit_config.yml and the tokenizer files.
bool is_output_file_name(std::string_view name);

// Side files are untrusted: at most this many bytes are copied (the same cap
// as for JSON side files, io/files.h).
inline constexpr std::uint64_t k_copy_file_max = 100'000'000;

// Copies the regular file `from` (refused if it is not one: FIFO, device,
// directory; never blocks) of at most `size_max` bytes to `to`, keeping the
// OS's error: Error(io) "cannot write '<to>': No space left on device".
void copy_regular_file(const std::filesystem::path& from, const std::filesystem::path& to,
                       std::uint64_t size_max = k_copy_file_max);

// Where each tensor lands; computed by plan_shards without touching the disk,
// so `llmerge plan` can print it.
struct ShardPlan {
  struct Entry {
    std::size_t shard = 0;          // index into files
    std::uint64_t file_offset = 0;  // absolute offset of the tensor's data in its file
  };
  std::vector<std::string> files;         // shard file names
  std::vector<std::uint64_t> file_sizes;  // total bytes of each shard file
  std::vector<std::string> headers;       // each shard's full header (8-byte length + JSON)
  std::vector<Entry> entries;             // parallel to the tensor list
  std::uint64_t total_size = 0;           // sum of tensor bytes (index metadata.total_size)
};
// `format` is the header's __metadata__ "format": "pt" (transformers), or
// "mlx" for MLX-quantized output (mlx-lm writes it; transformers accepts both).
ShardPlan plan_shards(const std::vector<TensorSpec>& tensors, std::uint64_t shard_size_max,
                      std::string_view format = "pt");

class ModelWriter {
 public:
  // Refuses (Error(io)) an existing non-empty `out_dir` unless options.force
  // and it is a previous output, an `out_dir` that is a file, a symlink, or
  // a mount point (the temporary sibling would be on another file system),
  // and a lock path that is not a regular file (never followed). Removes
  // stale "<out_dir>.llmerge-tmp-<pid>" folders of killed runs once it holds
  // the lock, telling options.note. Creates the temporary sibling directory
  // "<out_dir>.llmerge-tmp-<pid>" and all shard files at their final sizes with
  // their headers written. Duplicate tensor names are Error(internal).
  ModelWriter(std::filesystem::path out_dir, std::vector<TensorSpec> tensors,
              ModelWriterOptions options = {});
  ~ModelWriter();  // removes the temporary directory unless commit() succeeded
  ModelWriter(const ModelWriter&) = delete;
  ModelWriter& operator=(const ModelWriter&) = delete;

  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  const ShardPlan& shard_plan() const { return plan_; }
  const std::filesystem::path& temp_dir() const { return temp_dir_; }
  const std::filesystem::path& out_dir() const { return out_dir_; }

  // Writes bytes [offset, offset + len) of tensor number `tensor` (index into
  // tensors()). Thread-safe; writes to distinct ranges may run concurrently.
  // Ranges must not overlap (commit() counts bytes). Error(io) on failure
  // (e.g. ENOSPC), naming the file.
  void write(std::size_t tensor, std::uint64_t offset, const void* data, std::uint64_t len);

  // Side files (config.json, tokenizer files, README.md ...) into the folder.
  void write_file(std::string_view relative_name, std::string_view content);
  void copy_file(const std::filesystem::path& from, std::string_view relative_name);

  // Verifies every tensor byte was written (Error(internal) naming the first
  // incomplete tensor otherwise) and that every shard is still in the
  // temporary directory at its full size (Error(io) if something removed or
  // truncated it), fsyncs the files, writes the index, and renames the
  // temporary directory to out_dir (replacing it if force).
  void commit();

 private:
  struct Shard;
  std::filesystem::path out_dir_;
  std::filesystem::path temp_dir_;
  ModelWriterOptions options_;
  std::vector<TensorSpec> tensors_;
  ShardPlan plan_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> bytes_written_;  // per tensor
  bool committed_ = false;
  struct OutputLock;
  std::unique_ptr<OutputLock> lock_;  // held from construction to destruction
};

}  // namespace llmerge
