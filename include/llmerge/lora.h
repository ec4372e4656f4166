// LoRA extraction: the low-rank adapter of a fine-tune's difference from its
// base, as mergekit-extract-lora computes it (docs/lora.md). Applying LoRA
// adapters is part of planning: "model+adapter" references and fuse()
// (llmerge.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "llmerge/cancel.h"

namespace llmerge {

enum class AdapterFileFormat { peft, mlx };

// mergekit-extract-lora's options (same names and defaults).
struct ExtractLoraOptions {
  std::int64_t max_rank = 128;   // --max-rank (--rank): rank of every module at most
  double sv_epsilon = 0;         // --sv-epsilon: drop singular values <= this (0: keep all)
  bool distribute_scale = true;  // A = sqrt(S) V^T, B = U sqrt(S); else A = S V^T, B = U
  bool embed_lora = false;       // embeddings as lora_embedding_A/B instead of saved whole
  std::vector<std::string> save_modules;     // --save-module: saved whole (full rank)
  std::vector<std::string> include_regexes;  // -i: only modules matching one of these
  std::vector<std::string> exclude_regexes;  // -e: not modules matching one of these
  bool skip_undecomposable = false;  // norms and other non-matrices: skipped, not saved whole
  AdapterFileFormat format = AdapterFileFormat::peft;
  bool force = false;    // replace an earlier output
  std::string base_dir;  // relative model paths resolve against this
  // Called after each module with (modules done, modules in all, module name).
  std::function<void(std::size_t, std::size_t, const std::string&)> progress;
  // Non-fatal remarks (a module left out of an mlx adapter, say).
  std::function<void(const std::string&)> note;
  CancelToken cancel;
};

struct ExtractLoraResult {
  std::string output;
  std::size_t lora_modules = 0;   // decomposed
  std::size_t whole_modules = 0;  // saved at full rank (modules_to_save)
  std::size_t skipped = 0;        // left out
  std::int64_t rank = 0;          // the largest rank written (the config's r)
  std::size_t randomized = 0;     // modules decomposed by the randomized SVD
  std::uint64_t bytes = 0;        // adapter tensor bytes
  double seconds = 0;
  // Relative Frobenius error ||D - B A|| / ||D|| over all decomposed modules,
  // from the dropped singular values (exact SVD) or the residual (randomized).
  double relative_error = 0;
};

// Writes the adapter of `model` - `base` into `out_dir` (atomically). Both are
// folders, .safetensors files or org/name ids in the local HF cache. Throws
// Error: every shape mismatch or missing tensor is reported before any work.
ExtractLoraResult extract_lora(const std::string& model, const std::string& base,
                               const std::string& out_dir, const ExtractLoraOptions& options = {});

}  // namespace llmerge
