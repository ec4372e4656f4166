// Small untrusted files next to the weights: config.json, the index, the
// tokenizer and generation config, chat templates, Hugging Face cache refs.
//
// Every one may be hostile (downloaded), so reading one follows the rules of
// docs/RELIABILITY.md: it must be a regular file (a FIFO or device is refused
// without blocking: the file is opened O_NONBLOCK and checked with fstat),
// it has a size cap, and JSON is parsed with a depth cap, since nlohmann's
// copy, compare and dump recurse and a file of "[[[[..." overflows the stack.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace llmerge {

// config.json, index files and tokenizer files of real models are kilobytes
// to tens of MB (Gemma's tokenizer.json is 34 MB); the reference safetensors
// parser caps its JSON header at the same 100 MB.
inline constexpr std::uint64_t k_side_file_max = 100'000'000;
// Real JSON side files nest a few levels.
inline constexpr std::size_t k_json_depth_max = 1000;

// The whole file. Error(io) if it cannot be opened or is not a regular file
// ("is a FIFO", "is a device"), Error(format) if it is over `size_max` bytes.
std::string read_regular_file(const std::filesystem::path& path,
                              std::uint64_t size_max = k_side_file_max);

// read_regular_file + the depth cap + parse errors as Error(format) with
// file:line:col. Any JSON value (callers check the type they need).
nlohmann::json parse_json_file(const std::filesystem::path& path);

// Finds side file `name` of the model folder `dir` for copying or reading.
// nullopt if there is none. Otherwise the canonical path of the file it
// resolves to, which must be a regular file inside `dir`, or, for a Hugging
// Face cache snapshot (".../models--org--name/snapshots/<commit>"), inside
// that repository's "blobs" folder, where the cache's symlinks point. Anything
// else (a symlink to /etc/passwd, a FIFO, a directory) is Error(io) naming
// the file: such a folder was not made by a download.
std::optional<std::filesystem::path> find_side_file(const std::filesystem::path& dir,
                                                    std::string_view name);

}  // namespace llmerge
