#include "output/model_writer.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <system_error>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "output/output_files.h"

namespace llmerge {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view k_single_file = "model.safetensors";
constexpr std::string_view k_index_file = "model.safetensors.index.json";
// Same 100 MB cap as the reference safetensors parser: a larger header could not be read back.
constexpr std::uint64_t k_header_max = 100'000'000;
// Linux moves at most 0x7ffff000 bytes per call and macOS rejects counts above INT_MAX.
constexpr std::uint64_t k_io_chunk_max = std::uint64_t{1} << 30;

bool checked_add(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  if (b > std::numeric_limits<std::uint64_t>::max() - a) return false;
  out = a + b;
  return true;
}

bool checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return false;
  out = a * b;
  return true;
}

std::string errno_text(int err) {
  return std::generic_category().message(err);
}

Error io_error(const std::string& what, const fs::path& path, int err) {
  return Error(ErrorKind::io, fmt::format("{}: {}", what, errno_text(err)),
               ErrorContext{.file = path.string()});
}

std::string json_string(const std::string& s) {
  try {
    return nlohmann::json(s).dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::internal, fmt::format("tensor name is not valid UTF-8: {}", e.what()));
  }
}

void pwrite_all(int fd, const void* data, std::uint64_t len, std::uint64_t offset,
                const fs::path& path) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (len > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min(len, k_io_chunk_max));
    const ssize_t done = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (done < 0) {
      if (errno == EINTR) continue;
      throw io_error("cannot write", path, errno);
    }
    if (done == 0) throw io_error("cannot write", path, EIO);
    p += done;
    len -= static_cast<std::uint64_t>(done);
    offset += static_cast<std::uint64_t>(done);
  }
}

// Asks the kernel to start writing [offset, offset + len) to disk now,
// without waiting: the commit's fsync then finds most of the output already
// written, instead of writing it all while the merge waits. Linux only
// (sync_file_range); elsewhere the commit's fsync does all of it.
void start_writeback(int fd, std::uint64_t offset, std::uint64_t len) {
#if defined(__linux__) && defined(SYNC_FILE_RANGE_WRITE)
  (void)::sync_file_range(fd, static_cast<off64_t>(offset), static_cast<off64_t>(len),
                          SYNC_FILE_RANGE_WRITE);  // a hint: errors surface at fsync
#else
  (void)fd;
  (void)offset;
  (void)len;
#endif
}

// macOS fsync() does not flush the drive's cache; F_FULLFSYNC does.
int full_fsync(int fd) {
#ifdef F_FULLFSYNC
  if (::fcntl(fd, F_FULLFSYNC) == 0) return 0;
#endif
  return ::fsync(fd);
}

void fsync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) throw io_error("cannot open for fsync", path, errno);
  const int rc = full_fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems cannot fsync a directory; the files themselves are already synced.
  if (rc != 0 && !(directory && (err == EINVAL || err == ENOTSUP))) {
    throw io_error("cannot fsync", path, err);
  }
}

void write_whole_file(const fs::path& path, std::string_view content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw io_error("cannot create", path, errno);
  try {
    pwrite_all(fd, content.data(), content.size(), 0, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  const int rc = full_fsync(fd);
  const int err = errno;
  if (::close(fd) != 0 && rc == 0) throw io_error("cannot close", path, errno);
  if (rc != 0) throw io_error("cannot fsync", path, err);
}

std::string little_endian_u64(std::uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

std::string shard_file_name(std::size_t index, std::size_t count) {
  if (count == 1) return std::string(k_single_file);
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", index + 1, count);
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

fs::path sibling(const fs::path& dir, std::string_view suffix) {
  return dir.parent_path() / (dir.filename().string() + fmt::format("{}{}", suffix, ::getpid()));
}

// What `llmerge extract-lora` writes (PEFT and mlx-lm adapter folders).
bool is_adapter_file_name(std::string_view name) {
  return name == "adapter_model.safetensors" || name == "adapters.safetensors" ||
         name == "adapter_config.json";
}

bool is_shard_file_name(std::string_view name) {
  if (name == k_single_file) return true;
  // model-00001-of-00003.safetensors
  if (name.size() != 32 || !name.starts_with("model-") || name.substr(11, 4) != "-of-" ||
      !name.ends_with(".safetensors")) {
    return false;
  }
  const auto digits = [](std::string_view d) {
    return std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  return digits(name.substr(6, 5)) && digits(name.substr(15, 5));
}

// Why `dir` is not a previous llmerge output that --force may replace, or ""
// if it is one. Like `git clone`, which refuses a non-empty target, but
// allowing a rerun over its own output: nothing else is ever deleted.
std::string not_a_previous_output(const fs::path& dir) {
  std::error_code ec;
  bool weights = false;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const auto st = entry.symlink_status(ec);
    if (!fs::is_regular_file(st)) {
      return fmt::format("'{}' is {}", name,
                         fs::is_directory(st) ? "a folder" : "not a regular file");
    }
    if (!is_output_file_name(name)) return fmt::format("'{}' is not a file llmerge writes", name);
    weights |= name == k_single_file || name == k_index_file || is_adapter_file_name(name);
  }
  if (ec) return fmt::format("it cannot be listed ({})", ec.message());
  if (!weights) return "it holds no model.safetensors or index, so it is not a model output";
  return "";
}

// Removes "<name>.llmerge-tmp-<pid>" and "<name>.llmerge-old-<pid>" folders
// next to `out_dir`. Called with the lock held: the run that made them is dead.
void remove_stale_temporaries(const fs::path& out_dir,
                              const std::function<void(const std::string&)>& note) {
  const std::string base = out_dir.filename().string();
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(out_dir.parent_path(), ec)) {
    const std::string name = entry.path().filename().string();
    for (std::string_view suffix : {".llmerge-tmp-", ".llmerge-old-"}) {
      const std::string head = base + std::string(suffix);
      if (!name.starts_with(head) || name.size() == head.size()) continue;
      const std::string_view pid = std::string_view(name).substr(head.size());
      if (!std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        continue;
      }
      if (fs::is_directory(entry.symlink_status(ec))) stale.push_back(entry.path());
    }
  }
  for (const auto& dir : stale) {
    std::uint64_t bytes = 0;
    for (const auto& f : fs::recursive_directory_iterator(dir, ec)) {
      if (f.is_regular_file(ec)) bytes += f.file_size(ec);
    }
    fs::remove_all(dir, ec);
    if (!note) continue;
    note(ec ? fmt::format("cannot remove '{}' ({} bytes), left by an interrupted llmerge run: "
                          "{}; remove it by hand",
                          dir.string(), bytes, ec.message())
            : fmt::format("removed '{}' ({} bytes), left by an interrupted llmerge run",
                          dir.string(), bytes));
  }
}

}  // namespace

bool is_output_file_name(std::string_view name) {
  if (is_shard_file_name(name) || name == k_index_file || name == "config.json" ||
      name == "README.md" || name == "mergekit_config.yml" ||
      name == "mergekit_moe_config.yml" ||  // `llmerge moe`'s recipe
      is_adapter_file_name(name)) {
    return true;
  }
  const auto& tokenizer = tokenizer_file_names();
  return std::find(tokenizer.begin(), tokenizer.end(), name) != tokenizer.end();
}

void copy_regular_file(const fs::path& from, const fs::path& to, std::uint64_t size_max) {
  const int in = ::open(from.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (in < 0) throw io_error("cannot open", from, errno);
  struct Closer {
    int fd;
    ~Closer() {
      if (fd >= 0) ::close(fd);
    }
  } in_closer{in};
  struct stat st {};
  if (::fstat(in, &st) != 0) throw io_error("cannot stat", from, errno);
  if (!S_ISREG(st.st_mode)) {
    throw Error(ErrorKind::io, "is not a regular file (a FIFO, device or folder); not copying it",
                ErrorContext{.file = from.string()});
  }
  if (static_cast<std::uint64_t>(st.st_size) > size_max) {
    throw Error(ErrorKind::format,
                fmt::format("file is {} bytes, over the {} byte limit for a side file", st.st_size,
                            size_max),
                ErrorContext{.file = from.string()});
  }
  const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) throw io_error("cannot create", to, errno);
  Closer out_closer{out};
  std::vector<char> buffer(std::size_t{1} << 20);
  std::uint64_t offset = 0;
  for (;;) {
    const ssize_t n = ::read(in, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw io_error("cannot read", from, errno);
    }
    if (n == 0) break;
    offset += static_cast<std::uint64_t>(n);
    if (offset > size_max) {
      throw Error(ErrorKind::format, "file grew past the side-file size limit while copying",
                  ErrorContext{.file = from.string()});
    }
    pwrite_all(out, buffer.data(), static_cast<std::uint64_t>(n),
               offset - static_cast<std::uint64_t>(n), to);
  }
  const int fd = std::exchange(out_closer.fd, -1);
  if (::close(fd) != 0) throw io_error("cannot close", to, errno);
}

std::uint64_t TensorSpec::nbytes() const {
  std::uint64_t numel = 1;
  for (const std::int64_t d : shape) {
    if (d < 0 || !checked_mul(numel, static_cast<std::uint64_t>(d), numel)) {
      throw Error(ErrorKind::internal, "tensor shape has a negative or overflowing dimension",
                  ErrorContext{.tensor = name});
    }
  }
  std::uint64_t bits = 0;
  if (!checked_mul(numel, static_cast<std::uint64_t>(dtype_bits(dtype)), bits)) {
    throw Error(ErrorKind::internal, "tensor size overflows", ErrorContext{.tensor = name});
  }
  // The reference reader rejects sub-byte tensors that do not end on a byte boundary.
  if (bits % 8 != 0) {
    throw Error(ErrorKind::internal,
                fmt::format("{} tensor of {} elements is not a whole number of bytes",
                            dtype_name(dtype), numel),
                ErrorContext{.tensor = name});
  }
  return bits / 8;
}

std::uint64_t parse_shard_size(std::string_view text) {
  const auto fail = [&]() -> Error {
    return Error(ErrorKind::config,
                 fmt::format("invalid shard size '{}': expected a positive byte count such as "
                             "1000000, 1.5GB, 500MB, 100KB (powers of 1000), 2GiB, 512MiB, 64KiB "
                             "(powers of 1024), or mergekit's 5B, 500M, 100K (B = billion)",
                             text));
  };
  std::string_view s = text;
  while (!s.empty() && s.front() == ' ')
    s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ')
    s.remove_suffix(1);

  std::size_t i = 0;
  std::uint64_t whole = 0;
  const std::size_t whole_begin = i;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (!checked_mul(whole, 10, whole) || !checked_add(whole, s[i] - '0', whole)) throw fail();
  }
  if (i == whole_begin) throw fail();
  std::string fraction;
  if (i < s.size() && s[i] == '.') {
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i)
      fraction += s[i];
    if (fraction.empty()) throw fail();
    while (!fraction.empty() && fraction.back() == '0')
      fraction.pop_back();
  }
  // Six digits keep fraction * multiplier (< 1e6 * 2^40) inside 64 bits.
  if (fraction.size() > 6) throw fail();
  while (i < s.size() && s[i] == ' ')
    ++i;

  const std::string unit = ascii_lower(s.substr(i));
  std::uint64_t multiplier = 0;
  if (unit.empty())
    multiplier = 1;
  else if (unit == "k" || unit == "kb")
    multiplier = 1'000;
  else if (unit == "m" || unit == "mb")
    multiplier = 1'000'000;
  else if (unit == "b" || unit == "gb")
    multiplier = 1'000'000'000;
  else if (unit == "tb")
    multiplier = 1'000'000'000'000;
  else if (unit == "kib")
    multiplier = std::uint64_t{1} << 10;
  else if (unit == "mib")
    multiplier = std::uint64_t{1} << 20;
  else if (unit == "gib")
    multiplier = std::uint64_t{1} << 30;
  else if (unit == "tib")
    multiplier = std::uint64_t{1} << 40;
  else
    throw fail();

  std::uint64_t bytes = 0;
  if (!checked_mul(whole, multiplier, bytes)) throw fail();
  if (!fraction.empty()) {
    std::uint64_t numerator = 0;
    std::uint64_t denominator = 1;
    for (const char c : fraction) {
      numerator = numerator * 10 + static_cast<std::uint64_t>(c - '0');
      denominator *= 10;
    }
    // A fraction of a byte is dropped: "1.0005KB" is 1000 bytes.
    if (!checked_add(bytes, numerator * multiplier / denominator, bytes)) throw fail();
  }
  if (bytes == 0) throw fail();
  return bytes;
}

ShardPlan plan_shards(const std::vector<TensorSpec>& tensors, std::uint64_t shard_size_max,
                      std::string_view format) {
  std::vector<std::uint64_t> sizes(tensors.size());
  std::unordered_set<std::string_view> names;
  ShardPlan plan;
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    sizes[t] = tensors[t].nbytes();
    if (tensors[t].name == "__metadata__") {
      throw Error(ErrorKind::internal, "a tensor may not be named __metadata__",
                  ErrorContext{.tensor = tensors[t].name});
    }
    if (!names.insert(tensors[t].name).second) {
      throw Error(ErrorKind::internal, "duplicate tensor name",
                  ErrorContext{.tensor = tensors[t].name});
    }
    if (!checked_add(plan.total_size, sizes[t], plan.total_size)) {
      throw Error(ErrorKind::internal, "total model size overflows");
    }
  }

  std::vector<std::vector<std::size_t>> members(1);
  std::uint64_t current = 0;
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    if (!members.back().empty() &&
        (current > shard_size_max || sizes[t] > shard_size_max - current)) {
      members.emplace_back();
      current = 0;
    }
    members.back().push_back(t);
    current += sizes[t];  // cannot overflow: bounded by total_size
  }

  plan.entries.resize(tensors.size());
  for (std::size_t s = 0; s < members.size(); ++s) {
    auto& order = members[s];
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return dtype_bits(tensors[a].dtype) > dtype_bits(tensors[b].dtype);
    });
    std::string json =
        R"({"__metadata__":{"format":)" + nlohmann::json(std::string(format)).dump() + "}";
    std::uint64_t data_size = 0;
    std::vector<std::uint64_t> relative(order.size());
    for (std::size_t k = 0; k < order.size(); ++k) {
      const TensorSpec& spec = tensors[order[k]];
      relative[k] = data_size;
      data_size += sizes[order[k]];
      json += ',';
      json += json_string(spec.name);
      json += R"(:{"dtype":")";
      json += dtype_name(spec.dtype);
      json += R"(","shape":[)";
      for (std::size_t d = 0; d < spec.shape.size(); ++d) {
        if (d > 0) json += ',';
        json += std::to_string(spec.shape[d]);
      }
      json += fmt::format(R"(],"data_offsets":[{},{}]}})", relative[k], data_size);
    }
    json += '}';
    json.append((8 - json.size() % 8) % 8, ' ');
    if (json.size() > k_header_max) {
      throw Error(ErrorKind::unsupported,
                  fmt::format("shard header would be {} bytes, over the {} byte limit of "
                              "safetensors readers; use a smaller shard size",
                              json.size(), k_header_max));
    }
    const std::uint64_t data_begin = 8 + json.size();
    for (std::size_t k = 0; k < order.size(); ++k) {
      plan.entries[order[k]] = {s, data_begin + relative[k]};
    }
    std::uint64_t file_size = 0;
    if (!checked_add(data_begin, data_size, file_size) ||
        file_size > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) {
      throw Error(ErrorKind::internal, "shard file size overflows");
    }
    plan.file_sizes.push_back(file_size);
    plan.headers.push_back(little_endian_u64(json.size()) + json);
  }
  for (std::size_t s = 0; s < members.size(); ++s) {
    plan.files.push_back(shard_file_name(s, members.size()));
  }
  return plan;
}

struct ModelWriter::Shard {
  fs::path path;
  int fd = -1;
  ~Shard() {
    if (fd >= 0) ::close(fd);
  }
};

struct ModelWriter::OutputLock {
  fs::path path;
  int fd = -1;

  explicit OutputLock(fs::path lock_path) : path(std::move(lock_path)) {
    // Retry if the file we locked was unlinked by its previous owner in the
    // meantime: a lock on a removed file would not exclude anyone.
    for (int attempt = 0; attempt < 100; ++attempt) {
      // O_NOFOLLOW: a symlink planted at the lock path must not get its target
      // truncated (git's lock files are created the same careful way).
      fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
      if (fd < 0 && errno == ELOOP) {
        throw Error(ErrorKind::io,
                    fmt::format("the output lock path '{}' is a symlink; llmerge never follows "
                                "it. Remove it if no llmerge run is writing this output",
                                path.string()),
                    ErrorContext{.file = path.string()});
      }
      if (fd < 0) throw io_error("cannot create the output lock file", path, errno);
      struct stat lock_stat {};
      if (::fstat(fd, &lock_stat) != 0 || !S_ISREG(lock_stat.st_mode)) {
        ::close(fd);
        fd = -1;
        throw Error(ErrorKind::io,
                    fmt::format("the output lock path '{}' is not a regular file; remove it",
                                path.string()),
                    ErrorContext{.file = path.string()});
      }
      if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        std::string owner(32, '\0');
        const ssize_t n = ::pread(fd, owner.data(), owner.size(), 0);
        owner.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
        while (!owner.empty() && (owner.back() == '\n' || owner.back() == '\0'))
          owner.pop_back();
        ::close(fd);
        fd = -1;
        if (err != EWOULDBLOCK) throw io_error("cannot lock", path, err);
        throw Error(ErrorKind::io,
                    fmt::format("another llmerge run{} is writing this output right now (lock "
                                "file '{}'); wait for it to finish or choose another output",
                                owner.empty() ? "" : " (pid " + owner + ")", path.string()),
                    ErrorContext{.file = path.string()});
      }
      struct stat held {};
      struct stat named {};
      if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &named) == 0 &&
          held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
        const std::string pid = std::to_string(::getpid()) + "\n";
        if (::ftruncate(fd, 0) == 0) (void)::pwrite(fd, pid.data(), pid.size(), 0);
        return;
      }
      ::close(fd);
      fd = -1;
    }
    throw Error(ErrorKind::io, "cannot take the output lock: it keeps being replaced",
                ErrorContext{.file = path.string()});
  }
  ~OutputLock() {
    if (fd < 0) return;
    ::unlink(path.c_str());  // while still locked, so no one locks a file about to vanish
    ::close(fd);
  }
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
};

ModelWriter::ModelWriter(fs::path out_dir, std::vector<TensorSpec> tensors,
                         ModelWriterOptions options)
    : options_(options), tensors_(std::move(tensors)) {
  // Absolute and without a trailing slash, so that "out/" and "." have a real sibling.
  out_dir_ = fs::absolute(out_dir).lexically_normal();
  if (!out_dir_.has_filename()) out_dir_ = out_dir_.parent_path();
  temp_dir_ = sibling(out_dir_, ".llmerge-tmp-");
  plan_ = plan_shards(tensors_, options_.shard_size_max, options_.format);
  if (!options_.single_file_name.empty()) {
    if (plan_.files.size() != 1)
      throw Error(ErrorKind::internal, "a single-file output was planned as several shards");
    plan_.files[0] = options_.single_file_name;
  }

  std::error_code ec;
  if (fs::is_symlink(fs::symlink_status(out_dir_, ec))) {
    throw Error(ErrorKind::io,
                fmt::format("output path '{}' is a symlink (to '{}'); the finished folder is "
                            "renamed into place, which would replace the link rather than write "
                            "where it points. Give the real path",
                            out_dir_.string(), fs::read_symlink(out_dir_, ec).string()),
                ErrorContext{.file = out_dir_.string()});
  }
  // The temporary sibling must be on the output's file system, or the final
  // rename fails after the whole model was written (EXDEV).
  struct stat out_stat {};
  struct stat parent_stat {};
  if (::stat(out_dir_.c_str(), &out_stat) == 0 && S_ISDIR(out_stat.st_mode) &&
      ::stat(out_dir_.parent_path().c_str(), &parent_stat) == 0 &&
      out_stat.st_dev != parent_stat.st_dev) {
    throw Error(ErrorKind::io,
                fmt::format("output directory '{}' is a mount point (another file system than "
                            "its parent); llmerge writes a temporary sibling folder and renames "
                            "it into place, which cannot cross file systems. Write to a folder "
                            "inside it instead, e.g. '{}'",
                            out_dir_.string(), (out_dir_ / "model").string()),
                ErrorContext{.file = out_dir_.string()});
  }
  fs::create_directories(out_dir_.parent_path(), ec);
  if (ec) throw io_error("cannot create parent directory", out_dir_.parent_path(), ec.value());
  lock_ = std::make_unique<OutputLock>(out_dir_.parent_path() /
                                       (out_dir_.filename().string() + ".llmerge-lock"));
  const auto st = fs::status(out_dir_, ec);
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) {
      throw Error(ErrorKind::io, "output path exists and is not a directory",
                  ErrorContext{.file = out_dir_.string()});
    }
    if (!fs::is_empty(out_dir_, ec)) {
      if (!options_.force) {
        throw Error(ErrorKind::io,
                    fmt::format("output directory '{}' exists and is not empty; use --force to "
                                "replace it",
                                out_dir_.string()),
                    ErrorContext{.file = out_dir_.string()});
      }
      if (const std::string why = not_a_previous_output(out_dir_); !why.empty()) {
        throw Error(ErrorKind::io,
                    fmt::format("output directory '{}' is not a previous llmerge output ({}); "
                                "--force replaces only an empty folder or an earlier output, "
                                "never other files. Move them away or choose another output",
                                out_dir_.string(), why),
                    ErrorContext{.file = out_dir_.string()});
      }
    }
  }
  remove_stale_temporaries(out_dir_, options_.note);
  // A leftover from a crashed run that had the same pid.
  fs::remove_all(temp_dir_, ec);
  if (ec) throw io_error("cannot remove stale temporary directory", temp_dir_, ec.value());
  if (::mkdir(temp_dir_.c_str(), 0755) != 0) {
    throw io_error("cannot create temporary directory", temp_dir_, errno);
  }

  try {
    bytes_written_ = std::make_unique<std::atomic<std::uint64_t>[]>(tensors_.size());
    for (std::size_t s = 0; s < plan_.files.size(); ++s) {
      auto shard = std::make_unique<Shard>();
      shard->path = temp_dir_ / plan_.files[s];
      shard->fd = ::open(shard->path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (shard->fd < 0) throw io_error("cannot create", shard->path, errno);
      if (::ftruncate(shard->fd, static_cast<off_t>(plan_.file_sizes[s])) != 0) {
        throw io_error(fmt::format("cannot size to {} bytes", plan_.file_sizes[s]), shard->path,
                       errno);
      }
      pwrite_all(shard->fd, plan_.headers[s].data(), plan_.headers[s].size(), 0, shard->path);
      shards_.push_back(std::move(shard));
    }
  } catch (...) {
    shards_.clear();
    fs::remove_all(temp_dir_, ec);
    throw;
  }
}

ModelWriter::~ModelWriter() {
  if (committed_) return;
  shards_.clear();
  std::error_code ec;
  fs::remove_all(temp_dir_, ec);
}

void ModelWriter::write(std::size_t tensor, std::uint64_t offset, const void* data,
                        std::uint64_t len) {
  if (tensor >= tensors_.size()) {
    throw Error(ErrorKind::internal,
                fmt::format("write to tensor #{} of {}", tensor, tensors_.size()));
  }
  const TensorSpec& spec = tensors_[tensor];
  std::uint64_t end = 0;
  if (!checked_add(offset, len, end) || end > spec.nbytes()) {
    throw Error(ErrorKind::internal,
                fmt::format("write of bytes [{}, {}+{}) is past the end of the tensor ({} bytes)",
                            offset, offset, len, spec.nbytes()),
                ErrorContext{.tensor = spec.name});
  }
  if (committed_ || shards_.empty()) {
    throw Error(ErrorKind::internal, "write after commit", ErrorContext{.tensor = spec.name});
  }
  const ShardPlan::Entry& entry = plan_.entries[tensor];
  const Shard& shard = *shards_[entry.shard];
  pwrite_all(shard.fd, data, len, entry.file_offset + offset, shard.path);
  const std::uint64_t written =
      bytes_written_[tensor].fetch_add(len, std::memory_order_relaxed) + len;
  if (written == spec.nbytes()) start_writeback(shard.fd, entry.file_offset, spec.nbytes());
}

namespace {

fs::path side_file_path(const fs::path& temp_dir, std::string_view relative_name,
                        const ShardPlan& plan) {
  const fs::path rel(relative_name);
  bool ok = !rel.empty() && rel.is_relative() && !rel.has_root_path() && rel.has_filename();
  for (const auto& part : rel) {
    if (part == ".." || part == ".") ok = false;
  }
  const bool reserved =
      relative_name == k_index_file ||
      std::find(plan.files.begin(), plan.files.end(), relative_name) != plan.files.end();
  if (!ok || reserved) {
    throw Error(ErrorKind::internal,
                fmt::format("side file name '{}' must be a plain relative path inside the "
                            "output folder and not a shard or index name",
                            relative_name));
  }
  const fs::path path = temp_dir / rel;
  // Subfolders only: a temporary folder removed under us stays removed.
  if (rel.has_parent_path()) {
    if (!fs::is_directory(temp_dir)) {
      throw io_error("the temporary output folder has disappeared", temp_dir, ENOENT);
    }
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec) throw io_error("cannot create directory", path.parent_path(), ec.value());
  }
  return path;
}

}  // namespace

void ModelWriter::write_file(std::string_view relative_name, std::string_view content) {
  if (committed_) throw Error(ErrorKind::internal, "write_file after commit");
  write_whole_file(side_file_path(temp_dir_, relative_name, plan_), content);
}

void ModelWriter::copy_file(const fs::path& from, std::string_view relative_name) {
  if (committed_) throw Error(ErrorKind::internal, "copy_file after commit");
  copy_regular_file(from, side_file_path(temp_dir_, relative_name, plan_));
}

void ModelWriter::commit() {
  if (committed_) throw Error(ErrorKind::internal, "commit called twice");
  for (std::size_t t = 0; t < tensors_.size(); ++t) {
    const std::uint64_t written = bytes_written_[t].load(std::memory_order_acquire);
    const std::uint64_t expected = tensors_[t].nbytes();
    if (written != expected) {
      throw Error(ErrorKind::internal,
                  fmt::format("tensor '{}' has {} of {} bytes written{}", tensors_[t].name, written,
                              expected, written > expected ? " (overlapping writes)" : ""),
                  ErrorContext{.tensor = tensors_[t].name});
    }
  }

  // Every shard must still be in the temporary folder, complete: something
  // may have removed the folder (a cleanup script) or a file in it mid-run.
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    const Shard& shard = *shards_[i];
    struct stat held {};
    struct stat named {};
    const bool held_ok = ::fstat(shard.fd, &held) == 0;
    const bool named_ok = ::lstat(shard.path.c_str(), &named) == 0;
    if (!held_ok || !named_ok || held.st_dev != named.st_dev || held.st_ino != named.st_ino ||
        static_cast<std::uint64_t>(named.st_size) != plan_.file_sizes[i]) {
      throw Error(
          ErrorKind::io,
          fmt::format("shard '{}' {} in the temporary folder '{}' (was it removed or "
                      "changed during the merge?); the output was not written",
                      plan_.files[i],
                      !named_ok ? std::string("is missing")
                      : held.st_ino != named.st_ino
                          ? std::string("was replaced")
                          : fmt::format("is {} bytes, not {}", named.st_size, plan_.file_sizes[i]),
                      temp_dir_.string()),
          ErrorContext{.file = shard.path.string()});
    }
  }
  for (const auto& shard : shards_) {
    if (full_fsync(shard->fd) != 0) throw io_error("cannot fsync", shard->path, errno);
  }
  for (auto& shard : shards_) {
    const int fd = std::exchange(shard->fd, -1);
    if (::close(fd) != 0) throw io_error("cannot close", shard->path, errno);
  }
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(temp_dir_, ec)) {
    const bool is_shard = entry.path().parent_path() == temp_dir_ &&
                          std::find(plan_.files.begin(), plan_.files.end(),
                                    entry.path().filename().string()) != plan_.files.end();
    if (!is_shard) fsync_path(entry.path(), entry.is_directory());
  }
  if (ec) throw io_error("cannot list", temp_dir_, ec.value());

  if (plan_.files.size() > 1) {
    nlohmann::json weight_map = nlohmann::json::object();
    for (std::size_t t = 0; t < tensors_.size(); ++t) {
      weight_map[tensors_[t].name] = plan_.files[plan_.entries[t].shard];
    }
    const nlohmann::json index = {{"metadata", {{"total_size", plan_.total_size}}},
                                  {"weight_map", std::move(weight_map)}};
    write_whole_file(temp_dir_ / k_index_file, index.dump(2) + "\n");
  }
  fsync_path(temp_dir_, true);

  // rename() atomically replaces a missing or empty directory; a non-empty one is moved aside.
  if (::rename(temp_dir_.c_str(), out_dir_.c_str()) != 0) {
    const int err = errno;
    if (err != ENOTEMPTY && err != EEXIST) {
      throw io_error(fmt::format("cannot rename '{}' to the output directory", temp_dir_.string()),
                     out_dir_, err);
    }
    if (!options_.force) {
      throw Error(ErrorKind::io,
                  fmt::format("output directory '{}' exists and is not empty; use --force to "
                              "replace it",
                              out_dir_.string()),
                  ErrorContext{.file = out_dir_.string()});
    }
    if (const std::string why = not_a_previous_output(out_dir_); !why.empty()) {
      throw Error(ErrorKind::io,
                  fmt::format("output directory '{}' changed during the merge and is no longer "
                              "a previous llmerge output ({}); not replacing it",
                              out_dir_.string(), why),
                  ErrorContext{.file = out_dir_.string()});
    }
    const fs::path old_dir = sibling(out_dir_, ".llmerge-old-");
    fs::remove_all(old_dir, ec);
    if (::rename(out_dir_.c_str(), old_dir.c_str()) != 0) {
      throw io_error("cannot move the existing output directory aside", out_dir_, errno);
    }
    if (::rename(temp_dir_.c_str(), out_dir_.c_str()) != 0) {
      const int rename_err = errno;
      ::rename(old_dir.c_str(), out_dir_.c_str());  // best effort: put the old folder back
      throw io_error("cannot rename the temporary directory into place", out_dir_, rename_err);
    }
    committed_ = true;
    fs::remove_all(old_dir, ec);
    if (ec) throw io_error("model written, but cannot remove the old output", old_dir, ec.value());
  }
  committed_ = true;
  fsync_path(out_dir_.parent_path(), true);
}

}  // namespace llmerge
