// The output vocabulary and the embedding rows aligned to it
// (mergekit/tokenizer/build.py and embed.py; docs/tokenizers.md).
//
// With `tokenizer_source:` or `tokenizer:` set, the planner builds the output
// vocabulary from the models' tokenizer files, then, for every token table
// (input embeddings, lm_head) and every input model, where each output row
// comes from:
//   - the model's own row of that token, if it has one (id < its vocab_size)
//     and the token is not `force`d;
//   - else the token's default row: an explicit `tokens:` source, or the
//     default rules: the one model that has it, else the base, else the mean
//     of the models that have it; zero if none has it;
//   - rows past the vocabulary, up to `pad_to_multiple_of`, are the mean of
//     the model's own aligned rows [0, size).
// The merge method then merges the aligned matrices as usual. The executor
// reads them through a row-gather source (exec/sources.h), row by row, so
// memory stays bounded by the chunk size.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plan/diagnostics.h"
#include "plan/plan.h"

namespace llmerge {

// How many rows of one token table come from where (for `llmerge plan`).
struct VocabularyRowCounts {
  std::string tensor;
  std::int64_t shared = 0;      // every model has the token: each its own row
  std::int64_t one_model = 0;   // only one model has it: the others take its row
  std::int64_t base = 0;        // several have it, the base among them: the base's row
  std::int64_t mean = 0;        // several have it, not the base: their mean
  std::int64_t zero = 0;        // no model has it
  std::int64_t overridden = 0;  // a `tokens:` entry decides
  std::int64_t padding = 0;     // pad_to_multiple_of rows
};

struct VocabularyPlan {
  std::string source;               // "base", "union" or a model reference
  std::size_t tokenizer_model = 0;  // the model whose tokenizer files the output starts from
  std::string model_type;           // of that tokenizer.json
  // Ids >= keep_below are removed from that tokenizer (mergekit strips the
  // base tokenizer to its config vocab_size); max() keeps all.
  std::int64_t keep_below = std::numeric_limits<std::int64_t>::max();
  std::vector<std::string> stripped;     // contents removed, for the BPE merges
  std::vector<nlohmann::json> appended;  // tokenizer.json added_tokens entries, new ids
  std::int64_t size = 0;                 // tokens in the output vocabulary
  std::int64_t id_end = 0;               // largest output id + 1 (>= size)
  std::int64_t rows = 0;                 // embedding rows: id_end rounded up to the padding
  std::vector<VocabularyRowCounts> counts;
  // True if the source tokenizer's files cannot be copied as they are.
  bool rewrites() const {
    return !appended.empty() || keep_below != std::numeric_limits<std::int64_t>::max();
  }
};

struct RowTerm {
  std::uint32_t slot = 0;
  std::int64_t row = 0;
};

// One token table's alignment, shared by its inputs. Slots are the tensor's
// inputs in executor order: the base (if any), then the models.
struct RowGather {
  std::int64_t rows = 0;                       // output rows
  std::int64_t real_rows = 0;                  // rows [real_rows, rows) are padding
  std::int64_t width = 0;                      // elements per row
  std::vector<PlannedInput> tables;            // per slot: the stored tensor read
  std::vector<std::vector<std::int64_t>> own;  // [slot][row]: own row, or -1: the default
  std::vector<std::uint32_t> default_offsets;  // real_rows + 1 offsets into default_terms
  // A row's default: no term is zero, one is a copy, several are their mean.
  std::vector<RowTerm> default_terms;
};

// Builds plan.vocabulary and turns every token table's inputs into row
// gathers. Returns the output vocab_size (rows) for config.json, or nullopt
// when no tokenizer is built. Problems go to `diag`, with YAML locations.
std::optional<std::int64_t> plan_vocabulary(MergePlan& plan, Diagnostics& diag);

// Token-id tables: one row per token. (Not "wpe", which is per position.)
bool is_token_table(std::string_view name);

}  // namespace llmerge
