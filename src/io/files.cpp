#include "io/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include <fmt/core.h>

#include "core/error.h"

namespace llmerge {

namespace fs = std::filesystem;

namespace {

std::string errno_text(int err) {
  return std::generic_category().message(err);
}

std::string_view file_type_name(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISDIR(mode)) return "a directory";
  return "not a regular file";
}

void check_json_depth(const std::string& text, const fs::path& path) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > k_json_depth_max) {
        throw Error(ErrorKind::format,
                    fmt::format("JSON is nested more than {} levels deep", k_json_depth_max),
                    {.file = path.string()});
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

// True if `inner` is `outer` or below it (both canonical).
bool is_within(const fs::path& inner, const fs::path& outer) {
  const auto rel = inner.lexically_relative(outer);
  return !rel.empty() && *rel.begin() != "..";
}

}  // namespace

std::string read_regular_file(const fs::path& path, std::uint64_t size_max) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    throw Error(ErrorKind::io, fmt::format("cannot open: {}", errno_text(errno)),
                {.file = path.string()});
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw Error(ErrorKind::io, fmt::format("cannot stat: {}", errno_text(errno)),
                {.file = path.string()});
  }
  if (!S_ISREG(st.st_mode)) {
    throw Error(
        ErrorKind::io,
        fmt::format("is {}, not a regular file; refusing to read it", file_type_name(st.st_mode)),
        {.file = path.string()});
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > size_max) {
    throw Error(
        ErrorKind::format,
        fmt::format("file is {} bytes, over the {} byte limit for a side file", size, size_max),
        {.file = path.string()});
  }
  std::string text(static_cast<std::size_t>(size), '\0');
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorKind::io, fmt::format("cannot read: {}", errno_text(errno)),
                  {.file = path.string()});
    }
    if (n == 0) break;  // shrank while reading: parse what is there
    done += static_cast<std::size_t>(n);
  }
  text.resize(done);
  return text;
}

nlohmann::json parse_json_file(const fs::path& path) {
  const std::string text = read_regular_file(path);
  check_json_depth(text, path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is 1-based and points just past the offending character.
    ErrorContext context{.file = path.string(), .line = 1, .column = 1};
    const std::size_t end = std::min<std::size_t>(e.byte > 0 ? e.byte - 1 : 0, text.size());
    for (std::size_t i = 0; i < end; ++i) {
      if (text[i] == '\n') {
        ++context.line;
        context.column = 1;
      } else {
        ++context.column;
      }
    }
    std::string what = e.what();
    // nlohmann prefixes "[json.exception.parse_error.101] parse error at line..: ".
    if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    throw Error(ErrorKind::format, "invalid JSON: " + what, context);
  } catch (const nlohmann::json::exception& e) {
    // E.g. out_of_range 406, a number too large for a double ("1e999").
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    throw Error(ErrorKind::format, "invalid JSON: " + what, {.file = path.string()});
  }
}

std::optional<fs::path> find_side_file(const fs::path& dir, std::string_view name) {
  const fs::path path = dir / name;
  std::error_code ec;
  const auto link = fs::symlink_status(path, ec);
  if (!fs::exists(link)) return std::nullopt;
  const fs::path real_dir = fs::canonical(dir, ec);
  if (ec) throw Error(ErrorKind::io, "cannot resolve: " + ec.message(), {.file = dir.string()});
  const fs::path real = fs::canonical(path, ec);
  if (ec) {
    throw Error(ErrorKind::io,
                fmt::format("side file '{}' is a dangling symlink ({}); the download is probably "
                            "incomplete",
                            name, ec.message()),
                {.file = path.string()});
  }
  bool inside = is_within(real, real_dir);
  // A Hugging Face cache snapshot holds symlinks into <repo>/blobs/.
  const fs::path snapshots = real_dir.parent_path();
  if (!inside && snapshots.filename() == "snapshots" &&
      snapshots.parent_path().filename().string().starts_with("models--")) {
    inside = is_within(real, snapshots.parent_path() / "blobs");
  }
  if (!inside) {
    throw Error(ErrorKind::io,
                fmt::format("side file '{}' resolves to '{}', outside the model folder; llmerge "
                            "copies only files inside it (or in the Hugging Face cache's blob "
                            "store). Replace the symlink with the file",
                            name, real.string()),
                {.file = path.string()});
  }
  const auto st = fs::status(real, ec);
  if (!fs::is_regular_file(st)) {
    throw Error(ErrorKind::io,
                fmt::format("side file '{}' is not a regular file (a FIFO, device or folder); "
                            "refusing to copy it",
                            name),
                {.file = path.string()});
  }
  return real;
}

}  // namespace llmerge
