#include "io/model.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "io/files.h"

namespace llmerge {

namespace fs = std::filesystem;

namespace {

// A layer index above this is not a layer index (and would make count absurd).
constexpr std::int64_t k_layer_index_max = 1'000'000;

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos && name.find('\0') == std::string::npos;
}

// Error(io) for a shard the index names that is not there (or is a dangling symlink,
// as an interrupted Hugging Face download leaves behind).
void require_shard_exists(const fs::path& index, const fs::path& shard, const std::string& tensor) {
  std::error_code ec;
  const auto link = fs::symlink_status(shard, ec);
  if (fs::is_symlink(link) && !fs::exists(fs::status(shard, ec))) {
    throw Error(ErrorKind::io,
                fmt::format("shard '{}' (holding tensor '{}') is a dangling symlink; the download "
                            "is probably incomplete",
                            shard.filename().string(), tensor),
                {.file = index.string(), .tensor = tensor});
  }
  if (!fs::exists(link)) {
    throw Error(ErrorKind::io,
                fmt::format("shard '{}' (holding tensor '{}') does not exist; the download is "
                            "probably incomplete",
                            shard.filename().string(), tensor),
                {.file = index.string(), .tensor = tensor});
  }
}

const nlohmann::json* lookup(const nlohmann::json& config, std::string_view dotted) {
  const nlohmann::json* node = &config;
  while (true) {
    if (!node->is_object()) return nullptr;
    const auto dot = dotted.find('.');
    const auto it = node->find(std::string(dotted.substr(0, dot)));
    if (it == node->end()) return nullptr;
    node = &*it;
    if (dot == std::string_view::npos) return node;
    dotted.remove_prefix(dot + 1);
  }
}

// The key, then the key under "text_config" (multimodal configs nest the LM there).
const nlohmann::json* config_value(const nlohmann::json& config, std::string_view key) {
  for (const std::string& candidate : {std::string(key), "text_config." + std::string(key)}) {
    if (const auto* v = lookup(config, candidate); v && !v->is_null()) return v;
  }
  return nullptr;
}

std::optional<std::int64_t> as_int64(const nlohmann::json& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<std::int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<std::int64_t>();
  return std::nullopt;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.ends_with(suffix);
}

bool is_embedding_name(std::string_view name) {
  return ends_with(name, "embed_tokens.weight") || ends_with(name, "wte.weight") ||
         ends_with(name, "word_embeddings.weight") || ends_with(name, "tok_embeddings.weight");
}

}  // namespace

LayerStructure detect_layers(const std::vector<std::string>& tensor_names,
                             const nlohmann::json& config, const std::string& model_name) {
  struct Candidate {
    std::size_t tensors = 0;
    std::int64_t max_index = -1;
    std::set<std::int64_t> indices;
  };
  std::map<std::string, Candidate> candidates;
  for (const auto& name : tensor_names) {
    std::size_t start = 0;
    while (start < name.size()) {
      std::size_t dot = name.find('.', start);
      if (dot == std::string::npos) break;  // the last component is never the index
      const std::string_view part(name.data() + start, dot - start);
      const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
        return c >= '0' && c <= '9';
      });
      if (numeric) {
        std::int64_t index = 0;
        const auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), index);
        if (start > 0 && ec == std::errc() && index <= k_layer_index_max) {
          auto& c = candidates[name.substr(0, start - 1)];
          ++c.tensors;
          c.max_index = std::max(c.max_index, index);
          c.indices.insert(index);
        }
        break;  // only the first numeric component counts
      }
      start = dot + 1;
    }
  }

  LayerStructure out;
  std::optional<std::int64_t> config_count;
  for (const char* scope : {"", "text_config."}) {
    for (const char* key : {"num_hidden_layers", "n_layer", "num_layers"}) {
      const std::string dotted = std::string(scope) + key;
      if (const auto* v = lookup(config, dotted); v && (config_count = as_int64(*v))) {
        out.config_key = dotted;
        break;
      }
    }
    if (config_count) break;
  }

  // The most common prefix wins (ties: the alphabetically first, for determinism),
  // except that a prefix agreeing with the config's count is preferred: a
  // multimodal model has vision-tower layers too, and those may be more numerous.
  const Candidate* best = nullptr;
  const std::string* best_prefix = nullptr;
  for (int pass = 0; pass < 2 && !best; ++pass) {
    for (const auto& [prefix, c] : candidates) {
      if (pass == 0 && (!config_count || c.max_index + 1 != *config_count)) continue;
      if (!best || c.tensors > best->tensors) {
        best = &c;
        best_prefix = &prefix;
      }
    }
  }
  if (best) {
    out.prefix = *best_prefix;
    out.count = best->max_index + 1;
    // Every layer from 0 to the last must have tensors: a stray
    // "model.layers.1000000.x" must not make a model of a million layers.
    if (static_cast<std::int64_t>(best->indices.size()) != out.count) {
      std::int64_t gap = 0;
      while (best->indices.count(gap))
        ++gap;
      throw Error(ErrorKind::format,
                  fmt::format("model '{}': layer tensors are not contiguous: '{}.{}' has no "
                              "tensors but '{}.{}' does ({} of {} layer indices present); the "
                              "model folder is damaged or not a transformer",
                              model_name, out.prefix, gap, out.prefix, best->max_index,
                              best->indices.size(), out.count));
    }
  }
  if (config_count && *config_count != out.count) {
    const std::string found =
        out.prefix.empty() ? std::string("no tensor names look layered ('<prefix>.<index>.<name>')")
                           : fmt::format("the tensor names have {} layers ('{}.0' to '{}.{}')",
                                         out.count, out.prefix, out.prefix, out.count - 1);
    throw Error(ErrorKind::format, fmt::format("model '{}': config.json says {} = {} but {}",
                                               model_name, out.config_key, *config_count, found));
  }
  return out;
}

Model Model::open(const fs::path& path, std::string display_name) {
  Model m;
  m.path_ = path;
  m.display_name_ = display_name.empty() ? path.string() : std::move(display_name);

  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) {
    throw Error(ErrorKind::io, fmt::format("model '{}' not found", m.display_name_),
                {.file = path.string()});
  }

  std::vector<fs::path> shard_paths;
  fs::path index_path;
  nlohmann::json weight_map;
  if (fs::is_directory(status)) {
    const fs::path config_path = path / "config.json";
    if (fs::exists(config_path)) {
      m.config_ = parse_json_file(config_path);
      if (!m.config_.is_object()) {
        throw Error(ErrorKind::format, "config.json must be a JSON object",
                    {.file = config_path.string()});
      }
      m.has_config_ = true;
    }
    const fs::path single = path / "model.safetensors";
    index_path = path / "model.safetensors.index.json";
    // transformers' order: the single file first, then the index.
    if (fs::exists(fs::symlink_status(single, ec))) {
      shard_paths.push_back(single);
      index_path.clear();
    } else if (fs::exists(index_path)) {
      const nlohmann::json index = parse_json_file(index_path);
      const auto it = index.is_object() ? index.find("weight_map") : index.end();
      if (!index.is_object() || it == index.end() || !it->is_object()) {
        throw Error(ErrorKind::format, "index must be a JSON object with a \"weight_map\" object",
                    {.file = index_path.string()});
      }
      weight_map = *it;
      std::set<std::string> seen;
      for (const auto& [tensor, file] : weight_map.items()) {
        if (!file.is_string()) {
          throw Error(ErrorKind::format, "weight_map values must be shard file names (strings)",
                      {.file = index_path.string(), .tensor = tensor});
        }
        const auto& name = file.get_ref<const std::string&>();
        if (!is_plain_file_name(name)) {
          throw Error(ErrorKind::format,
                      fmt::format("weight_map names shard '{}', which is not a plain file name in "
                                  "the model folder",
                                  name),
                      {.file = index_path.string(), .tensor = tensor});
        }
        if (seen.insert(name).second) {
          require_shard_exists(index_path, path / name, tensor);
          shard_paths.push_back(path / name);
        }
      }
      std::sort(shard_paths.begin(), shard_paths.end());
    } else {
      std::string message = fmt::format(
          "model '{}' has no weights: looked for model.safetensors and "
          "model.safetensors.index.json in {}",
          m.display_name_, path.string());
      if (fs::exists(path / "pytorch_model.bin") ||
          fs::exists(path / "pytorch_model.bin.index.json")) {
        message += "; it has pytorch_model.bin, which is not supported: convert to safetensors";
      }
      throw Error(ErrorKind::io, message, {.file = path.string()});
    }
  } else {
    shard_paths.push_back(path);
  }

  m.files_.reserve(shard_paths.size());
  for (const auto& shard : shard_paths)
    m.files_.push_back(SafetensorsFile::open(shard));
  for (const auto& file : m.files_) {
    for (const auto& info : file.tensors()) {
      const auto [it, inserted] = m.tensors_.emplace(info.name, TensorRef{&file, &info});
      if (!inserted) {
        throw Error(ErrorKind::format,
                    fmt::format("tensor '{}' is in two shards, '{}' and '{}'", info.name,
                                it->second.file->path().filename().string(),
                                file.path().filename().string()),
                    {.file = index_path.string(), .tensor = info.name});
      }
    }
  }
  for (const auto& [tensor, file] : weight_map.items()) {
    const auto it = m.tensors_.find(tensor);
    const auto& shard = file.get_ref<const std::string&>();
    if (it == m.tensors_.end() || it->second.file->path().filename() != shard) {
      throw Error(ErrorKind::format,
                  fmt::format("weight_map puts tensor '{}' in shard '{}', which does not hold it",
                              tensor, shard),
                  {.file = index_path.string(), .tensor = tensor});
    }
  }

  m.finish();
  return m;
}

Model Model::stage_output(const fs::path& side_files, std::string display_name,
                          nlohmann::json config, SafetensorsFile header) {
  Model m;
  m.path_ = side_files;
  m.display_name_ = std::move(display_name);
  m.config_ = std::move(config);
  m.has_config_ = true;
  m.stage_output_ = true;
  m.files_.push_back(std::move(header));
  for (const auto& info : m.files_.front().tensors())
    m.tensors_.emplace(info.name, TensorRef{&m.files_.front(), &info});
  m.finish();
  return m;
}

void Model::finish() {
  Model& m = *this;
  m.link_quantized_weights();
  const auto names = m.tensor_names();
  m.layers_ = detect_layers(names, m.config_, m.display_name_);

  if (const auto* tie = config_value(m.config_, "tie_word_embeddings"); tie && tie->is_boolean()) {
    m.tied_embeddings_ = tie->get<bool>();
  } else {
    const bool has_embedding =
        std::any_of(names.begin(), names.end(), [](const auto& n) { return is_embedding_name(n); });
    const bool has_lm_head = std::any_of(names.begin(), names.end(), [](const auto& n) {
      return n == "lm_head.weight" || ends_with(n, ".lm_head.weight");
    });
    m.tied_embeddings_ = has_embedding && !has_lm_head;
  }

  auto& q = m.quantization_;
  q.quantized_tensor_count = static_cast<std::int64_t>(m.quantized_.size());
  const nlohmann::json* qc = config_value(m.config_, "quantization");
  if (!qc || !qc->is_object()) qc = config_value(m.config_, "quantization_config");
  if (qc && qc->is_object()) {
    q.quantized = true;
    auto int_field = [&](const char* key) {
      const auto it = qc->find(key);
      const auto v = it == qc->end() ? std::nullopt : as_int64(*it);
      return v && *v > 0 && *v <= (1 << 20) ? static_cast<int>(*v) : 0;
    };
    q.bits = int_field("bits");
    q.group_size = int_field("group_size");
    for (const char* key : {"mode", "quant_method"}) {
      if (const auto it = qc->find(key); it != qc->end() && it->is_string()) {
        q.mode = it->get<std::string>();
        break;
      }
    }
  }
  if (q.quantized_tensor_count > 0) q.quantized = true;
  if (q.quantized && q.mode.empty()) q.mode = "affine";
}

void Model::link_quantized_weights() {
  const nlohmann::json* qc = config_value(config_, "quantization");
  if (!qc || !qc->is_object()) qc = config_value(config_, "quantization_config");
  const ErrorContext at_config{.file = (path_ / "config.json").string()};
  if (qc && qc->is_object() && qc->contains("quant_method")) {
    const auto& method = (*qc)["quant_method"];
    throw Error(ErrorKind::unsupported,
                fmt::format("model '{}' is quantized with {}, which llmerge cannot read (it reads "
                            "MLX quantization); use the unquantized model",
                            display_name_, method.is_string() ? method.get<std::string>() : "?"),
                at_config);
  }
  auto int_field = [](const nlohmann::json& j, const char* key, int fallback) {
    const auto it = j.find(key);
    const auto v = it == j.end() ? std::nullopt : as_int64(*it);
    return v && *v > 0 && *v <= 1024 ? static_cast<int>(*v) : fallback;
  };
  auto params_from = [&](const nlohmann::json& j, QuantParams base) {
    base.bits = int_field(j, "bits", base.bits);
    base.group_size = int_field(j, "group_size", base.group_size);
    if (const auto it = j.find("mode"); it != j.end() && it->is_string()) {
      base.mode = parse_quant_mode(it->get<std::string>());
    }
    return base;
  };
  QuantParams global;  // mlx-lm's defaults: affine, 4 bits, groups of 64
  if (qc && qc->is_object()) global = params_from(*qc, global);

  std::vector<std::string> modules;
  for (const auto& [name, ref] : tensors_) {
    if (ends_with(name, ".scales")) modules.push_back(name.substr(0, name.size() - 7));
  }
  for (const auto& module : modules) {
    const ErrorContext at{.file = path_.string(), .tensor = module + ".weight"};
    QuantParams params = global;
    if (qc && qc->is_object()) {
      if (const auto it = qc->find(module); it != qc->end()) {
        if (it->is_boolean() && !it->get<bool>()) {
          throw Error(ErrorKind::format,
                      fmt::format("config.json says '{}' is not quantized, but the model has "
                                  "'{}.scales'",
                                  module, module),
                      at);
        }
        if (it->is_object()) params = params_from(*it, global);
      }
    }
    if (auto error = quant_params_error(params)) {
      throw Error(error->kind(), fmt::format("'{}': {}", module, error->message()), at);
    }
    auto weight = tensors_.find(module + ".weight");
    auto scales = tensors_.find(module + ".scales");
    auto biases = tensors_.find(module + ".biases");
    if (weight == tensors_.end() || weight->second.info->dtype != DType::U32 ||
        weight->second.info->shape.empty()) {
      throw Error(ErrorKind::format,
                  fmt::format("'{}.scales' needs a packed uint32 '{}.weight' (MLX quantization)",
                              module, module),
                  at);
    }
    const TensorInfo& w = *weight->second.info;
    const TensorInfo& sc = *scales->second.info;
    const auto layout = quant_row_layout_from_words(params, w.shape.back());
    auto groups_shape = w.shape;
    groups_shape.back() = layout.groups;
    const bool affine = params.mode == QuantMode::affine;
    const bool scale_dtype_ok =
        affine ? (sc.dtype == DType::F16 || sc.dtype == DType::BF16 || sc.dtype == DType::F32)
               : (sc.dtype == DType::U8 || sc.dtype == DType::F8_E8M0);
    if (sc.shape != groups_shape || !scale_dtype_ok) {
      throw Error(ErrorKind::format,
                  fmt::format("'{}.scales' has {} {}; {}-bit groups of {} need {}", module,
                              dtype_name(sc.dtype), fmt::join(sc.shape, "x"), params.bits,
                              params.group_size, fmt::join(groups_shape, "x")),
                  at);
    }
    QuantizedWeight q;
    q.params = params;
    q.scales_file = scales->second.file;
    q.scales = scales->second.info;
    if (affine) {
      if (biases == tensors_.end() || biases->second.info->shape != groups_shape ||
          biases->second.info->dtype != sc.dtype) {
        throw Error(
            ErrorKind::format,
            fmt::format("'{}.biases' is missing or does not match '{}.scales'", module, module),
            at);
      }
      q.biases_file = biases->second.file;
      q.biases = biases->second.info;
    }
    q.shape = w.shape;
    q.shape.back() = layout.cols;
    q.dtype = affine ? sc.dtype : DType::BF16;
    weight->second.quant = &(quantized_[module] = std::move(q));
    tensors_.erase(scales);
    if (affine) tensors_.erase(biases);
  }
}

const TensorRef* Model::find(std::string_view name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::vector<std::string> Model::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, ref] : tensors_)
    names.push_back(name);
  return names;
}

std::uint64_t Model::parameter_count() const {
  std::uint64_t total = 0;
  for (const auto& [name, ref] : tensors_) {
    std::uint64_t n = 1;
    for (auto d : ref.shape())
      n *= static_cast<std::uint64_t>(d);  // logical, if quantized
    total += n;
  }
  return total;
}

std::uint64_t Model::size_on_disk() const {
  std::uint64_t total = 0;
  for (const auto& file : files_)
    total += file.file_size();
  return total;
}

std::vector<std::pair<DType, std::size_t>> Model::dtype_counts() const {
  std::map<DType, std::size_t> counts;
  for (const auto& [name, ref] : tensors_)
    ++counts[ref.info->dtype];
  std::vector<std::pair<DType, std::size_t>> out(counts.begin(), counts.end());
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

std::optional<std::string> Model::config_string(std::string_view key) const {
  const auto* v = config_value(config_, key);
  if (!v || !v->is_string()) return std::nullopt;
  return v->get<std::string>();
}

std::optional<std::int64_t> Model::config_int(std::string_view key) const {
  const auto* v = config_value(config_, key);
  return v ? as_int64(*v) : std::nullopt;
}

}  // namespace llmerge
