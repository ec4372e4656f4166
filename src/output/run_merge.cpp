#include "output/run_merge.h"

#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <vector>

#include <fmt/core.h>

#include "core/error.h"
#include "output/layout.h"
#include "output/output_files.h"
#include "output/sinks.h"

namespace llmerge {

namespace {

namespace fs = std::filesystem;

fs::path normalized(const fs::path& p) {
  std::error_code ec;
  auto out = fs::weakly_canonical(fs::absolute(p), ec);
  return ec ? fs::absolute(p).lexically_normal() : out;
}

// True if `inner` is `outer` or below it.
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto rel = inner.lexically_relative(outer);
  return !rel.empty() && *rel.begin() != "..";
}

// The file itself, by device and inode: a bind mount or a second path to
// the same folder has another name but the same identity.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const FileId&) const = default;
};

std::optional<FileId> file_id(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return std::nullopt;
  return FileId{st.st_dev, st.st_ino};
}

// `path` and each of its existing ancestors, by identity.
std::vector<FileId> ids_up_from(fs::path path) {
  std::vector<FileId> ids;
  for (;;) {
    if (auto id = file_id(path)) ids.push_back(*id);
    if (!path.has_relative_path()) break;
    path = path.parent_path();
  }
  return ids;
}

bool contains_id(const std::vector<FileId>& ids, const std::optional<FileId>& id) {
  return id && std::find(ids.begin(), ids.end(), *id) != ids.end();
}

}  // namespace

void check_output_path(const MergePlan& plan, const fs::path& out_dir) {
  std::error_code ec;
  const fs::path given = fs::absolute(out_dir).lexically_normal();
  const fs::path out_name = given.has_filename() ? given : given.parent_path();
  const fs::path out = normalized(out_dir);
  const auto out_ancestors = ids_up_from(out);
  const auto out_id = file_id(out);
  for (std::size_t i = 0; i < plan.models.size(); ++i) {
    // A recipe stage computed in the same pass has no folder; the caller
    // checks the stage's own inputs (api/recipe.cpp).
    if (plan.models[i].is_stage_output()) continue;
    // A lone .safetensors file is protected itself, not the folder it is in.
    const fs::path model = normalized(plan.models[i].path());
    const auto model_id = file_id(model);
    const bool same = out == model || (out_id && out_id == model_id);
    const bool inside = is_within(out, model) || contains_id(out_ancestors, model_id);
    const bool contains = is_within(model, out) || contains_id(ids_up_from(model), out_id);
    if (same || inside || contains) {
      throw Error(ErrorKind::config,
                  fmt::format("output directory '{}' {} input model '{}' ({}); writing there could "
                              "destroy the input. Choose another output directory",
                              out_dir.string(),
                              same     ? "is"
                              : inside ? "is inside"
                                       : "contains",
                              plan.model_refs[i], model.string()));
    }
  }
  // A LoRA adapter is an input too.
  for (std::size_t i = 0; i < plan.adapters.size(); ++i) {
    if (!plan.adapters[i]) continue;
    const fs::path adapter = normalized(plan.adapters[i]->path());
    if (out == adapter || is_within(out, adapter) || is_within(adapter, out) ||
        (out_id && out_id == file_id(adapter))) {
      throw Error(ErrorKind::config,
                  fmt::format("output directory '{}' overlaps the adapter of '{}' ({}); writing "
                              "there could destroy the input. Choose another output directory",
                              out_dir.string(), plan.model_refs[i], adapter.string()));
    }
  }
  // After the input checks, so a link to an input is named as the input.
  if (fs::is_symlink(fs::symlink_status(out_name, ec))) {
    throw Error(ErrorKind::config,
                fmt::format("output path '{}' is a symlink (to '{}'); the finished folder is "
                            "renamed into place, which would replace the link rather than write "
                            "where it points. Give the real path",
                            out_dir.string(), fs::read_symlink(out_name, ec).string()));
  }
}

void run_merge(const MergePlan& plan, const RunSettings& options) {
  check_output_path(plan, options.out_dir);
  ModelWriterOptions writer_options = options.writer;
  // mlx-lm marks its files "mlx"; transformers accepts both.
  if (std::any_of(plan.tensors.begin(), plan.tensors.end(),
                  [](const auto& t) { return t.quantize; })) {
    writer_options.format = "mlx";
  }
  ModelWriter writer(options.out_dir, plan_tensor_specs(plan), writer_options);
  WriterSinks sinks(plan, writer);
  execute_plan(plan, sinks, options.execute);
  write_side_files(plan, writer, {options.copy_tokenizer, options.write_model_card});
  writer.commit();
}

}  // namespace llmerge
