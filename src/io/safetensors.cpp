#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <optional>
#include <system_error>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/utf8.h"

namespace llmerge {

// RAII file descriptor, shared by copies of a SafetensorsFile.
class FileHandle {
 public:
  explicit FileHandle(int fd) : fd_(fd) {}
  ~FileHandle() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

namespace {

constexpr std::size_t k_quoted_max = 200;  // longest name echoed into a message
constexpr std::size_t k_shape_dims_shown = 8;
constexpr std::uint64_t k_pread_chunk = std::uint64_t{1} << 30;

std::string with_commas(std::uint64_t v) {
  std::string digits = std::to_string(v);
  std::string out;
  out.reserve(digits.size() + digits.size() / 3);
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Names come from hostile headers: escape control bytes so they cannot drive
// the terminal, and cut very long ones (at a UTF-8 boundary).
std::string quote_name(std::string_view s) {
  bool cut = false;
  if (s.size() > k_quoted_max) {
    std::size_t n = k_quoted_max;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80)
      --n;
    s = s.substr(0, n);
    cut = true;
  }
  std::string out = "'";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  out += cut ? "...'" : "'";
  return out;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i == k_shape_dims_shown) {
      out += fmt::format(", ... ({} dims)", shape.size());
      break;
    }
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::uint64_t read_le64(std::string_view b) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(b[static_cast<std::size_t>(i)]);
  return v;
}

// What a file with an impossible header length most likely is.
std::string likely_cause(std::string_view prefix, std::string_view otherwise) {
  if (prefix.starts_with("version https://git-lfs")) {
    return "this is a Git LFS pointer file, not the weights: run 'git lfs pull' in the model "
           "folder";
  }
  if (prefix.starts_with("<")) return "this looks like an HTML or XML page: a failed download?";
  if (prefix.starts_with("{")) return "this looks like a JSON file, not safetensors";
  return std::string(otherwise);
}

// Checks the 8-byte length against the cap and the file size, before anything
// of that size is allocated. Returns N.
std::uint64_t check_header_length(std::string_view prefix, std::uint64_t file_size,
                                  const std::string& display_name) {
  const ErrorContext ctx{display_name};
  if (file_size < 8) {
    throw Error(ErrorKind::format,
                fmt::format("the file is {} bytes, too short for a safetensors file (it needs at "
                            "least the 8-byte header length): empty or truncated download?",
                            file_size),
                ctx);
  }
  if (prefix.size() < 8) {
    throw Error(ErrorKind::internal, "parse_header: the prefix holds fewer than 8 bytes", ctx);
  }
  const std::uint64_t n = read_le64(prefix);
  if (n > k_safetensors_header_max) {
    throw Error(ErrorKind::format,
                fmt::format("header length {} is over the {}-byte limit ({})", with_commas(n),
                            with_commas(k_safetensors_header_max),
                            likely_cause(prefix, "not a safetensors file, or a corrupt one")),
                ctx);
  }
  if (n > file_size - 8) {
    throw Error(ErrorKind::format,
                fmt::format("header length says {} bytes but only {} bytes follow the 8-byte "
                            "length ({})",
                            with_commas(n), with_commas(file_size - 8),
                            likely_cause(prefix, "truncated download?")),
                ctx);
  }
  if (n == 0) {
    throw Error(ErrorKind::format, "header length is 0: the JSON header is missing", ctx);
  }
  return n;
}

// The fields of a tensor entry, as indices into field_name() and bits of RawEntry::seen.
constexpr int k_field_dtype = 0;
constexpr int k_field_shape = 1;
constexpr int k_field_offsets = 2;
constexpr int k_field_count = 3;

std::string_view field_name(int f) {
  static constexpr std::string_view k_names[] = {"dtype", "shape", "data_offsets"};
  return k_names[f];
}

std::string known_dtypes() {
  std::string out;
  for (int i = 0; i <= static_cast<int>(DType::U64); ++i) {
    if (i > 0) out += ", ";
    out += dtype_name(static_cast<DType>(i));
  }
  return out;
}

// One tensor entry as it comes out of the JSON, before the size checks.
struct RawEntry {
  std::string name;
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::vector<std::uint64_t> offsets;
  unsigned seen = 0;  // bit per field
};

// nlohmann SAX handler that checks the schema as it goes. A DOM parse would
// silently merge duplicate keys, and its callback mode rescans the parent
// object on every closing brace (quadratic in the tensor count).
class HeaderParser {
 public:
  HeaderParser(const std::string& display_name, std::vector<RawEntry>& entries,
               std::map<std::string, std::string>& metadata)
      : display_name_(display_name), entries_(entries), metadata_(metadata) {}

  bool null() {
    // "__metadata__": null is no metadata: the reference parser's field is an
    // Option, and mx.save_safetensors writes null when given none (mlx-lm's
    // LoRA adapters.safetensors).
    if (state_ == State::root && in_metadata_key_) return true;
    return scalar("null");
  }
  bool boolean(bool) { return scalar("a boolean"); }
  bool number_integer(std::int64_t v) {
    if (v >= 0) return number_unsigned(static_cast<std::uint64_t>(v));
    if (state_ == State::shape || state_ == State::offsets) {
      return element(std::nullopt, std::to_string(v), "a negative number");
    }
    return scalar("a number");
  }
  bool number_unsigned(std::uint64_t v) {
    if (state_ == State::shape || state_ == State::offsets) {
      return element(v, std::to_string(v), "");
    }
    return scalar("a number");
  }
  bool number_float(double, const std::string& text) {
    if (state_ == State::shape || state_ == State::offsets) {
      return element(std::nullopt, text, "not a 64-bit integer");
    }
    return scalar("a number");
  }
  bool string(std::string& s) {
    if (state_ == State::metadata) {
      metadata_.emplace(std::move(key_), std::move(s));
      return true;
    }
    if (state_ == State::entry && field_ == k_field_dtype) {
      entries_.back().dtype = std::move(s);
      return true;
    }
    return scalar("a string");
  }
  bool binary(nlohmann::json::binary_t&) { return scalar("binary data"); }

  bool start_object(std::size_t) {
    switch (state_) {
      case State::start:
        state_ = State::root;
        return true;
      case State::root:
        if (in_metadata_key_) {
          state_ = State::metadata;
        } else {
          state_ = State::entry;
        }
        return true;
      default:
        return scalar("an object");
    }
  }
  bool end_object() {
    switch (state_) {
      case State::root:
        state_ = State::done;
        break;
      case State::metadata:
        state_ = State::root;
        break;
      case State::entry:
        finish_entry();
        state_ = State::root;
        break;
      default:
        break;
    }
    return true;
  }
  bool start_array(std::size_t) {
    if (state_ == State::start) fail("the header is a JSON array, not an object");
    if (state_ == State::entry && field_ == k_field_shape) {
      state_ = State::shape;
      return true;
    }
    if (state_ == State::entry && field_ == k_field_offsets) {
      state_ = State::offsets;
      return true;
    }
    return scalar("an array");
  }
  bool end_array() {
    if (state_ == State::offsets && entries_.back().offsets.size() != 2) {
      fail(fmt::format("tensor {} has {} data_offsets; it needs exactly two, [BEGIN, END]",
                       quote_name(entries_.back().name), entries_.back().offsets.size()),
           entries_.back().name);
    }
    state_ = State::entry;
    return true;
  }

  bool key(std::string& k) {
    if (state_ == State::root) {
      in_metadata_key_ = k == "__metadata__";
      if (in_metadata_key_) {
        if (seen_metadata_) fail("'__metadata__' appears twice in the header");
        seen_metadata_ = true;
        return true;
      }
      if (!names_.insert(k).second) {
        fail(fmt::format("tensor {} appears twice in the header (duplicate names are not allowed; "
                         "the file was written by a broken tool or tampered with)",
                         quote_name(k)),
             k);
      }
      entries_.push_back(RawEntry{k});
      return true;
    }
    if (state_ == State::metadata) {
      if (metadata_.contains(k)) {
        fail(fmt::format("__metadata__ has key {} twice (duplicate keys are not allowed)",
                         quote_name(k)));
      }
      key_ = std::move(k);
      return true;
    }
    // state_ == entry: the only other place the grammar allows a key.
    RawEntry& e = entries_.back();
    field_ = -1;
    for (int f = 0; f < k_field_count; ++f) {
      if (k == field_name(f)) field_ = f;
    }
    if (field_ < 0) {
      fail(fmt::format("tensor {} has an unknown field {} (a tensor entry has exactly dtype, "
                       "shape and data_offsets)",
                       quote_name(e.name), quote_name(k)),
           e.name);
    }
    if (e.seen & (1u << field_)) {
      fail(fmt::format("tensor {} has field '{}' twice (duplicate keys are not allowed)",
                       quote_name(e.name), field_name(field_)),
           e.name);
    }
    e.seen |= 1u << field_;
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::json::exception& ex) {
    std::string what = ex.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " tag.
    if (const auto p = what.find("] "); what.starts_with("[json.") && p != std::string::npos) {
      what.erase(0, p + 2);
    }
    // "last read: '...'" echoes the token, which can be megabytes long.
    if (what.size() > 2 * k_quoted_max) what = what.substr(0, 2 * k_quoted_max) + "...";
    fail(fmt::format("the header is not valid JSON (near header byte {}): {}",
                     with_commas(position), what));
  }

 private:
  enum class State { start, root, metadata, entry, shape, offsets, done };

  [[noreturn]] void fail(const std::string& message, const std::string& tensor = {}) {
    throw Error(ErrorKind::format, message, ErrorContext{display_name_, 0, 0, tensor});
  }

  // A value (scalar or container) of type `what` arrived where the schema
  // does not allow one of that type.
  bool scalar(std::string_view what) {
    switch (state_) {
      case State::start:
        fail(fmt::format("the header is {}, not a JSON object", what));
      case State::root:
        if (in_metadata_key_) {
          fail(fmt::format("__metadata__ is {}; it must be an object of string to string", what));
        }
        fail(fmt::format("tensor {} is {}, not an object with dtype, shape and data_offsets",
                         quote_name(entries_.back().name), what),
             entries_.back().name);
      case State::metadata:
        fail(
            fmt::format("__metadata__ value for key {} is {}, not a string (safetensors metadata "
                        "is a string-to-string map)",
                        quote_name(key_), what));
      case State::entry: {
        const std::string& name = entries_.back().name;
        fail(fmt::format("tensor {}: '{}' is {}, not {}", quote_name(name), field_name(field_),
                         what, field_ == k_field_dtype ? "a string" : "an array of integers"),
             name);
      }
      case State::shape:
      case State::offsets:
        return element(std::nullopt, "", what);
      case State::done:
        break;
    }
    fail(fmt::format("unexpected {} after the header object", what));
  }

  bool element(std::optional<std::uint64_t> v, std::string_view text, std::string_view problem) {
    RawEntry& e = entries_.back();
    const bool is_shape = state_ == State::shape;
    if (!v) {
      const std::string holds =
          text.empty() ? std::string(problem) : fmt::format("{} ({})", text.substr(0, 40), problem);
      fail(fmt::format("tensor {}: {} must hold non-negative integers, but it holds {}",
                       quote_name(e.name), is_shape ? "shape" : "data_offsets", holds),
           e.name);
    }
    if (is_shape) {
      if (*v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        fail(fmt::format("tensor {}: dimension {} is too large (corrupt or hostile header)",
                         quote_name(e.name), with_commas(*v)),
             e.name);
      }
      e.shape.push_back(static_cast<std::int64_t>(*v));
    } else {
      if (e.offsets.size() == 2) {
        fail(fmt::format("tensor {} has more than two data_offsets; it needs exactly [BEGIN, END]",
                         quote_name(e.name)),
             e.name);
      }
      e.offsets.push_back(*v);
    }
    return true;
  }

  void finish_entry() {
    const RawEntry& e = entries_.back();
    for (int f = 0; f < k_field_count; ++f) {
      if (!(e.seen & (1u << f))) {
        fail(fmt::format("tensor {} has no '{}' (a tensor entry needs dtype, shape and "
                         "data_offsets)",
                         quote_name(e.name), field_name(f)),
             e.name);
      }
    }
  }

  const std::string& display_name_;
  std::vector<RawEntry>& entries_;
  std::map<std::string, std::string>& metadata_;
  State state_ = State::start;
  bool in_metadata_key_ = false;
  bool seen_metadata_ = false;
  int field_ = -1;
  std::string key_;
  std::unordered_set<std::string> names_;
};

// Size checks for one entry (overflow-checked, as the reference's
// ValidationOverflow / MisalignedSlice / TensorInvalidInfo).
TensorInfo make_tensor(RawEntry&& e, const std::string& display_name) {
  const ErrorContext ctx{display_name, 0, 0, e.name};
  const std::string name = quote_name(e.name);
  const auto dtype = dtype_from_name(e.dtype);
  if (!dtype) {
    throw Error(ErrorKind::format,
                fmt::format("tensor {} has unknown dtype {} (safetensors knows {}): a newer "
                            "format, or a corrupt header?",
                            name, quote_name(e.dtype), known_dtypes()),
                ctx);
  }
  const std::uint64_t begin = e.offsets[0];
  const std::uint64_t end = e.offsets[1];
  if (end < begin) {
    throw Error(ErrorKind::format,
                fmt::format("tensor {} has data_offsets [{}, {}]: END is before BEGIN (corrupt "
                            "header)",
                            name, with_commas(begin), with_commas(end)),
                ctx);
  }
  std::uint64_t numel = 1;
  for (std::int64_t d : e.shape) {
    if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(d), &numel) ||
        numel > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      throw Error(ErrorKind::format,
                  fmt::format("tensor {} has shape {} whose element count overflows 64 bits "
                              "(corrupt or hostile header)",
                              name, shape_text(e.shape)),
                  ctx);
    }
  }
  std::uint64_t bits = 0;
  if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(dtype_bits(*dtype)), &bits)) {
    throw Error(ErrorKind::format,
                fmt::format("tensor {} is {} {}, whose size in bits overflows 64 bits (corrupt or "
                            "hostile header)",
                            name, e.dtype, shape_text(e.shape)),
                ctx);
  }
  if (bits % 8 != 0) {
    throw Error(ErrorKind::format,
                fmt::format("tensor {} is {} {}: {} elements of {} bits is {} bits, not a whole "
                            "number of bytes",
                            name, e.dtype, shape_text(e.shape), with_commas(numel),
                            dtype_bits(*dtype), with_commas(bits)),
                ctx);
  }
  if (end - begin != bits / 8) {
    throw Error(ErrorKind::format,
                fmt::format("tensor {} is {} {}, which takes {} bytes, but its data_offsets [{}, "
                            "{}] span {} bytes (corrupt header, or a bug in the tool that wrote "
                            "it?)",
                            name, e.dtype, shape_text(e.shape), with_commas(bits / 8),
                            with_commas(begin), with_commas(end), with_commas(end - begin)),
                ctx);
  }
  return TensorInfo{std::move(e.name), *dtype, std::move(e.shape), begin, end};
}

// After sorting by offset the tensors must tile the data buffer exactly: no
// gaps (a polyglot file could hide a payload there), no overlaps (aliasing
// tensors amplify memory), nothing past the end, nothing after the last one.
void check_tiling(const std::vector<TensorInfo>& tensors, std::uint64_t data_offset,
                  std::uint64_t file_size, const std::string& display_name) {
  const std::uint64_t data_size = file_size - data_offset;
  std::uint64_t expected = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : tensors) {
    const ErrorContext ctx{display_name, 0, 0, t.name};
    if (t.begin > expected) {
      const std::string where = prev ? fmt::format("after tensor {} (which ends at data offset {})",
                                                   quote_name(prev->name), with_commas(expected))
                                     : std::string("at the start of the data buffer");
      throw Error(ErrorKind::format,
                  fmt::format("there are {} unused bytes {}, before tensor {} (data_offsets [{}, "
                              "{}]); the data must be covered without holes (corrupt header, or "
                              "hidden data?)",
                              with_commas(t.begin - expected), where, quote_name(t.name),
                              with_commas(t.begin), with_commas(t.end)),
                  ctx);
    }
    if (t.begin < expected) {
      throw Error(ErrorKind::format,
                  fmt::format("tensor {} (data_offsets [{}, {}]) overlaps tensor {}, which ends at "
                              "data offset {}; tensors must not share bytes (corrupt or hostile "
                              "header)",
                              quote_name(t.name), with_commas(t.begin), with_commas(t.end),
                              quote_name(prev->name), with_commas(expected)),
                  ctx);
    }
    if (t.end > data_size) {
      throw Error(
          ErrorKind::format,
          fmt::format("tensor {} ends at byte {} but the file has {} bytes (truncated "
                      "download?)",
                      quote_name(t.name), with_commas(data_offset + t.end), with_commas(file_size)),
          ctx);
    }
    expected = t.end;
    prev = &t;
  }
  if (expected != data_size) {
    const std::string after =
        prev ? fmt::format("after the end of the last tensor, {} (byte {})", quote_name(prev->name),
                           with_commas(data_offset + expected))
             : std::string("after the header, which lists no tensors");
    throw Error(ErrorKind::format,
                fmt::format("the file has {} unexpected bytes {}; the file is {} bytes (data "
                            "appended to the file, or a corrupt header?)",
                            with_commas(data_size - expected), after, with_commas(file_size)),
                ErrorContext{display_name});
  }
}

std::string errno_text(int err) {
  return std::generic_category().message(err);
}

// Reads up to `len` bytes at `pos`, retrying partial reads and EINTR. Returns
// the count read, short only at end of file. Sets errno and returns -1 on error.
std::int64_t pread_full(int fd, void* dst, std::uint64_t len, std::uint64_t pos) {
  auto* out = static_cast<char*>(dst);
  std::uint64_t done = 0;
  while (done < len) {
    const std::uint64_t want = std::min(len - done, k_pread_chunk);
    const ssize_t got =
        ::pread(fd, out + done, static_cast<std::size_t>(want), static_cast<off_t>(pos + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (got == 0) break;
    done += static_cast<std::uint64_t>(got);
  }
  return static_cast<std::int64_t>(done);
}

}  // namespace

std::int64_t TensorInfo::numel() const {
  std::int64_t n = 1;
  for (std::int64_t d : shape)
    n *= d;
  return n;
}

SafetensorsFile SafetensorsFile::parse_header(std::string_view prefix, std::uint64_t file_size,
                                              const std::string& display_name) {
  const std::uint64_t n = check_header_length(prefix, file_size, display_name);
  const ErrorContext ctx{display_name};
  if (prefix.size() - 8 < n) {
    throw Error(ErrorKind::internal,
                fmt::format("parse_header: the prefix holds {} bytes but the header needs {}",
                            prefix.size(), 8 + n),
                ctx);
  }
  const std::string_view header = prefix.substr(8, n);
  if (const auto bad = find_invalid_utf8(header); bad != std::string_view::npos) {
    throw Error(
        ErrorKind::format,
        fmt::format("the header is not valid UTF-8 (byte 0x{:02x} at header byte {}): not a "
                    "safetensors file, or a corrupt one",
                    static_cast<unsigned char>(header[bad]), with_commas(bad)),
        ctx);
  }

  // nlohmann stops at a NUL as if the input ended there, which would let
  // bytes after it escape validation. JSON never has a raw NUL.
  if (const auto nul = header.find('\0'); nul != std::string_view::npos) {
    throw Error(ErrorKind::format,
                fmt::format("the header is not valid JSON: NUL byte at header byte {} (padded with "
                            "0x00 instead of spaces?)",
                            with_commas(nul)),
                ctx);
  }

  SafetensorsFile file;
  file.display_name_ = display_name;
  file.data_offset_ = 8 + n;
  file.file_size_ = file_size;

  std::vector<RawEntry> entries;
  HeaderParser parser(display_name, entries, file.metadata_);
  nlohmann::json::sax_parse(header.begin(), header.end(), &parser);

  file.tensors_.reserve(entries.size());
  for (RawEntry& e : entries)
    file.tensors_.push_back(make_tensor(std::move(e), display_name));
  std::sort(file.tensors_.begin(), file.tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) {
              if (a.begin != b.begin) return a.begin < b.begin;
              if (a.end != b.end) return a.end < b.end;
              return a.name < b.name;
            });
  check_tiling(file.tensors_, file.data_offset_, file_size, display_name);
  for (std::size_t i = 0; i < file.tensors_.size(); ++i) {
    file.by_name_.emplace(file.tensors_[i].name, i);
  }
  return file;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string display_name = path.string();
  const ErrorContext ctx{display_name};
  // O_NONBLOCK: opening a FIFO (or a tty) must not wait for a writer; it is
  // refused below as not a regular file. For regular files the flag is a no-op.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    throw Error(ErrorKind::io, fmt::format("cannot open: {}", errno_text(err)), ctx);
  }
  auto handle = std::make_shared<FileHandle>(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    throw Error(ErrorKind::io, fmt::format("cannot stat: {}", errno_text(err)), ctx);
  }
  if (!S_ISREG(st.st_mode)) {
    throw Error(
        ErrorKind::io,
        S_ISDIR(st.st_mode) ? "is a directory, not a safetensors file" : "is not a regular file",
        ctx);
  }
  const auto file_size = static_cast<std::uint64_t>(st.st_size);

  auto read_prefix = [&](std::uint64_t len) {
    std::string buf(static_cast<std::size_t>(len), '\0');
    const std::int64_t got = pread_full(fd, buf.data(), len, 0);
    if (got < 0) {
      const int err = errno;
      throw Error(ErrorKind::io, fmt::format("cannot read the header: {}", errno_text(err)), ctx);
    }
    if (static_cast<std::uint64_t>(got) != len) {
      throw Error(ErrorKind::io,
                  fmt::format("the file ended at byte {} while reading its {}-byte header (was it "
                              "truncated or replaced while being read?)",
                              with_commas(static_cast<std::uint64_t>(got)), with_commas(len)),
                  ctx);
    }
    return buf;
  };

  // The length is checked against the cap and the file size before the
  // header buffer is allocated.
  // 64 bytes rather than 8, so that likely_cause() can recognise the file.
  const std::string length_bytes = read_prefix(std::min<std::uint64_t>(file_size, 64));
  const std::uint64_t n = check_header_length(length_bytes, file_size, display_name);
  SafetensorsFile file = parse_header(read_prefix(8 + n), file_size, display_name);
  file.path_ = path;
  file.file_ = std::move(handle);
#ifdef POSIX_FADV_SEQUENTIAL
  // Tensors are mostly streamed in file order; the hint only affects readahead.
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
  return file;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::read(const TensorInfo& t, std::uint64_t offset, void* dst,
                           std::uint64_t len) const {
  const ErrorContext ctx{display_name_, 0, 0, t.name};
  std::uint64_t stop = 0;
  if (__builtin_add_overflow(offset, len, &stop) || stop > t.nbytes() || t.end < t.begin ||
      t.end > file_size_ - data_offset_) {
    throw Error(ErrorKind::internal,
                fmt::format("read of bytes [{}, {} + {}) of tensor {} is outside its {} bytes, or "
                            "the tensor is not from this file",
                            offset, offset, len, quote_name(t.name), t.nbytes()),
                ctx);
  }
  if (!file_) {
    throw Error(ErrorKind::internal, "read() on a SafetensorsFile made by parse_header()", ctx);
  }
  if (len == 0) return;
  const std::uint64_t pos = data_offset_ + t.begin + offset;
  const std::int64_t got = pread_full(file_->fd(), dst, len, pos);
  if (got < 0) {
    const int err = errno;
    throw Error(ErrorKind::io,
                fmt::format("cannot read tensor {}: {}", quote_name(t.name), errno_text(err)), ctx);
  }
  if (static_cast<std::uint64_t>(got) != len) {
    struct stat st {};
    const std::string now =
        ::fstat(file_->fd(), &st) == 0
            ? fmt::format("it is now {} bytes", with_commas(static_cast<std::uint64_t>(st.st_size)))
            : std::string("its size is unknown");
    throw Error(ErrorKind::io,
                fmt::format("the file ended at byte {} while reading tensor {} (bytes {} to {}); "
                            "it had {} bytes when opened and {}: was it truncated or replaced "
                            "while being read?",
                            with_commas(pos + static_cast<std::uint64_t>(got)), quote_name(t.name),
                            with_commas(pos), with_commas(pos + len), with_commas(file_size_), now),
                ctx);
  }
}

}  // namespace llmerge
