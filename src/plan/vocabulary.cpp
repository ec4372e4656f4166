// The output vocabulary (mergekit's build_tokenizer) and the per-model row
// alignment of every token table (mergekit's PermutedVocabulary), computed from
// tokenizer files and headers only. docs/tokenizers.md gives the rules and
// where llmerge differs.
#include "plan/vocabulary.h"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/core.h>

#include "core/error.h"
#include "io/tokenizer.h"
#include "plan/planner_internal.h"

namespace llmerge {

bool is_token_table(std::string_view name) {
  for (std::string_view part :
       {"embed_tokens.", "wte.", "word_embeddings.", "tok_embeddings.", "lm_head."}) {
    if (name.find(part) != std::string_view::npos) return true;
  }
  return false;
}

namespace {

constexpr std::int64_t k_none = -1;

// The config vocab_size of a model (mergekit's get_vocab_size), if set.
std::optional<std::int64_t> config_vocab_size(const Model& m) {
  if (auto v = m.config_int("vocab_size")) return v;
  const auto& cfg = m.config();
  if (cfg.is_object() && cfg.contains("text_config") && cfg["text_config"].is_object()) {
    const auto& t = cfg["text_config"];
    if (t.contains("vocab_size") && t["vocab_size"].is_number_integer())
      return t["vocab_size"].get<std::int64_t>();
  }
  return std::nullopt;
}

// An added_tokens entry for a token appended as transformers' add_tokens(str) does.
nlohmann::json plain_added_token(const std::string& content, std::int64_t id) {
  return {{"id", id},        {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", true}, {"special", false}};
}

struct ModelVocab {
  const TokenizerVocab* vocab = nullptr;  // the model's, or the base's if it has none
  std::int64_t limit = 0;                 // ids >= limit have no row (mergekit's vocab_size)
  std::int64_t id_of(const std::string& token) const {
    const auto it = vocab->ids.find(token);
    return it == vocab->ids.end() || it->second >= limit ? k_none : it->second;
  }
};

struct VocabularyBuilder {
  MergePlan& plan;
  Diagnostics& diag;
  const MergeConfig& config;
  std::vector<std::optional<TokenizerVocab>> vocabs;  // per model
  std::vector<ModelVocab> model_vocab;                // per model
  std::size_t base = 0;
  VocabularyPlan out;
  std::unordered_map<std::string, std::int64_t> ids;  // the output vocabulary
  std::map<std::string, const TokenOverride*> overrides;

  VocabularyBuilder(MergePlan& p, Diagnostics& d) : plan(p), diag(d), config(p.config) {}

  std::size_t model_index(const std::string& ref) const {
    for (std::size_t i = 0; i < plan.model_refs.size(); ++i)
      if (plan.model_refs[i] == ref) return i;
    return plan.model_refs.size();
  }

  bool read_vocabs() {
    base = plan.base_model ? *plan.base_model : plan.donor;
    vocabs.resize(plan.models.size());
    for (std::size_t i = 0; i < plan.models.size(); ++i) {
      const auto& dir = plan.models[i].path();
      if (!std::filesystem::is_directory(dir)) continue;
      try {
        if (!has_tokenizer(dir)) continue;  // a symlink out of the folder throws here
        vocabs[i] = read_tokenizer_vocab(dir);
      } catch (const Error& e) {
        diag.add(e.kind(), config.tokenizer_source_location,
                 fmt::format("tokenizer of model '{}': {}", plan.model_refs[i], e.what()));
      }
    }
    if (!diag.empty()) return false;
    if (!vocabs[base]) {
      diag.add(ErrorKind::io, config.tokenizer_source_location,
               fmt::format("`tokenizer_source` builds the output tokenizer from the base model "
                           "'{}', which has no tokenizer.json",
                           plan.model_refs[base]));
      return false;
    }
    model_vocab.resize(plan.models.size());
    for (std::size_t i = 0; i < plan.models.size(); ++i) {
      // mergekit: a model whose tokenizer cannot be loaded is assumed to share the base's.
      if (!vocabs[i]) {
        plan.notes.push_back(fmt::format(
            "model '{}' has no tokenizer; its rows are taken to follow the base's vocabulary",
            plan.model_refs[i]));
      }
      const TokenizerVocab& v = vocabs[i] ? *vocabs[i] : *vocabs[base];
      model_vocab[i] = {
          &v, config_vocab_size(plan.models[i]).value_or(static_cast<std::int64_t>(v.ids.size()))};
    }
    return true;
  }

  // mergekit's get_stripped_tokenizer: the base without ids >= its vocab_size.
  void start_from_stripped_base() {
    const TokenizerVocab& v = *vocabs[base];
    const std::int64_t limit = model_vocab[base].limit;
    out.tokenizer_model = base;
    out.model_type = v.model_type;
    for (const auto& [content, id] : v.ids) {
      if (id < limit) {
        ids.emplace(content, id);
      } else {
        out.stripped.push_back(content);
      }
    }
    if (!out.stripped.empty()) {
      std::sort(out.stripped.begin(), out.stripped.end());
      out.keep_below = limit;
    }
  }

  void append(const std::string& content, nlohmann::json entry) {
    if (ids.count(content)) return;
    const auto id = next_id();
    entry["id"] = id;
    ids.emplace(content, id);
    ++*end_;
    out.appended.push_back(std::move(entry));
  }

  // The id the next added token gets: past every id and the token count (as
  // transformers' add_tokens), computed once, then counted up by append().
  std::int64_t next_id() {
    if (!end_) {
      std::int64_t end = 0;
      for (const auto& [content, id] : ids)
        end = std::max(end, id + 1);
      end_ = std::max(end, static_cast<std::int64_t>(ids.size()));
    }
    return *end_;
  }
  std::optional<std::int64_t> end_;

  // mergekit's build_union_tokenizer: every model's pieces not in the base
  // (in model order, each model's in id order), then every model's added
  // tokens (the first settings of a content win).
  void union_tokens() {
    std::vector<std::size_t> order{base};
    for (std::size_t i = 0; i < plan.models.size(); ++i)
      if (i != base && vocabs[i]) order.push_back(i);
    std::vector<std::string> pieces;
    std::set<std::string> seen_pieces;
    std::vector<nlohmann::json> added;
    std::set<std::string> seen_added;
    for (const std::size_t m : order) {
      const TokenizerVocab& v = *model_vocab[m].vocab;
      const std::int64_t limit = model_vocab[m].limit;
      std::set<std::string> added_here;  // every added token of this model, used or not
      for (const auto& a : v.added) {
        const std::string content = a["content"].get<std::string>();
        added_here.insert(content);
        if (a["id"].get<std::int64_t>() >= limit) continue;
        if (seen_added.insert(content).second) added.push_back(a);
      }
      for (const auto& [id, content] : v.by_id()) {
        if (id >= limit || added_here.count(content)) continue;
        if (seen_pieces.insert(content).second) pieces.push_back(content);
      }
    }
    for (const auto& content : pieces) {
      if (seen_added.count(content)) continue;
      append(content, plain_added_token(content, 0));
    }
    for (auto& a : added)
      append(a["content"].get<std::string>(), a);
  }

  bool build_vocabulary() {
    out.source = *config.tokenizer_source;
    if (out.source == "base" || out.source == "union") {
      start_from_stripped_base();
      if (out.source == "union") union_tokens();
    } else {
      const std::size_t m = model_index(out.source);
      if (m >= plan.models.size() || !vocabs[m]) {
        diag.add(ErrorKind::io, config.tokenizer_source_location,
                 fmt::format("tokenizer_source '{}' has no tokenizer.json", out.source));
        return false;
      }
      out.tokenizer_model = m;
      out.model_type = vocabs[m]->model_type;
      ids = vocabs[m]->ids;  // unstripped, as mergekit
    }
    // Every `tokens:` key not yet in the vocabulary is added.
    for (const auto& o : config.tokenizer_tokens) {
      overrides[o.token] = &o;
      append(o.token, plain_added_token(o.token, 0));
    }
    out.size = static_cast<std::int64_t>(ids.size());
    out.id_end = next_id();
    out.rows = out.id_end;
    if (config.pad_to_multiple_of && out.rows % *config.pad_to_multiple_of) {
      out.rows += *config.pad_to_multiple_of - out.rows % *config.pad_to_multiple_of;
    }
    return true;
  }

  // The output tokens in id order.
  std::vector<std::pair<std::int64_t, std::string>> tokens_by_id() const {
    std::vector<std::pair<std::int64_t, std::string>> v;
    v.reserve(ids.size());
    for (const auto& [content, id] : ids)
      v.emplace_back(id, content);
    std::sort(v.begin(), v.end());
    return v;
  }

  // Checks the `tokens:` entries once, against every model they name.
  void check_overrides() {
    for (const auto& o : config.tokenizer_tokens) {
      if (o.kind == TokenOverride::Kind::automatic) {
        const bool any =
            std::any_of(model_vocab.begin(), model_vocab.end(),
                        [&](const ModelVocab& mv) { return mv.id_of(o.token) != k_none; });
        if (!any) {
          diag.add(ErrorKind::config, o.location,
                   fmt::format("tokenizer.tokens.{}: no model has the token {}, so the default "
                               "rules have no row for it",
                               o.token, nlohmann::json(o.token).dump()),
                   {.hint = "give it a source: {kind: model_token, model: M, token: T} starts it "
                            "from another token's row, {kind: zero} from zeros"});
        }
        continue;
      }
      if (o.kind != TokenOverride::Kind::model && o.kind != TokenOverride::Kind::model_token)
        continue;
      const std::size_t m = model_index(o.model);
      if (m >= plan.models.size()) {
        diag.add(ErrorKind::config, o.source_location,
                 fmt::format("tokenizer.tokens.{}: model '{}' is not one of the merge's models",
                             o.token, o.model));
        continue;
      }
      const ModelVocab& mv = model_vocab[m];
      if (o.kind == TokenOverride::Kind::model && mv.id_of(o.token) == k_none) {
        diag.add(ErrorKind::config, o.source_location,
                 fmt::format("tokenizer.tokens.{0}: model '{1}' has no token {2}, so it has no "
                             "row to give it",
                             o.token, o.model, nlohmann::json(o.token).dump()),
                 {.hint = "name a model whose tokenizer has the token, or use {kind: model_token, "
                          "model, token} to take another token's row"});
      } else if (o.kind == TokenOverride::Kind::model_token && o.src_token &&
                 !mv.vocab->ids.count(*o.src_token)) {
        diag.add(ErrorKind::config, o.source_location,
                 fmt::format("tokenizer.tokens.{}: model '{}' has no token {}", o.token, o.model,
                             nlohmann::json(*o.src_token).dump()));
      }
    }
  }

  std::optional<std::uint32_t> slot_of(const std::vector<std::size_t>& slot_models,
                                       std::size_t model) const {
    for (std::size_t s = 0; s < slot_models.size(); ++s)
      if (slot_models[s] == model) return static_cast<std::uint32_t>(s);
    return std::nullopt;
  }

  void align(PlannedTensor& t) {
    std::vector<PlannedInput*> slots;
    if (t.base) slots.push_back(&*t.base);
    for (auto& in : t.inputs)
      slots.push_back(&in);
    std::vector<std::size_t> slot_models;
    for (const auto* in : slots)
      slot_models.push_back(in->model);
    auto g = std::make_shared<RowGather>();
    g->rows = out.rows;
    g->real_rows = out.id_end;
    g->width = t.shape[1];
    g->own.assign(slots.size(),
                  std::vector<std::int64_t>(static_cast<std::size_t>(out.id_end), k_none));
    g->default_offsets.assign(static_cast<std::size_t>(out.id_end) + 1, 0);
    const std::optional<std::uint32_t> base_slot =
        plan.base_model ? slot_of(slot_models, *plan.base_model) : std::nullopt;
    VocabularyRowCounts counts;
    counts.tensor = t.name;
    counts.padding = out.rows - out.id_end;
    const auto tokens = tokens_by_id();
    std::vector<std::int64_t> present(slots.size());
    for (const auto& [id, token] : tokens) {
      const auto row = static_cast<std::size_t>(id);
      const auto it = overrides.find(token);
      const TokenOverride* o = it == overrides.end() ? nullptr : it->second;
      const bool force = o && o->force;
      std::size_t have = 0;
      for (std::size_t s = 0; s < slots.size(); ++s) {
        // A row the table does not store is no row (the config may overstate it).
        std::int64_t r = model_vocab[slot_models[s]].id_of(token);
        if (r >= slots[s]->shape[0]) r = k_none;
        present[s] = r;
        have += r != k_none;
        if (!force) g->own[s][row] = r;
      }
      auto& terms = g->default_terms;
      if (have == slots.size() && !force) {
        ++counts.shared;
      } else if (o && o->kind != TokenOverride::Kind::automatic) {
        ++counts.overridden;
        add_override_terms(*o, slot_models, present, t, terms);
      } else if (have == 1) {
        ++counts.one_model;
        for (std::size_t s = 0; s < slots.size(); ++s)
          if (present[s] != k_none) terms.push_back({static_cast<std::uint32_t>(s), present[s]});
      } else if (have == 0) {
        ++counts.zero;
      } else if (base_slot && present[*base_slot] != k_none) {
        ++counts.base;
        terms.push_back({*base_slot, present[*base_slot]});
      } else {
        ++counts.mean;
        for (std::size_t s = 0; s < slots.size(); ++s)
          if (present[s] != k_none) terms.push_back({static_cast<std::uint32_t>(s), present[s]});
      }
      g->default_offsets[row + 1] = static_cast<std::uint32_t>(terms.size());
    }
    // Ids no token uses (holes in the source vocabulary) stay zero.
    for (std::size_t r = 1; r < g->default_offsets.size(); ++r)
      g->default_offsets[r] = std::max(g->default_offsets[r], g->default_offsets[r - 1]);
    for (std::size_t s = 0; s < slots.size(); ++s) {
      PlannedInput table = *slots[s];
      g->tables.push_back(table);
      // A LoRA update belongs to the model's own table (applied there, row by
      // row), not to the aligned rows read through it.
      slots[s]->lora = nullptr;
      slots[s]->adapter = nullptr;
      slots[s]->shape = {out.rows, g->width};
      slots[s]->source = SourceKind::row_gather;
      slots[s]->gather = g;
      slots[s]->gather_slot = s;
    }
    t.shape = {out.rows, g->width};
    if (out.counts.size() < 2) out.counts.push_back(counts);
  }

  void add_override_terms(const TokenOverride& o, const std::vector<std::size_t>& slot_models,
                          const std::vector<std::int64_t>& present, const PlannedTensor& t,
                          std::vector<RowTerm>& terms) {
    if (o.kind == TokenOverride::Kind::zero) return;
    const std::size_t m = model_index(o.model);
    if (m >= plan.models.size()) return;  // reported by check_overrides
    const auto slot = slot_of(slot_models, m);
    if (!slot) {
      diag.add(ErrorKind::config, o.source_location,
               fmt::format("tokenizer.tokens.{}: model '{}' is not an input of tensor '{}'",
                           o.token, o.model, t.name));
      return;
    }
    std::int64_t row = k_none;
    if (o.kind == TokenOverride::Kind::model) {
      row = present[*slot];
      if (row == k_none) return;  // reported by check_overrides
    } else {
      const PlannedInput& table =
          t.base && *slot == 0 ? *t.base : t.inputs[*slot - (t.base ? 1 : 0)];
      const std::int64_t stored = table.shape[0];
      if (o.src_id) {
        row = *o.src_id;
      } else {
        const auto it = model_vocab[m].vocab->ids.find(*o.src_token);
        if (it == model_vocab[m].vocab->ids.end()) return;  // reported by check_overrides
        row = it->second;
      }
      if (row < 0 || row >= stored) {
        diag.add(ErrorKind::config, o.source_location,
                 fmt::format("tokenizer.tokens.{}: {} {} is out of range for model '{}', whose "
                             "tensor '{}' has {} rows (ids 0 to {})",
                             o.token, o.src_id ? "token_id" : "the id of token", row, o.model,
                             table.tensor, stored, stored - 1));
        return;
      }
    }
    terms.push_back({*slot, row});
  }
};

}  // namespace

std::optional<std::int64_t> plan_vocabulary(MergePlan& plan, Diagnostics& diag) {
  if (!plan.config.tokenizer_source) return std::nullopt;
  VocabularyBuilder b(plan, diag);
  if (!b.read_vocabs() || !b.build_vocabulary()) return std::nullopt;
  b.check_overrides();
  for (auto& t : plan.tensors) {
    if (!t.method || t.shape.size() != 2 || !is_token_table(t.name)) continue;
    b.align(t);
  }
  plan.vocabulary = std::make_shared<VocabularyPlan>(std::move(b.out));
  return plan.vocabulary->rows;
}

}  // namespace llmerge
