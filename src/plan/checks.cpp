// Whole-plan checks that need the finished tensor list: the tokenizer must
// fit the embeddings, the config donor must have a config.json, and the
// chunk buffers must fit in memory. Each reports through Diagnostics.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "core/format.h"
#include "io/files.h"
#include "io/sentencepiece.h"
#include "plan/planner_internal.h"
#include "plan/vocabulary.h"

namespace llmerge {

namespace {

// Largest id + 1 of a JSON id (0 if it is not a non-negative integer).
std::uint64_t id_end(const nlohmann::json& id) {
  if (id.is_number_unsigned()) {
    const auto v = id.get<std::uint64_t>();
    return v == UINT64_MAX ? v : v + 1;
  }
  if (id.is_number_integer() && id.get<std::int64_t>() >= 0) {
    return static_cast<std::uint64_t>(id.get<std::int64_t>()) + 1;
  }
  return 0;
}

// tokenizer.json's token ids without building the document: the entries of
// model.vocab (an object of piece: id, or Unigram's array of [piece, score])
// and the largest id + 1 among model.vocab's values and added_tokens[*].id.
// A repeated key counts each time (a document would keep the last).
class TokenCounter final : public nlohmann::json_sax<nlohmann::json> {
 public:
  std::uint64_t vocab_size = 0;
  std::uint64_t id_end = 0;

  bool null() override { return value(); }
  bool boolean(bool /*v*/) override { return value(); }
  bool number_integer(number_integer_t v) override {
    return id(v >= 0 ? static_cast<std::uint64_t>(v) + 1 : 0);
  }
  bool number_unsigned(number_unsigned_t v) override { return id(v + 1); }
  bool number_float(number_float_t /*v*/, const string_t& /*s*/) override { return value(); }
  bool string(string_t& /*v*/) override { return value(); }
  bool binary(binary_t& /*v*/) override { return value(); }
  bool start_object(std::size_t /*n*/) override { return open(/*object=*/true); }
  bool start_array(std::size_t /*n*/) override { return open(/*object=*/false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    Frame& f = stack_.back();
    f.key = k;
    if (f.role == Role::vocab_object) ++vocab_size;
    return true;
  }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& /*e*/) override {
    return false;
  }

 private:
  enum class Role { root, model, vocab_object, vocab_array, added, added_token, other };
  struct Frame {
    Role role;
    std::string key;  // the last key, in an object
  };

  // The role of a value opened in the current frame.
  Role child_role(bool object) const {
    if (stack_.empty()) return object ? Role::root : Role::other;
    const Frame& f = stack_.back();
    if (f.role == Role::root && f.key == "model" && object) return Role::model;
    if (f.role == Role::root && f.key == "added_tokens" && !object) return Role::added;
    if (f.role == Role::model && f.key == "vocab")
      return object ? Role::vocab_object : Role::vocab_array;
    if (f.role == Role::added && object) return Role::added_token;
    return Role::other;
  }
  bool open(bool object) {
    value();  // an element of Unigram's array counts whatever it is
    stack_.push_back({child_role(object), {}});
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }
  bool value() {
    if (!stack_.empty() && stack_.back().role == Role::vocab_array) ++vocab_size;
    return true;
  }
  // An integer value: a vocab entry's id, or an added token's "id".
  bool id(std::uint64_t end) {
    value();
    if (stack_.empty()) return true;
    const Frame& f = stack_.back();
    if (f.role == Role::vocab_object || (f.role == Role::added_token && f.key == "id"))
      id_end = std::max(id_end, end);
    return true;
  }

  std::vector<Frame> stack_;
};

// How many token ids the tokenizer files of `dir` use: the largest id + 1
// over tokenizer.json (model.vocab, added_tokens), tokenizer_config.json
// (added_tokens_decoder), added_tokens.json and vocab.json, or, without a
// tokenizer.json, the pieces of tokenizer.model. 0 if none.
std::uint64_t tokenizer_token_count(const std::filesystem::path& dir, std::string& from) {
  std::uint64_t count = 0;
  auto take = [&](std::uint64_t n, const char* file) {
    if (n > count) {
      count = n;
      from = file;
    }
  };
  if (auto path = find_side_file(dir, "tokenizer.json")) {
    // Counted as it is parsed: a 150 k-token tokenizer.json (3.5 MB) takes
    // some 20 MiB as a document, more than the whole merge's buffers.
    const std::string text = read_regular_file(*path);
    TokenCounter counter;
    if (!nlohmann::json::sax_parse(text, &counter)) {
      (void)parse_json_file(*path);  // throws the parse error, with its file:line:col
    }
    take(counter.vocab_size, "tokenizer.json");
    take(counter.id_end, "tokenizer.json");
  } else if (auto model = find_side_file(dir, "tokenizer.model")) {
    // A sentencepiece model's ids are its pieces. One llmerge cannot read is
    // copied as it is, as mergekit copies it; only a readable one is counted.
    try {
      take(read_sentencepiece_model(*model).pieces.size(), "tokenizer.model");
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::format && e.kind() != ErrorKind::unsupported) throw;
    }
  }
  if (auto path = find_side_file(dir, "tokenizer_config.json")) {
    const nlohmann::json tc = parse_json_file(*path);
    const auto decoder = tc.is_object() ? tc.find("added_tokens_decoder") : tc.end();
    if (tc.is_object() && decoder != tc.end() && decoder->is_object()) {
      for (const auto& [key, value] : decoder->items()) {
        std::uint64_t id = 0;
        const bool digits =
            !key.empty() && key.size() <= 18 &&
            std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits) continue;
        id = std::stoull(key);
        take(id + 1, "tokenizer_config.json");
      }
    }
  }
  for (const char* file : {"added_tokens.json", "vocab.json"}) {
    if (auto path = find_side_file(dir, file)) {
      const nlohmann::json j = parse_json_file(*path);
      if (!j.is_object()) continue;
      if (std::string_view(file) == "vocab.json") take(j.size(), file);
      for (const auto& [piece, id] : j.items())
        take(id_end(id), file);
    }
  }
  return count;
}

std::optional<std::int64_t> json_int(const nlohmann::json& j, std::string_view dotted) {
  const nlohmann::json* node = &j;
  while (true) {
    const auto dot = dotted.find('.');
    if (!node->is_object()) return std::nullopt;
    auto it = node->find(std::string(dotted.substr(0, dot)));
    if (it == node->end()) return std::nullopt;
    node = &*it;
    if (dot == std::string_view::npos) break;
    dotted.remove_prefix(dot + 1);
  }
  if (node->is_number_integer()) return node->get<std::int64_t>();
  return std::nullopt;
}

}  // namespace

void check_tokenizer_fits_embeddings(const MergePlan& plan, Diagnostics& diag) {
  if (plan.vocabulary) {
    // Built to fit; this guards the builder (docs/RELIABILITY.md, class 1).
    for (const auto& t : plan.tensors) {
      if (t.shape.size() != 2 || !is_token_table(t.name) || t.shape[0] >= plan.vocabulary->id_end)
        continue;
      diag.add(ErrorKind::internal, plan.config.tokenizer_source_location,
               fmt::format("tensor '{}' has {} rows for a vocabulary of {} ids", t.name, t.shape[0],
                           plan.vocabulary->id_end));
    }
    return;
  }
  const Model& model = plan.models[plan.tokenizer_model];
  if (!std::filesystem::is_directory(model.path())) return;
  std::optional<std::int64_t> rows;
  std::string table;
  for (const auto& t : plan.tensors) {
    if (t.shape.size() != 2 || !is_token_table(t.name)) continue;
    if (!rows || t.shape[0] < *rows) {
      rows = t.shape[0];
      table = t.name;
    }
  }
  auto vocab = json_int(plan.out_config, "vocab_size");
  if (!vocab) vocab = json_int(plan.out_config, "text_config.vocab_size");
  if (!rows && !vocab) return;
  std::string from;
  std::uint64_t tokens = 0;
  try {
    tokens = tokenizer_token_count(model.path(), from);
  } catch (const Error& e) {
    diag.add(e.kind(), plan.config.tokenizer_source_location,
             fmt::format("tokenizer of model '{}': {}", plan.model_refs[plan.tokenizer_model],
                         e.what()));
    return;
  }
  const std::int64_t limit = rows && vocab ? std::min(*rows, *vocab) : rows ? *rows : *vocab;
  if (tokens <= static_cast<std::uint64_t>(std::max<std::int64_t>(limit, 0))) return;
  diag.add(ErrorKind::shape, plan.config.tokenizer_source_location,
           fmt::format("the tokenizer copied from model '{}' ({}) uses {} token ids ({}), but the "
                       "output has {} embedding rows{} and vocab_size {}: every token id from "
                       "{} up would be out of range in the merged model. Set `tokenizer_source: "
                       "union` (or base, or a model) to align the embedding rows to one "
                       "vocabulary, or merge models whose vocabularies match",
                       plan.model_refs[plan.tokenizer_model],
                       plan.config.tokenizer_source
                           ? "tokenizer_source: " + *plan.config.tokenizer_source
                           : std::string("the base or first model"),
                       tokens, from, rows ? std::to_string(*rows) : "?",
                       rows ? fmt::format(" in '{}'", table) : "",
                       vocab ? std::to_string(*vocab) : "unset", limit));
}

void check_donor_config(MergePlan& plan, Diagnostics& diag) {
  const Model& donor = plan.models[plan.donor];
  if (donor.has_config()) return;
  const auto where = plan.base_model ? plan.config.base_model_location : SourceLocation{};
  if (std::filesystem::is_directory(donor.path())) {
    diag.add(
        ErrorKind::io, where,
        fmt::format("model '{}' gives the output its config.json (it is the {} model) but "
                    "has none: '{}' does not exist, so the output's config.json would be {{}}, "
                    "which transformers cannot load. Restore the file (an incomplete "
                    "download?) or use a model that has one as the {} model",
                    plan.model_refs[plan.donor], plan.base_model ? "base" : "first",
                    (donor.path() / "config.json").string(), plan.base_model ? "base" : "first"));
    return;
  }
  plan.notes.push_back(
      fmt::format("model '{}' is a lone .safetensors file with no config.json next to it; the "
                  "output's config.json is {{}}: copy the right config.json into the output "
                  "before loading it",
                  plan.model_refs[plan.donor]));
}

void check_chunk_memory(const MergePlan& plan, Diagnostics& diag) {
  const std::int64_t chunk = plan.options.chunk_elements;
  // The executor's chunk buffers (exec/executor.cpp, Worker): one f32 buffer
  // per input and the base, one for the output, 8 raw bytes per element, and
  // about 1.3 bytes per element for quantized codes, scales and biases.
  std::size_t inputs = 0;
  for (const auto& t : plan.tensors)
    inputs = std::max(inputs, t.inputs.size() + 1);
  const long double per_element = 4.0L * static_cast<long double>(inputs + 1) + 8.0L + 1.25L;
  const int threads = plan.options.threads > 0
                          ? plan.options.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const long double rounded =
      std::ceil(static_cast<long double>(std::max<std::int64_t>(chunk, 1)) / k_reduce_block) *
      k_reduce_block;
  const long double need = rounded * per_element * threads;
  const long double pages = static_cast<long double>(::sysconf(_SC_PHYS_PAGES));
  const long double page = static_cast<long double>(::sysconf(_SC_PAGESIZE));
  const long double memory = pages > 0 && page > 0 ? pages * page : 0;
  if (memory > 0 && need > memory) {
    const auto clamp = [](long double v) {
      return v >= 1.8e19L ? UINT64_MAX : static_cast<std::uint64_t>(v);
    };
    diag.add(ErrorKind::config, {},
             fmt::format("--chunk-elements {} needs about {} of chunk buffers ({} thread(s) x "
                         "{} buffers), more than this machine's {} of memory; use a smaller "
                         "--chunk-elements (the default, {}, is also the fastest)",
                         chunk, human_bytes(clamp(need)), threads, inputs + 1,
                         human_bytes(clamp(memory)), k_reduce_block));
  }
}

}  // namespace llmerge
